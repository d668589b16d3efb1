"""``segbench merge RUN... --out DIR``: the shards of a sweep (or any runs) combined into one run.

Runs measured on different devices or with different versions (TensorFlow, numpy, Python,
segbench, the git commit, the profile) are not comparable cell by cell: merging them is refused
unless ``--allow-mixed`` says so. A cell measured in two of the runs is refused too (the shards of
one sweep never overlap). The merged directory is an ordinary run: each row keeps its own run id
and shard, and ``run.json`` lists the runs it came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from segbench import environment, results
from segbench.results import KEY_COLUMNS, ResultWriter

MUST_AGREE = (
    "device_name",
    "tensorflow_version",
    "numpy_version",
    "python_version",
    "segbench_version",
    "git_commit",
    "profile",
)


def merge(runs: list[str | Path], out: str | Path, *, allow_mixed: bool = False) -> pd.DataFrame:
    """Combine ``runs`` into the run directory ``out``; returns the merged table."""
    if len(runs) < 1:
        raise ValueError("merge needs at least one RUN")
    out = Path(out)
    if (out / results.JOURNAL).exists():
        raise ValueError(f"--out {out} already holds results: choose a new directory")
    frames = [results.load(run).assign(_origin=str(run)) for run in runs]
    frame = pd.concat(frames, ignore_index=True)
    if not allow_mixed:
        for column in MUST_AGREE:
            values = frame[column].dropna().astype(str).unique()
            if len(values) > 1:
                by_run = "; ".join(
                    f"{run}: {', '.join(f[column].dropna().astype(str).unique()) or '?'}"
                    for run, f in frame.groupby("_origin", sort=False)
                )
                raise ValueError(
                    f"the runs differ in {column} ({by_run}): their cells are not comparable; "
                    "pass --allow-mixed to merge them anyway"
                )
    duplicated = frame[frame.duplicated(list(KEY_COLUMNS), keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        where = sorted(set(duplicated["_origin"]))
        raise ValueError(
            f"{len(duplicated)} rows measure the same cell in more than one run (e.g. {first['loss']}/"
            f"{first['mode']}/{first['pass']}/b{first['batch']}, in {', '.join(where)}): shards never overlap"
        )
    meta = {
        "source": "segbench merge",
        "merged_from": [str(run) for run in runs],
        "merged_at": environment.now(),
    }
    out.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(out / results.RUN_META, json.dumps(meta, indent=2))
    with ResultWriter(out, {}) as writer:  # rows keep their own run's metadata
        for row in frame.drop(columns="_origin").to_dict("records"):
            writer.append({k: (None if pd.isna(v) else v) for k, v in row.items()})
    return results.load(out)


def _command(args: argparse.Namespace) -> int:
    merged = merge(args.runs, args.out, allow_mixed=args.allow_mixed)
    shards = sorted(set(merged["shard"].dropna()))
    print(
        f"merged {len(args.runs)} runs ({', '.join(shards) if shards else 'unsharded'}) into {args.out}: "
        f"{len(merged)} cells, {int((merged['status'] == 'ok').sum())} ok",
        file=sys.stderr,
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "merge",
        help="combine runs (e.g. the shards of one sweep) into one run directory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or .jsonl/.parquet/.csv tables)")
    parser.add_argument("--out", required=True, help="the merged run directory (must be new)")
    parser.add_argument(
        "--allow-mixed", action="store_true", help="merge runs from different devices or versions anyway"
    )
    parser.set_defaults(handler=_command)
