"""What varies between the builds of a ``segbench ab`` comparison: the machine, or the process?

    python docs/verdicts/build_spread.py results/published/amd-epyc-zen5/verdicts/ab_quick_1 ...

For every cell, the log of each build's median is split into what both sides' build k share (the
mean of A's and B's, measured at the same moment: the machine's drift) and what is a side's own
(their difference / sqrt 2: the process, where its memory landed, which core ran it). Printed per
comparison: the median over cells of each standard deviation across builds, and of one side's
builds alone (what Welch's test on the builds sees).
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import numpy as np

from segbench.results.storage import JOURNAL, read_journal


def main(folders: list[str]) -> int:
    for folder in folders:
        builds: dict[tuple, dict[tuple[str, int], float]] = collections.defaultdict(dict)
        for side in ("A", "B"):
            for row in read_journal(Path(folder) / side / JOURNAL):
                if row.get("status") != "ok":
                    continue
                key = tuple(row[c] for c in ("loss", "formulation", "mode", "pass", "batch", "height", "width"))
                builds[key][(side, int(row["visit"]))] = float(np.log(np.median(json.loads(row["raw_times_s"]))))
        one_side, shared, own = [], [], []
        for medians in builds.values():
            visits = sorted({visit for side, visit in medians if (("A", visit) in medians and ("B", visit) in medians)})
            if len(visits) < 2:
                continue
            a = np.array([medians[("A", v)] for v in visits])
            b = np.array([medians[("B", v)] for v in visits])
            one_side.append(np.std(a, ddof=1))
            shared.append(np.std((a + b) / 2, ddof=1))
            own.append(np.std(b - a, ddof=1) / np.sqrt(2))
        print(
            f"{folder}: {len(own)} cells; sd of the log build medians: one side {np.median(one_side):.3f}, "
            f"shared by both sides {np.median(shared):.3f}, a side's own {np.median(own):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
