import json

import pandas as pd
import pytest

from segbench import results
from segbench.results import SCHEMA, SCHEMA_VERSION, ResultWriter


def cell(**overrides):
    return {
        "loss": "categorical_crossentropy",
        "formulation": "reference",
        "mode": "numpy",
        "pass": "forward",
        "batch": 1,
        "height": 8,
        "width": 8,
        "classes": 4,
        "dtype": "float32",
        "status": "ok",
        "median_s": 1e-3,
        **overrides,
    }


def test_writer_journal_and_tables_agree(tmp_path):
    with ResultWriter(tmp_path / "run", {"run_id": "r1", "source": "test"}) as writer:
        writer.append(cell())
        writer.append(cell(mode="eager", status="error", error="boom"))
        assert not (tmp_path / "run" / "results.parquet").exists()  # tables are written once, at the end
    frame = results.load(tmp_path / "run")
    assert list(frame.columns) == list(SCHEMA)
    assert len(frame) == 2 and (frame["schema_version"] == SCHEMA_VERSION).all()
    pd.testing.assert_frame_equal(frame, results.load(tmp_path / "run" / "results.parquet"))
    assert len(results.load(tmp_path / "run" / "results.csv")) == 2
    assert writer.done_keys() == {
        ("categorical_crossentropy", "reference", m, "forward", 1, 8, 8, 4, "float32") for m in ("numpy", "eager")
    }


def test_a_line_cut_short_by_a_crash_is_ignored_and_the_next_row_is_whole(tmp_path):
    with ResultWriter(tmp_path, {"run_id": "r1"}) as writer:
        writer.append(cell())
    with open(tmp_path / "cells.jsonl", "a") as journal:
        journal.write('{"loss": "categorical_cross')  # a full disk tears the last line
    assert len(results.load(tmp_path)) == 1
    with ResultWriter(tmp_path, {"run_id": "r1"}) as resumed:
        assert len(resumed.rows) == 1
        resumed.append(cell(mode="eager"))
    assert list(results.load(tmp_path)["mode"]) == ["numpy", "eager"]
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 2


def test_a_run_directory_is_locked_while_written(tmp_path):
    message = f"{tmp_path} is being written by another segbench run"
    with ResultWriter(tmp_path, {"run_id": "r1"}), pytest.raises(results.RunLockedError, match=message):
        ResultWriter(tmp_path, {"run_id": "r2"})
    ResultWriter(tmp_path, {"run_id": "r1"}).close()  # free again


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loss,mode\nx,numpy\n", "lacks the columns formulation, pass"),
        (None, "column median_s holds text where numbers belong"),
    ],
)
def test_bad_result_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    if text is None:
        pd.DataFrame([cell(median_s="fast")]).to_csv(path, index=False)
    else:
        path.write_text(text)
    with pytest.raises(ValueError, match=message) as raised:
        results.load(path)
    assert str(path) in str(raised.value)


def test_a_damaged_journal_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "cells.jsonl"
    path.write_text(json.dumps(cell()) + "\ngarbage\n" + json.dumps(cell(mode="eager")) + "\n")
    with pytest.raises(ValueError, match="line 2: not a JSON row"):
        results.load(path)


def test_runs_concatenate(tmp_path):
    for run_id in ("a", "b"):
        with ResultWriter(tmp_path / run_id, {"run_id": run_id}) as writer:
            writer.append(cell())
    frame = results.load(tmp_path / "a", tmp_path / "b")
    assert list(frame["run_id"]) == ["a", "b"]
    assert list(frame.columns) == list(SCHEMA)
    assert len(results.load([tmp_path / "a", tmp_path / "b"])) == 2


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.jsonl"
    path.write_text(json.dumps({**cell(), "schema_version": SCHEMA_VERSION + 1}) + "\n")
    with pytest.raises(ValueError, match="upgrade segbench"):
        results.load(path)


def test_unknown_paths_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results at"):
        results.load(tmp_path / "nothing.parquet")
    with pytest.raises(FileNotFoundError, match="holds no segbench results"):
        results.load(tmp_path)
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="expected a run directory"):
        results.load(tmp_path / "x.txt")
