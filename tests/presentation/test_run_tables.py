"""One run's tables: speedups over eager, compile times and break-even calls, formulations side by
side, times in their unit, and the end-of-run summary (also over several dtypes, issue 21 item 5)."""

import math

import pandas as pd
import pytest
from cell_rows import rows

from segbench import results
from segbench.presentation import run_tables
from segbench.presentation.run_tables import break_even_calls, compile_table, speedup_table, summary
from segbench.presentation.tables import human_calls, human_time


def cells(dtype: str, scale: float) -> pd.DataFrame:
    base = {
        "loss": "categorical_crossentropy",
        "formulation": "fused",
        "batch": 1,
        "height": 32,
        "width": 32,
        "classes": 4,
        "dtype": dtype,
        "status": "ok",
        "run_id": "a",
        "device_name": "test CPU",
        "roofline_fraction": 0.5,
    }
    return pd.DataFrame(
        [
            {**base, "mode": mode, "pass": pass_, "median_s": t * scale, "iqr_s": 0.0, "compile_s": t * scale}
            for mode, t in (("eager", 2e-3), ("xla", 1e-3))
            for pass_ in ("forward", "forward+backward")
        ]
    )


def test_the_brief_summary_of_a_run_over_two_dtypes_has_a_row_per_dtype():
    frame = results.conform(pd.concat([cells("float32", 1.0), cells("float16", 2.0)], ignore_index=True))
    text = run_tables.brief(frame)  # raised "The truth value of a Series is ambiguous" before
    assert "float32" in text and "float16" in text
    assert len([line for line in text.splitlines() if line.startswith("categorical_ce")]) == 2


def test_speedup_over_eager_and_best_mode():
    frame = rows({"numpy": 4e-3, "eager": 2e-3, "function": 1e-3, "xla": 0.5e-3})
    table = speedup_table(frame, "forward")
    row = table.iloc[0]
    assert row["eager ms"] == pytest.approx(2.0)
    assert row["xla x"] == pytest.approx(4.0)
    assert row["function x"] == pytest.approx(2.0)
    assert row["numpy x"] == pytest.approx(0.5)
    assert row["xla /numpy x"] == pytest.approx(8.0)
    assert row["best"] == "xla" and row["best ms"] == pytest.approx(0.5)
    assert row["% ceiling"] == pytest.approx(50.0)


def test_break_even_calls():
    # XLA: 1 s first call, then 1 ms; eager: 0.1 s first call, then 2 ms. 0.9 s / 1 ms = 900 calls.
    assert break_even_calls(1.0, 0.1, 1e-3, 2e-3) == 901
    assert break_even_calls(1.0, 0.1, 3e-3, 2e-3) == math.inf  # never catches up
    assert break_even_calls(0.05, 0.1, 3e-3, 2e-3) == 1  # never behind
    frame = rows({"eager": 2e-3, "xla": 1e-3}, compile_s={"eager": 0.1, "xla": 1.0})
    assert compile_table(frame)["xla break-even calls"].iloc[0] == 901


def test_summary_formats():
    frame = rows({"numpy": 4e-3, "eager": 2e-3, "function": 1e-3, "xla": 0.5e-3})
    assert "speedup over eager" in summary(frame)
    assert "| categorical_crossentropy |" in summary(frame, "markdown")
    assert summary(frame, "csv").splitlines()[0].startswith("pass,loss,formulation")


def test_a_partial_run_is_summarised_with_missing_modes():
    frame = rows({"eager": 2e-3, "xla": 1e-3}, compile_s={"eager": 0.1, "xla": 1.0})
    other_pass = rows({"eager": 2e-3}).assign(**{"pass": "forward+backward"})  # its xla never ran
    failed = rows({"xla": 1e-3}).assign(**{"pass": "forward+backward", "status": "killed", "error": "signal"})
    text = summary(results.conform(pd.concat([frame, other_pass, failed], ignore_index=True)))
    assert "cells that did not run" in text and "killed" in text


def test_formulations_side_by_side_at_the_largest_shape():
    ref = rows({"eager": 4e-3, "xla": 2e-3})
    fused = rows({"eager": 2e-3, "xla": 0.5e-3}).assign(formulation="fused")
    small = rows({"eager": 1e-3, "xla": 1e-3}).assign(batch=1)  # a smaller shape: left out
    table = run_tables.formulation_table(pd.concat([ref, fused, small]), "forward").set_index("mode")
    assert table.loc["xla", "fused x reference"] == pytest.approx(4.0)
    assert table.loc["eager", "reference ms"] == pytest.approx(4.0)
    assert table.loc["xla", "fused % ceiling"] == pytest.approx(50.0)
    assert "batch 8, 64x64, C=4" in table.attrs["shape"]


def test_people_read_times_in_their_unit_and_calls_as_integers():
    assert [human_time(t) for t in (85e-6, 8.72e-3, 1.234)] == ["85 µs", "8.72 ms", "1.23 s"]
    assert [human_calls(c) for c in (20000.0, math.inf, 1.0)] == ["20000", "never", "1"]
