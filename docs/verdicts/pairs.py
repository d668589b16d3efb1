"""Every pair of the given runs compared with ``segbench compare``'s verdicts, and the totals.

    python docs/verdicts/pairs.py RUN_A RUN_B [RUN_C ...]

For an A/A study (runs of the same code) every "slower" or "faster" is a false alarm.
"""

from __future__ import annotations

import itertools
import sys

import pandas as pd

from segbench import results
from segbench.verdicts import compare, stats


def main(paths: list[str]) -> None:
    if len(paths) < 2:
        sys.exit("pairs.py needs two runs or more")
    runs = {path: results.load(path) for path in paths}
    totals = pd.Series(0, index=list(stats.VERDICTS))
    for old, new in itertools.combinations(paths, 2):
        counts = compare.compare_runs(runs[old], runs[new])["verdict"].value_counts()
        counts = counts.reindex(list(stats.VERDICTS), fill_value=0)
        totals += counts
        print(f"{old} -> {new}: " + ", ".join(f"{int(counts[v])} {v}" for v in stats.VERDICTS))
    print(f"all pairs, {int(totals.sum())} cells: " + ", ".join(f"{int(totals[v])} {v}" for v in stats.VERDICTS))


if __name__ == "__main__":
    main(sys.argv[1:])
