"""Shards of a sweep and segbench merge: two shards merged are exactly the unsharded run's cells."""

import json

import pytest

from segbench import results
from segbench.cli.parser import main
from segbench.measurement.runner import run
from segbench.measurement.sweep import PROFILES, Sweep, parse_shard, shard_cases
from segbench.results.merge import merge
from segbench.results.storage import KEY_COLUMNS

TINY = PROFILES["tiny"]
SWEEP = Sweep(
    losses=("categorical_crossentropy", "marginal_crossentropy"),
    modes=("numpy", "eager"),
    batches=(1, 2),
    resolutions=((8, 8),),
)


def keys(frame):
    return sorted(tuple(row) for row in frame[list(KEY_COLUMNS)].itertuples(index=False))


def test_shards_partition_the_sweep_deterministically():
    cases = SWEEP.cases()
    parts = [shard_cases(cases, (k, 3)) for k in (1, 2, 3)]
    assert sorted(c for part in parts for c in part) == sorted(cases)
    assert all(abs(len(p) - len(cases) / 3) < 1 for p in parts)
    assert parts[1] == shard_cases(SWEEP.cases(), (2, 3))


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", ""])
def test_bad_shards_name_the_option(text):
    with pytest.raises(ValueError, match="--shard takes K/N"):
        parse_shard(text)


@pytest.mark.slow
def test_two_shards_merged_are_the_unsharded_run(tmp_path, capsys):
    whole = results.load(run(TINY, SWEEP, out=tmp_path / "whole", progress=False))
    for k in (1, 2):
        run(TINY, SWEEP, out=tmp_path / f"shard{k}", progress=False, shard=(k, 2))
    assert main(["merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"), "--out", str(tmp_path / "merged")]) == 0
    merged = results.load(tmp_path / "merged")
    assert keys(merged) == keys(whole)
    assert set(merged["shard"]) == {"1/2", "2/2"} and (merged["status"] == "ok").all()
    assert json.loads((tmp_path / "merged" / "run.json").read_text())["merged_from"][0].endswith("shard1")
    assert (tmp_path / "merged" / "results.parquet").exists()
    # a shard given twice overlaps itself
    assert main(["merge", str(tmp_path / "shard1"), str(tmp_path / "shard1"), "--out", str(tmp_path / "x")]) == 2
    assert "measure the same cell in more than one run" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_from_different_versions_are_refused_unless_allowed(tmp_path):
    sweep = SWEEP.replace(modes=("numpy",), losses=("categorical_crossentropy",))
    for k in (1, 2):
        run(TINY, sweep, out=tmp_path / f"s{k}", progress=False, shard=(k, 2))
    journal = tmp_path / "s2" / "cells.jsonl"
    rows = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps({**r, "numpy_version": "0.0.1"}) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"different machines or software versions.*numpy: "):
        merge([tmp_path / "s1", tmp_path / "s2"], tmp_path / "m")
    merged = merge([tmp_path / "s1", tmp_path / "s2"], tmp_path / "m", allow_mixed=True)
    assert len(merged) == len(sweep.cases())
