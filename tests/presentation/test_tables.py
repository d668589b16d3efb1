"""Every command's tables fit 100 columns in a terminal, say what they left out, and start quietly."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from segbench.cli.parser import main
from segbench.presentation import tables

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "results" / "published" / "intel-xeon"
# What TensorFlow's C++ runtime prints at start-up when nobody keeps it from the terminal.
STARTUP_LINES = ("absl::InitializeLog", "oneDNN custom operations", "cuda_", "Unable to register", "TF-TRT")


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def wide_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "loss": ["missing_annotation_crossentropy"] * 3,
            **{f"column number {i}": [1.0 * i, 2.0, 3.0] for i in range(12)},
        }
    )


def test_a_wide_table_loses_columns_until_it_fits_and_says_which():
    text = tables.render(wide_table(), "terminal", drop_first=["column number 3"])
    assert widest(text) <= tables.WIDTH
    assert "missing_annotation_crossentropy" in text  # the first column always stays
    note = text[text.index("(not shown") :].replace("\n", " ")
    assert note.startswith("(not shown to fit 100 columns: column number 3, column number 11, column number 10")
    assert "--columns" in note and "--format csv" in note


def test_markdown_and_csv_keep_every_column():
    for fmt in ("markdown", "csv"):
        text = tables.render(wide_table(), fmt)
        assert "column number 11" in text and "column number 3" in text and "not shown" not in text


def test_columns_choose_what_is_shown_and_unknown_ones_are_named():
    text = tables.render(wide_table(), "terminal", columns=["column number 11", "loss"])
    assert text.splitlines()[0].split()[:3] == ["column", "number", "11"]
    assert "column number 3" not in text
    with pytest.raises(ValueError, match=r"--columns: no column 'nope'.*it has: loss, column number 0"):
        tables.render(wide_table(), "csv", columns=["nope"])
    assert tables.parse_columns(" loss, best ms ") == ("loss", "best ms")
    with pytest.raises(ValueError, match=r"--columns takes comma-separated"):
        tables.parse_columns(" , ")


def test_bad_format_is_named():
    with pytest.raises(ValueError, match=r"--format must be one of terminal, markdown, csv"):
        tables.render(wide_table(), "html")


def test_compare_of_one_run_fits_and_keeps_what_matters(capsys):
    assert main(["compare", str(PUBLISHED / "default")]) == 0
    out = capsys.readouterr().out
    assert widest(out) <= 100
    header = next(line for line in out.splitlines() if line.startswith("loss ") and "shape" in line)
    for column in ("eager", "xla x", "best", "time", "%ceil"):
        assert column in header
    assert "never" in out or "pays" in out  # break-even calls as integers or never, not 2.71e+03
    assert "e+0" not in out


@pytest.mark.slow
def test_compare_formats_and_columns(capsys):
    run = str(PUBLISHED / "default")
    assert main(["compare", run, "--columns", "loss,shape,best,time"]) == 0
    out = capsys.readouterr().out
    assert "loss" in out and "eager" not in out.split("==")[-1]
    assert main(["compare", run, "--format", "csv"]) == 0
    assert "function /numpy x" in capsys.readouterr().out.splitlines()[0]
    assert main(["compare", run, "--format", "markdown"]) == 0
    assert "| categorical_crossentropy" in capsys.readouterr().out
    assert main(["compare", run, "--columns", "nope"]) == 2
    assert "--columns: no table has 'nope'" in capsys.readouterr().err


def test_compare_of_two_runs_fits(capsys):
    old, new = PUBLISHED / "verdicts" / "quick_A", PUBLISHED / "verdicts" / "quick_B"
    main(["compare", str(old), str(new)])
    captured = capsys.readouterr()
    assert widest(captured.out) <= 100 and "verdict" in captured.out
    main(["compare", str(old), str(new), "--format", "csv"])
    assert "categorical_crossentropy/" in capsys.readouterr().out  # full cell names where width is free


@pytest.mark.parametrize(
    "command",
    [["values"], ["check", "--mode", "numpy,xla", "--scenario", "seed", "--loss", "marginal_crossentropy"]],
    ids=["values", "check"],
)
@pytest.mark.slow
def test_values_and_check_fit_and_start_quietly(command):
    env = {k: v for k, v in os.environ.items() if k not in ("SEGBENCH_PLUGINS", "SEGBENCH_VERBOSE")}
    done = subprocess.run(
        [sys.executable, "-m", "segbench.cli", *command], capture_output=True, text=True, cwd=ROOT, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr
    assert widest(done.stdout) <= 100, done.stdout
    for line in STARTUP_LINES:
        assert line not in done.stdout + done.stderr


@pytest.mark.slow
def test_run_takes_the_same_format_and_columns(tmp_path, capsys):
    args = ["run", "--profile", "tiny", "--loss", "marginal_crossentropy", "--mode", "numpy,xla", "--res", "16"]
    args += ["--pass", "forward", "--quiet", "--out", str(tmp_path / "r")]
    assert main([*args, "--columns", "loss,shape,time"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("loss"))
    assert header.split() == ["loss", "shape", "time"] and widest(out.split("Saved")[0]) <= 100


def test_tables_take_the_terminal_width_and_100_without_one(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert tables.terminal_width() == 80
    narrow = tables.render(wide_table(), "terminal")
    assert widest(narrow) <= 80 and "fit 80 columns" in narrow
    monkeypatch.setenv("COLUMNS", "160")
    wide = tables.render(wide_table(), "terminal")
    assert 100 < widest(wide) <= 160 and wide.splitlines()[0].count("column") > narrow.splitlines()[0].count("column")

    def no_terminal(*args):
        raise OSError("not a terminal")

    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr(os, "get_terminal_size", no_terminal)
    assert tables.terminal_width() == 100


@pytest.mark.parametrize("columns", [80, 120])
def test_help_wraps_at_the_terminal_width_without_markup(columns, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(columns))
    for command in ("run", "compare", "ab", "merge", "report", "check", "values"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert widest(text) <= columns, (command, text)
        assert "``" not in text and ":func:`" not in text, command


def test_compare_of_two_runs_uses_the_terminal_width(monkeypatch, capsys):
    old, new = PUBLISHED / "verdicts" / "ab_slowed" / "A", PUBLISHED / "verdicts" / "ab_slowed" / "B"
    shown = {}
    for columns in (80, 120):
        monkeypatch.setenv("COLUMNS", str(columns))
        assert main(["compare", str(old), str(new)]) == 1
        out = capsys.readouterr().out
        assert widest(out) <= columns, out
        assert out.startswith("SLOWER (exit 1): 32 cells compared: 1 slower")  # the answer first
        header = next(line for line in out.splitlines() if line.startswith("cell "))
        shown[columns] = header.split("  ")
    assert len([c for c in shown[120] if c.strip()]) > len([c for c in shown[80] if c.strip()])
