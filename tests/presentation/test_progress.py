"""The estimate of time left, replayed on the journals of real default runs (when each visit
finished): from the first 10 % of the run on it must be within 25 % of the real remainder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from segbench.presentation.progress import Expected, Progress, TimeLeft
from segbench.results.storage import read_journal

ROOT = Path(__file__).resolve().parents[2]
RUNS = [
    ROOT / "results" / "published" / "intel-xeon" / "default",  # Intel Xeon
    ROOT.parent / "shared" / "runs" / "default-amd-epyc",  # AMD EPYC, where the checkout has it beside
]


def replay(run: Path):
    """(expected items, seconds each took, seconds since the start when each finished)."""
    rows = pd.DataFrame(read_journal(run / "cells.jsonl"))
    start = pd.Timestamp(json.loads((run / "run.json").read_text())["started_at"])
    finished = (pd.to_datetime(rows["finished_at"]) - start).dt.total_seconds().tolist()
    took = [b - a for a, b in zip([0.0, *finished[:-1]], finished, strict=True)]
    items = [
        Expected(
            (r.batch, r.height, r.width, r.classes, r["mode"], r["pass"]),
            int(r.visit),
            r.batch * r.height * r.width * r.classes,
        )
        for _, r in rows.iterrows()
    ]
    return items, took, finished


def worst_error(run: Path, weighted: bool) -> float:
    items, took, finished = replay(run)
    total = finished[-1]
    estimate = TimeLeft(items if weighted else [Expected(0) for _ in items])
    worst = 0.0
    for seconds, at in zip(took, finished, strict=True):
        estimate.finished(seconds)
        truth = total - at
        if at >= 0.1 * total and truth > 20:  # the last seconds: a 1-second clock, nothing to estimate
            worst = max(worst, abs(estimate.seconds() - truth) / truth)
    return worst


@pytest.mark.parametrize("run", RUNS, ids=["xeon", "amd-epyc"])
def test_time_left_is_within_25_percent_from_the_first_tenth_on(run):
    if not run.exists():
        pytest.skip(f"{run} is not here")
    assert worst_error(run, weighted=True) <= 0.25
    assert worst_error(run, weighted=False) > 0.25  # counting cells alone does not do it: the data can tell


def test_the_log_line_says_the_time_left():
    stream = io.StringIO()
    bar = Progress(3, "visit", every=0.0, stream=stream, expected=[Expected("a", 1, 10)] * 3)
    for label in ("x", "y", "z"):
        bar.update(label)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("  1/3 visits, ") and "left (x)" in lines[0]
    assert "about 0 s left (z)" in lines[-1]


def test_a_skipped_item_teaches_the_estimate_nothing():
    estimate = TimeLeft([Expected("a", 1, 0), Expected("b", 1, 0), Expected("a", 1, 0)])
    estimate.finished(2.0)
    assert estimate.seconds() == pytest.approx(4.0)  # b as a's rate, then a
    estimate.skipped()
    assert estimate.seconds() == pytest.approx(2.0)
