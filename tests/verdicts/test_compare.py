import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cell_rows import rows

from segbench import results
from segbench.cli.parser import main
from segbench.verdicts import compare, stats
from segbench.verdicts.compare import compare_runs


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
    assert "slower" in captured.out and "1 slower" in captured.out.splitlines()[0]  # the answer first
    assert main(["compare", str(old), str(same)]) == 0
    assert main(["compare", str(new), str(old)]) == 0  # faster is not a failure
    assert main(["compare", str(old), str(new), "--threshold", "-1"]) == 2
    assert "--threshold must be a positive fraction" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing.csv")]) == 2


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


@pytest.mark.slow
def test_the_noise_floor_holds_back_run_to_run_drift(monkeypatch):
    # A/A pairs whose every cell drifts ~3 % between the runs while each run's visits agree within
    # 0.5 %: within a run the drift looks significant; against the other cells it is noise.
    def slower(sigmas: float) -> int:
        monkeypatch.setattr(compare, "SEPARATE_RUNS_NOISE_FLOOR_SIGMAS", sigmas)
        pairs = (many_cells({}, spread=0.03, seed=seed) for seed in range(20))
        return sum(int((compare_runs(old, new)["verdict"] == "slower").sum()) for old, new in pairs)

    sigmas = compare.SEPARATE_RUNS_NOISE_FLOOR_SIGMAS
    assert slower(0.0) >= 3  # without the floor: false alarms
    assert slower(sigmas) == 0


def test_a_change_of_every_cell_of_a_mode_is_still_found():
    old, new = many_cells(dict.fromkeys(range(1, 13), 1.3))
    assert (compare_runs(old, new)["verdict"] == "slower").all()


def test_one_clearly_slower_cell_stands_out():
    old, new = many_cells({5: 1.25}, spread=0.01)
    table = compare_runs(old, new).set_index("batch")
    assert table.loc[5, "verdict"] == "slower" and (table.drop(index=5)["verdict"] != "slower").all()


