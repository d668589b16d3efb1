"""``segbench merge RUN... --out DIR``: the shards of a sweep (or any runs) combined into one run.

Runs measured on different machines or software (segbench.measurement.environment.IDENTITY: CPU model and
flags, CPUs, threads, BLAS, oneDNN, TensorFlow, numpy and Python versions and build, device) are not
comparable cell by cell: merging them is refused, naming what differs, unless ``--across-machines``
says so. Runs of different commits, profiles or segbench versions are refused unless
``--allow-mixed`` (which allows any mix). A cell measured in two of the runs is refused too (the
shards of one sweep never overlap). An incomplete set of shards (1/2 without 2/2) is refused unless
``--partial``: the merged run then says PARTIAL in run.json ("partial", "missing_shards") and
wherever segbench shows it. ``--out`` must be a new or empty directory.

The merged directory is an ordinary run: each row keeps its own run id, shard and machine, and
``run.json`` lists the runs it came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from segbench.cli import options
from segbench.measurement import environment
from segbench.results import storage as results
from segbench.results.storage import KEY_COLUMNS, ResultWriter
from segbench.verdicts import compare

MUST_AGREE = ("segbench_version", "git_commit", "profile")
"""Besides the machine identity (segbench.measurement.environment.IDENTITY): what the shards of one sweep share."""


def merge(
    runs: list[str | Path],
    out: str | Path,
    *,
    allow_mixed: bool = False,
    across_machines: bool = False,
    partial: bool = False,
) -> pd.DataFrame:
    """Combine ``runs`` into the run directory ``out``; returns the merged table."""
    if len(runs) < 1:
        raise ValueError("merge needs at least one RUN")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} already exists and is not empty: give a new directory")
    frames = [results.load(run).assign(_origin=str(run)) for run in runs]
    if not (allow_mixed or across_machines):
        compare.machine_check(
            {str(run): f for run, f in zip(runs, frames, strict=True)},
            across_machines=False,
            what="their cells are not comparable (pass --across-machines to merge them anyway)",
        )
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
    missing = compare.missing_shards(frame)
    if missing and not partial:
        have = ", ".join(sorted(set(frame["shard"].dropna().astype(str)))) or "none"
        raise ValueError(
            f"the runs are an incomplete set of shards (have {have}; missing {', '.join(missing)}): "
            "merge them all, or pass --partial to make a run marked partial"
        )
    meta = {
        "source": "segbench merge",
        "merged_from": [str(run) for run in runs],
        "merged_at": environment.now(),
        "partial": bool(missing),
        "missing_shards": missing,
        **_common_identity(frame),
    }
    out.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(out / results.RUN_META, json.dumps(meta, indent=2))
    with ResultWriter(out, {}) as writer:  # rows keep their own run's metadata
        for row in frame.drop(columns="_origin").to_dict("records"):
            writer.append({k: (None if pd.isna(v) else v) for k, v in row.items()})
    return results.load(out)


def _common_identity(frame: pd.DataFrame) -> dict[str, str]:
    """The identity values every merged row shares (a merge --across-machines keeps only those)."""
    values = environment.identity_values(frame)
    return {c: v[0] for c, v in values.items() if len(v) == 1 and c in frame.columns}


def _command(args: argparse.Namespace) -> int:
    merged = merge(
        args.runs, args.out, allow_mixed=args.allow_mixed, across_machines=args.across_machines, partial=args.partial
    )
    shards = sorted(set(merged["shard"].dropna()))
    print(
        f"merged {len(args.runs)} runs ({', '.join(shards) if shards else 'unsharded'}) into {args.out}: "
        f"{len(merged)} cells, {int((merged['status'] == 'ok').sum())} ok",
        file=sys.stderr,
    )
    note = compare.partial_note(merged)
    if note:
        print(f"{args.out}: {note}", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "merge",
        help="combine runs (e.g. the shards of one sweep) into one run directory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or .jsonl/.parquet/.csv tables)")
    parser.add_argument("--out", required=True, help="the merged run directory (must be new or empty)")
    options.add_machine_option(parser, "merge them anyway (each row keeps its own machine)")
    parser.add_argument(
        "--allow-mixed",
        action="store_true",
        help="merge runs of different commits, profiles or segbench versions (and machines) anyway",
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="merge an incomplete set of shards; the merged run is marked partial (run.json and every display)",
    )
    parser.set_defaults(handler=_command)
