"""Every pair of the given runs compared with ``segbench compare``'s verdicts, and the totals.

    python docs/verdicts/pairs.py RUN_A RUN_B [RUN_C ...]
    python docs/verdicts/pairs.py --sigmas 3,4,4.5,5 RUN_A RUN_B [RUN_C ...]

For an A/A study (runs of the same code) every "slower" or "faster" is a false alarm. With
``--sigmas``, only the totals, once per noise floor for separate runs
(segbench.verdicts.compare.SEPARATE_RUNS_NOISE_FLOOR_SIGMAS), to show what each floor would flag.
"""

from __future__ import annotations

import itertools
import sys

import pandas as pd

from segbench import results
from segbench.verdicts import compare, stats


def main(paths: list[str]) -> None:
    sigmas = None
    if paths[:1] == ["--sigmas"]:
        sigmas, paths = [float(s) for s in paths[1].split(",")], paths[2:]
    if len(paths) < 2:
        sys.exit("pairs.py needs two runs or more")
    runs = {path: results.load(path) for path in paths}
    for floor in sigmas or [None]:
        if floor is not None:
            compare.SEPARATE_RUNS_NOISE_FLOOR_SIGMAS = floor
        totals = pd.Series(0, index=list(stats.VERDICTS))
        alarmed = 0
        for old, new in itertools.combinations(paths, 2):
            counts = compare.compare_runs(runs[old], runs[new])["verdict"].value_counts()
            counts = counts.reindex(list(stats.VERDICTS), fill_value=0)
            totals += counts
            alarmed += bool(counts[stats.SLOWER] + counts[stats.FASTER])
            if floor is None:
                print(f"{old} -> {new}: " + ", ".join(f"{int(counts[v])} {v}" for v in stats.VERDICTS))
        head = "all pairs" if floor is None else f"separate-run floor {floor:g} sd, all pairs"
        print(
            f"{head}, {int(totals.sum())} cells: "
            + ", ".join(f"{int(totals[v])} {v}" for v in stats.VERDICTS)
            + f" ({alarmed} of {len(paths) * (len(paths) - 1) // 2} pairs flag a cell)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
