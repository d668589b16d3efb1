"""What a user sees when the file system, another run or an earlier crash gets in the way."""

import errno
import json

import pandas as pd
import pytest

from segbench import results
from segbench.cli.parser import main
from segbench.results.storage import ResultWriter

ARGS = ["run", "--profile", "tiny", "--mode", "numpy", "--loss", "categorical_crossentropy", "--quiet"]


def test_a_file_where_the_run_directory_should_be(tmp_path, capsys):
    (tmp_path / "taken").write_text("not a directory")
    assert main([*ARGS, "--out", str(tmp_path / "taken" / "run")]) == 2
    err = capsys.readouterr().err
    assert "segbench run: error:" in err and str(tmp_path / "taken") in err and "Traceback" not in err


def test_a_write_refused_by_the_file_system_stops_the_run_in_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    append = ResultWriter.append
    calls = []

    def refuse_after_two(self, row):
        calls.append(row)
        if len(calls) > 2:
            raise OSError(errno.EROFS, "Read-only file system", str(self.directory / "cells.jsonl"))
        append(self, row)

    monkeypatch.setattr(ResultWriter, "append", refuse_after_two)
    assert main([*ARGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'cells.jsonl'}: Read-only file system" in err and "Traceback" not in err
    assert len(results.load(out)) == 2  # what was written before stays


def test_a_second_run_on_a_locked_directory_fails_in_one_line(tmp_path, capsys):
    out = tmp_path / "busy"
    with ResultWriter(out, {"run_id": "other"}):
        assert main([*ARGS, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{out} is being written by another segbench run" in err and "Traceback" not in err
    assert main([*ARGS, "--out", str(out), "--resume"]) == 0  # the lock went with the other writer


@pytest.mark.slow
def test_compare_and_report_work_on_a_partial_run(tmp_path, capsys):
    out = tmp_path / "partial"
    assert main([*ARGS, "--mode", "numpy,eager,xla", "--pass", "forward", "--out", str(out)]) == 0
    journal = out / "cells.jsonl"
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    xla = next(r for r in rows if r["mode"] == "xla")
    kept = [r for r in rows if r["mode"] != "eager" and r is not xla]
    killed = {**xla, "status": "killed", "error": "the worker was killed by signal SIGKILL", "median_s": None}
    journal.write_text("".join(json.dumps(r) + "\n" for r in [*kept, killed]))
    capsys.readouterr()
    assert main(["compare", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cells that did not run" in printed and "SIGKILL" in printed
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "index.html").exists()
    frame = results.load(out)
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(kept) + 1
