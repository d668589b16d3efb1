import json
import math

import numpy as np
import pandas as pd
import pytest

from segbench import compare, results
from segbench.cli import main
from segbench.compare import break_even_calls, compare_runs, compile_table, speedup_table, summary


def rows(times: dict[str, float], iqr: float = 0.0, run_id: str = "a", compile_s: dict | None = None):
    base = {
        "loss": "categorical_crossentropy",
        "formulation": "reference",
        "pass": "forward",
        "batch": 8,
        "height": 64,
        "width": 64,
        "classes": 4,
        "dtype": "float32",
        "status": "ok",
        "run_id": run_id,
        "device_name": "test CPU",
    }
    compile_s = compile_s or {}
    return results.conform(
        pd.DataFrame(
            [
                {
                    **base,
                    "mode": m,
                    "median_s": t,
                    "iqr_s": iqr,
                    "compile_s": compile_s.get(m, t),
                    "roofline_fraction": 0.5,
                }
                for m, t in times.items()
            ]
        )
    )


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


def samples(median: float, spread: float = 0.01, n: int = 15, seed: int = 0) -> str:
    """n per-call times around ``median`` with a relative spread, as a run stores them."""
    rng = np.random.default_rng(seed)
    return json.dumps(list(median * np.exp(spread * rng.standard_normal(n))))


def with_samples(frame, spread=0.01, n=15, seed=0):
    raw = [samples(m, spread, n, seed + i) for i, m in enumerate(frame["median_s"])]
    return results.conform(frame.assign(raw_times_s=raw))


def test_compare_runs_gives_a_verdict_per_cell():
    old = with_samples(rows({"eager": 1.0e-3, "function": 1.0e-3, "xla": 1.0e-3}))
    new = with_samples(rows({"eager": 1.5e-3, "function": 1.05e-3, "xla": 0.5e-3}, run_id="b"), seed=10)
    table = compare_runs(old, new, threshold=0.10).set_index("mode")
    assert table.loc["eager", "verdict"] == "slower"
    assert table.loc["eager", "ratio"] == pytest.approx(1.5, rel=0.02)
    assert table.loc["eager", "ratio_low"] > 1.1
    assert table.loc["function", "verdict"] == "no change"  # 5 % is within the 10 % threshold
    assert table.loc["xla", "verdict"] == "faster"


def test_noise_that_cannot_be_resolved_is_inconclusive_not_slower():
    old = with_samples(rows({"eager": 1.0e-3}), spread=0.5, n=4)
    new = with_samples(rows({"eager": 1.3e-3}, run_id="b"), spread=0.5, n=4, seed=7)
    assert compare_runs(old, new, 0.1)["verdict"].iloc[0] == "inconclusive"


def test_rows_without_samples_are_never_slower():
    old, new = rows({"eager": 1e-3}), rows({"eager": 2e-3}, run_id="b")  # medians only
    assert compare_runs(old, new)["verdict"].iloc[0] == "inconclusive"


def test_compare_exit_status(tmp_path, capsys):
    old, new, same = tmp_path / "old.csv", tmp_path / "new.csv", tmp_path / "same.csv"
    with_samples(rows({"eager": 1e-3})).to_csv(old, index=False)
    with_samples(rows({"eager": 2e-3}, run_id="b"), seed=3).to_csv(new, index=False)
    with_samples(rows({"eager": 1.01e-3}, run_id="c"), seed=5).to_csv(same, index=False)
    assert main(["compare", str(old), str(new)]) == 1
    captured = capsys.readouterr()
    assert "slower" in captured.out and "1 slower" in captured.err
    assert main(["compare", str(old), str(same)]) == 0
    assert main(["compare", str(new), str(old)]) == 0  # faster is not a failure
    assert main(["compare", str(old), str(new), "--threshold", "-1"]) == 2
    assert "--threshold must be a positive fraction" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing.csv")]) == 2


