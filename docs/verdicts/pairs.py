"""Every pair of the given runs compared with ``segbench compare``'s verdicts, and the totals.

    python docs/verdicts/pairs.py RUN_A RUN_B [RUN_C ...]
    python docs/verdicts/pairs.py --sigmas 3,4,4.5,5 RUN_A RUN_B [RUN_C ...]
    python docs/verdicts/pairs.py --visits 2 --rounds 3 RUN_A RUN_B [RUN_C ...]

For an A/A study (runs of the same code) every "slower" or "faster" is a false alarm. With
``--sigmas``, only the totals, once per noise floor for separate runs
(segbench.verdicts.compare.SEPARATE_RUNS_NOISE_FLOOR_SIGMAS), to show what each floor would flag.
With ``--visits N`` and/or ``--rounds K``, each run as if it had measured only its first N visits
of a cell and the first K rounds of each visit: the same samples, cut, to see offline what a
cheaper profile would have concluded (a run's journal, cells.jsonl, holds every visit's rounds).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pandas as pd

from segbench import results
from segbench.results import schema, storage
from segbench.verdicts import compare, stats


def load_cut(path: str, visits: int | None, rounds: int | None) -> pd.DataFrame:
    """A run's table from its journal, keeping each cell's first ``visits`` visits and the first
    ``rounds`` rounds of each (None: all)."""
    if visits is None and rounds is None:
        return results.load(path)
    journal = storage.read_journal(Path(path) / storage.JOURNAL)
    if not journal:
        raise SystemExit(f"pairs.py: {path} has no journal ({storage.JOURNAL}) whose visits and rounds could be cut")
    kept = []
    for row in journal:
        if visits is not None and int(row.get("visit") or 1) > visits:
            continue
        if rounds is not None and row.get("raw_times_s"):
            row = {**row, "raw_times_s": json.dumps(json.loads(row["raw_times_s"])[:rounds])}
        kept.append(row)
    return schema.conform(storage.aggregate_visits(pd.DataFrame(kept)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="two run directories or more")
    parser.add_argument("--sigmas", help="noise floors for separate runs to try, comma-separated (totals only)")
    parser.add_argument("--visits", type=int, help="keep each cell's first N visits")
    parser.add_argument("--rounds", type=int, help="keep the first K rounds of each visit")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("pairs.py needs two runs or more")
    for name in ("visits", "rounds"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be 1 or more, got {getattr(args, name)}")
    sigmas = [float(s) for s in args.sigmas.split(",")] if args.sigmas else [None]
    runs = {path: load_cut(path, args.visits, args.rounds) for path in args.runs}
    for floor in sigmas:
        if floor is not None:
            compare.SEPARATE_RUNS_NOISE_FLOOR_SIGMAS = floor
        totals = pd.Series(0, index=list(stats.VERDICTS))
        alarmed = 0
        for old, new in itertools.combinations(args.runs, 2):
            counts = compare.compare_runs(runs[old], runs[new])["verdict"].value_counts()
            counts = counts.reindex(list(stats.VERDICTS), fill_value=0)
            totals += counts
            alarmed += bool(counts[stats.SLOWER] + counts[stats.FASTER])
            if floor is None:
                print(f"{old} -> {new}: " + ", ".join(f"{int(counts[v])} {v}" for v in stats.VERDICTS))
        head = "all pairs" if floor is None else f"separate-run floor {floor:g} sd, all pairs"
        cut = [f"each cell's first {args.visits} visit(s)"] if args.visits else []
        cut += [f"each visit's first {args.rounds} round(s)"] if args.rounds else []
        if cut:
            head += " (" + ", ".join(cut) + ")"
        print(
            f"{head}, {int(totals.sum())} cells: "
            + ", ".join(f"{int(totals[v])} {v}" for v in stats.VERDICTS)
            + f" ({alarmed} of {len(args.runs) * (len(args.runs) - 1) // 2} pairs flag a cell)"
        )


if __name__ == "__main__":
    main()
