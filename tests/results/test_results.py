import json

import pandas as pd
import pytest

from segbench import results
from segbench.results.storage import SCHEMA, SCHEMA_VERSION, ResultWriter


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


def write_table(tmp_path, rows=3):
    with ResultWriter(tmp_path / "run", {"run_id": "r1", "source": "test"}) as writer:
        for batch in range(1, rows + 1):
            writer.append(cell(batch=batch, error="a, quoted\nmessage"))
    return tmp_path / "run"


def test_a_csv_cut_mid_row_is_refused_not_read_with_blanks(tmp_path):
    csv = write_table(tmp_path) / "results.csv"
    data = csv.read_bytes()
    assert len(results.load(csv)) == 3
    csv.write_bytes(data[:-30])  # the last row cut short
    with pytest.raises(ValueError, match="cut short"):
        results.load(csv)
    lines = data.split(b"\n")
    csv.write_bytes(b"\n".join([*lines[:-2], b"categorical_crossentropy,reference", b""]))  # a short last row
    with pytest.raises(ValueError, match="fields where the header has"):
        results.load(csv)


def test_tables_are_read_through_one_handle_so_a_replace_cannot_tear_a_read(tmp_path, monkeypatch):
    """pandas given a path lets pyarrow open the file more than once; a run that replaces the table
    between two opens gives "Unexpected end of stream". load() must read one snapshot."""
    run_dir = write_table(tmp_path)
    real_parquet, real_csv = pd.read_parquet, pd.read_csv

    def by_buffer_only(real):
        def read(source, *args, **kwargs):
            assert not isinstance(source, (str, bytes)) and not hasattr(source, "__fspath__"), source
            return real(source, *args, **kwargs)

        return read

    monkeypatch.setattr(pd, "read_parquet", by_buffer_only(real_parquet))
    monkeypatch.setattr(pd, "read_csv", by_buffer_only(real_csv))
    assert len(results.load(run_dir / "results.parquet")) == 3
    assert len(results.load(run_dir / "results.csv")) == 3
    (run_dir / "cells.jsonl").unlink()
    assert len(results.load(run_dir)) == 3  # the directory's table, when the journal is gone


@pytest.mark.slow
def test_loads_while_a_run_replaces_the_table_see_old_or_new(tmp_path):
    import os
    import threading

    run_dir = write_table(tmp_path, rows=2)
    small = results.load(run_dir / "results.parquet")
    big = pd.concat([small] * 2000, ignore_index=True)
    target = run_dir / "results.parquet"
    stop = threading.Event()

    def replace_repeatedly():
        i = 0
        while not stop.is_set():
            (big if i % 2 else small).to_parquet(run_dir / "t.tmp")
            os.replace(run_dir / "t.tmp", target)
            i += 1

    writer = threading.Thread(target=replace_repeatedly)
    writer.start()
    try:
        lengths = {len(results.load(target)) for _ in range(100)}
    finally:
        stop.set()
        writer.join()
    assert lengths <= {len(small), len(big)}
