"""Repeat the test suite's slowed-cell A/B many times and print what every run called each cell.

    python docs/verdicts/ab_repeats.py --runs 12 [--delay-ms 1] [--rounds 8] [--builds 4]

Each run makes a fresh copy of this checkout in which one cell, the numpy ``fused`` cross-entropy
forward at 2x16x16 (about 20 µs a call), busy-waits ``--delay-ms`` more per call
(docs/verdicts/slowed_copy.py), then runs ``segbench ab`` between this checkout and the copy over
the 8 numpy cross-entropy cells at batch 1 and 2, 16x16, with the quick profile: the setup of
``tests/verdicts/test_ab.py::test_the_slowed_cell_and_only_it_is_slower``. One line per run: the
slowed cell, then every other cell called slower or faster (a false alarm) or not "no change".
The last line counts the runs with a false alarm.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLOWED = ("fused", "forward", 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--delay-ms", default="1")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--builds", type=int, default=4)
    args = parser.parse_args()

    from segbench.measurement.sweep import PROFILES, Sweep
    from segbench.verdicts.ab import run_ab

    sweep = Sweep(losses=("categorical_crossentropy",), modes=("numpy",), batches=(1, 2), resolutions=((16, 16),))
    alarms = 0
    for run in range(1, args.runs + 1):
        scratch = Path(tempfile.mkdtemp(prefix="segbench-ab-repeat-"))
        slowed_copy = [sys.executable, str(ROOT / "docs" / "verdicts" / "slowed_copy.py"), str(scratch / "tree")]
        slowed_copy += ["--loss", "categorical_crossentropy", "--formulation", "fused", "--mode", "numpy"]
        slowed_copy += ["--pass", "forward", "--shape", "2x16x16", "--delay-ms", args.delay_ms]
        try:
            subprocess.run(slowed_copy, check=True, capture_output=True)
            table = run_ab(
                str(ROOT),
                str(scratch / "tree"),
                PROFILES["quick"],
                sweep,
                out=scratch / "ab",
                rounds=args.rounds,
                visits=args.builds,
                progress=False,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        table["cell"] = list(zip(table["formulation"], table["pass"], table["batch"], strict=True))
        slowed = table[table["cell"] == SLOWED].iloc[0]
        others = table[(table["cell"] != SLOWED) & (table["verdict"] != "no change")]
        false_alarms = others["verdict"].isin(["slower", "faster"]).sum()
        alarms += bool(false_alarms)
        shown = [f"slowed cell {slowed.ratio:.2f} ({slowed.ratio_low:.2f}-{slowed.ratio_high:.2f}) {slowed.verdict}"]
        shown += [
            f"{r.formulation} {r['pass']} b{r.batch} {r.ratio:.2f} ({r.ratio_low:.2f}-{r.ratio_high:.2f}) {r.verdict}"
            for _, r in others.iterrows()
        ]
        print(f"run {run}: " + "; ".join(shown), flush=True)
    print(f"{alarms} of {args.runs} runs called another cell slower or faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
