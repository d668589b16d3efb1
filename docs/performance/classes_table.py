"""The share of the read ceiling as C grows, from a run of the classes sweep (README, Performance).

.venv/bin/python docs/performance/classes_table.py results/published/intel-xeon/scaling-classes
"""

from __future__ import annotations

import sys

import pandas as pd

from segbench import results


def table(run: str) -> pd.DataFrame:
    frame = results.load(run)
    frame = frame[(frame["status"] == "ok") & (frame["pass"] == "forward")]
    frame = frame.assign(column=frame["formulation"] + " " + frame["mode"])
    share = frame.pivot_table(index=["loss", "classes"], columns="column", values="roofline_fraction") * 100
    time = frame.pivot_table(index=["loss", "classes"], columns="column", values="median_s") * 1e3
    ceiling = frame.groupby("classes")["ceiling_gb_per_s"].first()
    out = pd.DataFrame(index=share.index)
    out["ceiling GB/s"] = [f"{ceiling[c]:.1f}" for _, c in share.index]
    for column in [c for c in ("fused function", "fused xla", "blocked function", "blocked xla") if c in share]:
        out[f"{column} ms"] = [f"{v:.0f}" if v >= 100 else f"{v:.3g}" for v in time[column]]
        out[f"{column} %"] = [f"{v:.0f}" for v in share[column]]
    return out.reset_index()


if __name__ == "__main__":
    print(table(sys.argv[1]).to_markdown(index=False, disable_numparse=True))