def test_a_partial_run_is_summarised_with_missing_modes():
    frame = rows({"eager": 2e-3, "xla": 1e-3}, compile_s={"eager": 0.1, "xla": 1.0})
    other_pass = rows({"eager": 2e-3}).assign(**{"pass": "forward+backward"})  # its xla never ran
    failed = rows({"xla": 1e-3}).assign(**{"pass": "forward+backward", "status": "killed", "error": "signal"})
    text = summary(results.conform(pd.concat([frame, other_pass, failed], ignore_index=True)))
    assert "cells that did not run" in text and "killed" in text


def test_formulations_side_by_side_at_the_largest_shape():
    from segbench.compare import formulation_table

    ref = rows({"eager": 4e-3, "xla": 2e-3})
    fused = rows({"eager": 2e-3, "xla": 0.5e-3}).assign(formulation="fused")
    small = rows({"eager": 1e-3, "xla": 1e-3}).assign(batch=1)  # a smaller shape: left out
    table = formulation_table(pd.concat([ref, fused, small]), "forward").set_index("mode")
    assert table.loc["xla", "fused x reference"] == pytest.approx(4.0)
    assert table.loc["eager", "reference ms"] == pytest.approx(4.0)
    assert table.loc["xla", "fused % ceiling"] == pytest.approx(50.0)
    assert "batch 8, 64x64, C=4" in table.attrs["shape"]


def many_cells(shift: dict[int, float], spread: float = 0.03, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Twelve eager cells (batches 1..12) in two runs with visits; ``shift`` slows some cells in NEW."""
    rng = np.random.default_rng(seed)
    runs = []
    for run_id in ("old", "new"):
        frames = []
        for batch in range(1, 13):
            level = 1e-3 * (shift.get(batch, 1.0) if run_id == "new" else 1.0)
            level *= np.exp(spread * rng.standard_normal())  # this run's drift for this cell
            visits = [level * np.exp(0.005 * rng.standard_normal()) for _ in range(3)]
            samples = [v * np.exp(0.002 * rng.standard_normal()) for v in visits for _ in range(5)]
            frames.append(
                rows({"eager": float(np.median(samples))}, run_id=run_id).assign(
                    batch=batch, raw_times_s=json.dumps(samples), visit_medians_s=json.dumps(visits)
                )
            )
        runs.append(results.conform(pd.concat(frames, ignore_index=True)))
    return runs[0], runs[1]


def test_the_noise_floor_holds_back_run_to_run_drift(monkeypatch):
    # A/A pairs whose every cell drifts ~3 % between the runs while each run's visits agree within
    # 0.5 %: within a run the drift looks significant; against the other cells it is noise.
    def slower(sigmas: float) -> int:
        monkeypatch.setattr(compare, "NOISE_FLOOR_SIGMAS", sigmas)
        pairs = (many_cells({}, spread=0.03, seed=seed) for seed in range(20))
        return sum(int((compare_runs(old, new)["verdict"] == "slower").sum()) for old, new in pairs)

    sigmas = compare.NOISE_FLOOR_SIGMAS
    assert slower(0.0) >= 3  # without the floor: false alarms
    assert slower(sigmas) == 0


def test_a_change_of_every_cell_of_a_mode_is_still_found():
    old, new = many_cells(dict.fromkeys(range(1, 13), 1.3))
    assert (compare_runs(old, new)["verdict"] == "slower").all()


def test_one_clearly_slower_cell_stands_out():
    old, new = many_cells({5: 1.25}, spread=0.01)
    table = compare_runs(old, new).set_index("batch")
    assert table.loc[5, "verdict"] == "slower" and (table.drop(index=5)["verdict"] != "slower").all()


def test_people_read_times_in_their_unit_and_calls_as_integers():
    from segbench.compare import human_calls, human_time

    assert [human_time(t) for t in (85e-6, 8.72e-3, 1.234)] == ["85 µs", "8.72 ms", "1.23 s"]
    assert [human_calls(c) for c in (20000.0, math.inf, 1.0)] == ["20000", "never", "1"]
