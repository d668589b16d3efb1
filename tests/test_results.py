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
    writer = ResultWriter(tmp_path / "run", {"run_id": "r1", "source": "test"})
    writer.append(cell())
    writer.append(cell(mode="eager", status="error", error="boom"))
    frame = results.load(tmp_path / "run")
    assert list(frame.columns) == list(SCHEMA)
    assert len(frame) == 2 and (frame["schema_version"] == SCHEMA_VERSION).all()
    pd.testing.assert_frame_equal(frame, results.load(tmp_path / "run" / "results.parquet"))
    assert len(results.load(tmp_path / "run" / "results.csv")) == 2
    assert writer.done_keys() == {
        ("categorical_crossentropy", "reference", m, "forward", 1, 8, 8, 4, "float32") for m in ("numpy", "eager")
    }


def test_a_line_cut_short_by_a_crash_is_ignored(tmp_path):
    writer = ResultWriter(tmp_path, {"run_id": "r1"})
    writer.append(cell())
    with open(tmp_path / "cells.jsonl", "a") as journal:
        journal.write('{"loss": "categorical_cross')
    assert len(results.load(tmp_path)) == 1
    assert len(ResultWriter(tmp_path, {"run_id": "r1"}).rows) == 1


def test_runs_concatenate(tmp_path):
    for run_id in ("a", "b"):
        ResultWriter(tmp_path / run_id, {"run_id": run_id}).append(cell())
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