def as_ab_sides(old: pd.DataFrame, new: pd.DataFrame, overlap: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two runs as the sides of segbench ab: measured at the same time, or on different days."""
    times = {"old": ("2026-12-01T10:00:00+00:00", "2026-12-01T10:05:00+00:00")}
    times["new"] = times["old"] if overlap else ("2026-12-02T10:00:00+00:00", "2026-12-02T10:05:00+00:00")
    return tuple(
        frame.assign(source="segbench ab", started_at=times[side][0], finished_at=times[side][1])
        for side, frame in (("old", old), ("new", new))
    )


def test_only_the_two_sides_of_one_ab_run_count_as_interleaved():
    old, new = many_cells({})
    assert not compare.interleaved(old, new)  # two separate runs
    assert compare.interleaved(*as_ab_sides(old, new, overlap=True))
    assert not compare.interleaved(*as_ab_sides(old, new, overlap=False))  # ab runs of two days


def test_separate_runs_are_held_to_a_higher_noise_floor_than_interleaved_ones():
    # the cells drift by a robust sd of ~4 % between the runs; one cell is 15 % slower (plus its
    # drift): beyond three sd of the drift, within five
    old, new = many_cells({5: 1.15}, spread=0.04, seed=0)
    separate = compare_runs(old, new).set_index("batch")
    sd = np.log(separate["noise_floor"].iloc[0]) / compare.SEPARATE_RUNS_NOISE_FLOOR_SIGMAS
    change = abs(np.log(separate.loc[5, "ratio"]) - np.log(separate["ratio"]).median())
    assert compare.NOISE_FLOOR_SIGMAS * sd < change < compare.SEPARATE_RUNS_NOISE_FLOOR_SIGMAS * sd
    together = compare_runs(*as_ab_sides(old, new, overlap=True)).set_index("batch")
    assert separate.loc[5, "verdict"] == "inconclusive" and together.loc[5, "verdict"] == "slower"


def grid_runs(
    shift: dict[tuple, float] | None = None, noisy: tuple = (), *, load=("4.0 3.0 2.0", "6.0 5.0 4.0"), seed=0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two runs of the quick profile's categorical_crossentropy/reference cells (4 modes x 2
    passes x 2 batches), 3 visits each; ``shift`` makes (mode, pass, batch) cells slower or faster
    in NEW, ``noisy`` cells' visits disagree by 30 %."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    runs = []
    for run_id, commit, load_avg in (("old", "a" * 40, load[0]), ("new", "b" * 40, load[1])):
        frames = []
        for mode in ("numpy", "eager", "function", "xla"):
            for pass_ in ("forward", "forward+backward"):
                for batch in (1, 8):
                    key = (mode, pass_, batch)
                    level = 1e-3 * (shift.get(key, 1.0) if run_id == "new" else 1.0)
                    spread = 0.3 if key in noisy else 0.003
                    visits = [level * np.exp(spread * rng.standard_normal()) for _ in range(3)]
                    samples = [v * np.exp(0.002 * rng.standard_normal()) for v in visits for _ in range(5)]
                    frames.append(
                        rows({mode: float(np.median(samples))}, run_id=run_id).assign(
                            **{"pass": pass_, "batch": batch},
                            raw_times_s=json.dumps(samples),
                            visit_medians_s=json.dumps(visits),
                            git_commit=commit,
                            profile="quick",
                            source="segbench run",
                            cpu_count=2,
                            load_avg_start=load_avg,
                            load_avg_end=load_avg,
                        )
                    )
        runs.append(results.conform(pd.concat(frames, ignore_index=True)))
    return runs[0], runs[1]


def run_compare(tmp_path, capsys, old, new, *args, columns=None, monkeypatch=None):
    paths = []
    for name, frame in (("old", old), ("new", new)):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        paths.append(str(path))
    status = main(["compare", *paths, *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_slower_first_then_faster_then_inconclusive_and_no_change_counted(tmp_path, capsys):
    old, new = grid_runs(
        {("xla", "forward", 8): 1.14, ("eager", "forward", 1): 0.8}, noisy=(("function", "forward", 1),)
    )
    status, out, err = run_compare(tmp_path, capsys, old, new)
    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith("SLOWER (exit 1): 16 cells compared: 1 slower, 1 faster, 1 inconclusive, 13 no change")
    slower = next(i for i, line in enumerate(lines) if " slower " in line)
    faster = next(i for i, line in enumerate(lines) if " faster " in line)
    inconclusive = next(i for i, line in enumerate(lines) if " inconclusive " in line and "cells" not in line)
    assert slower < faster < inconclusive
    assert "categorical_ce/reference/xla/fwd b8 64x64" in lines[slower] and "+14 % (" in lines[slower]
    assert "-20 % (" in lines[faster]
    assert not any(" no change " in line for line in lines if "cells" not in line)  # hidden ...
    assert "... and 13 cells with no change (--all shows them)" in out  # ... behind a count
    status, every, _ = run_compare(tmp_path, capsys, old, new, "--all")
    assert sum(" no change " in line and "cells" not in line for line in every.splitlines()) == 13
    # CSV and Markdown list every cell, the changed ones first
    _, csv, err = run_compare(tmp_path, capsys, old, new, "--format", "csv")
    table = pd.read_csv(pd.io.common.StringIO(csv))
    assert len(table) == 16 and list(table["verdict"][:3]) == ["slower", "faster", "inconclusive"]
    assert "1 slower" in err
    _, markdown, _ = run_compare(tmp_path, capsys, old, new, "--format", "markdown")
    assert markdown.count("| categorical_crossentropy/") == 16


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_without_a_slower_cell_the_output_fits_15_lines(columns, monkeypatch, capsys):
    published = Path(__file__).resolve().parents[2] / "results" / "published" / "intel-xeon" / "verdicts"
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["compare", str(published / "quick_A"), str(published / "quick_C")]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert len(text.splitlines()) <= 15, text
    assert max(len(line) for line in captured.out.splitlines()) <= columns, captured.out
    assert captured.out.splitlines()[0].startswith("96 cells compared: 0 slower, 0 faster")  # the answer first
    lines = captured.out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    assert rule <= 3 and "inconclusive" in lines[rule + 1]  # the table right under it


def test_no_change_only_where_the_interval_shows_it():
    old, new = grid_runs(noisy=(("function", "forward", 1), ("xla", "forward+backward", 8)))
    table = compare_runs(old, new).set_index(["mode", "pass", "batch"])
    noisy = table.loc[("function", "forward", 1)]
    assert noisy["verdict"] == "inconclusive" and noisy["reason"] in (stats.BEYOND_THE_BAND, stats.NOT_RESOLVED)
    calm = table.drop(index=[("function", "forward", 1), ("xla", "forward+backward", 8)])
    assert (calm["verdict"] == "no change").all()
    assert ((calm["ratio_low"] >= 1 / 1.1) & (calm["ratio_high"] <= 1.1)).all()


@pytest.mark.slow
def test_published_aa_pairs_stay_clean_and_say_no_change_only_when_shown():
    from segbench.verdicts import stats

    published = Path(__file__).resolve().parents[2] / "results" / "published" / "intel-xeon" / "verdicts"
    runs = [results.load(published / f"quick_{x}") for x in "ABCD"]
    for i in range(4):
        for j in range(i + 1, 4):
            table = compare_runs(runs[i], runs[j])
            assert not table["verdict"].isin(["slower", "faster"]).any()
            same = table[table["verdict"] == "no change"]
            assert all(
                stats.within_band(lo, hi, 0.1) for lo, hi in zip(same["ratio_low"], same["ratio_high"], strict=True)
            )


def test_many_inconclusive_cells_say_why_and_the_command_that_measures_them(tmp_path, capsys):
    from segbench.cli.options import sweep_from_args
    from segbench.cli.parser import build_parser

    noisy = (("function", "forward", 1), ("function", "forward", 8), ("xla", "forward+backward", 1))
    old, new = grid_runs(noisy=noisy)
    status, out, _ = run_compare(tmp_path, capsys, old, new)
    assert status == 0
    flat = " ".join(out.split())
    assert "why 3 inconclusive" in flat
    assert "load average 4.0-6.0 on 2 CPUs" in flat
    assert "separate runs are weaker than segbench ab" in flat
    assert "spread by a median" in flat  # the noise measured in the runs
    commands = [
        line.strip() for line in out.replace("\\\n", " ").splitlines() if line.strip().startswith("segbench ab")
    ]
    assert commands and all(c.startswith(f"segbench ab {'a' * 10} {'b' * 10} --profile quick") for c in commands)
    selected = set()
    for command in commands:
        args = build_parser().parse_args(command.split()[1:])
        _, sweep = sweep_from_args(args)
        selected |= {(c.mode, c.pass_, c.batch) for c in sweep.cases()}
    assert selected == set(noisy)  # just those cells, exactly
    # few inconclusive cells (under 5 %): nothing to explain
    old, new = grid_runs()
    assert "why" not in run_compare(tmp_path, capsys, old, new)[1]


def test_names_that_moved_to_presentation_still_resolve_here():
    """Code written against segbench.compare (the flat name) keeps working after the split."""
    import importlib

    assert compare.brief is importlib.import_module("segbench.presentation.run_tables").brief
    for name, module in compare._MOVED.items():
        assert getattr(compare, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        compare.no_such_name  # noqa: B018
