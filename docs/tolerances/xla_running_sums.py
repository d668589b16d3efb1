"""The longest float32 running sum of every XLA cell at a bandwidth-sized shape, read from its
optimized HLO (segbench.losses.xla_sums): the n of its sequential tolerance, beside the errors of
measure_errors.py. Compiles each cell once and runs nothing.

    PYTHONPATH=$PWD .venv/bin/python docs/tolerances/xla_running_sums.py --classes 4,32 \
        --out docs/tolerances/xla_running_sums.csv
"""

from __future__ import annotations

import argparse
import platform

import pandas as pd

from segbench.losses import plugins
from segbench.losses.registry import FORMULATIONS, LOSSES, loss_fn, unsupported
from segbench.losses.xla_sums import compiled_running_sum
from segbench.measurement.sweep import scene_for


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--classes", default="4,32")
    parser.add_argument("--reductions", default="mean,sum")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    plugins.load_all(export=False)
    rows = []
    for classes in (int(c) for c in args.classes.split(",")):
        scene = scene_for(args.batch, args.size, args.size, classes, "float32")
        for loss in LOSSES:
            for formulation in FORMULATIONS:
                for gradient in (False, True):
                    if unsupported(loss, formulation, "xla", gradient):
                        continue
                    for reduction in args.reductions.split(","):
                        fn = loss_fn(loss, "xla", formulation=formulation, gradient=gradient, reduction=reduction)
                        running = compiled_running_sum(fn, scene.y_true, scene.y_pred)
                        row = {
                            "shape": f"{args.batch}x{args.size}x{args.size}x{classes}",
                            "loss": loss,
                            "formulation": formulation,
                            "mode": "xla",
                            "pass": "forward+backward" if gradient else "forward",
                            "reduction": reduction,
                            "running": running,
                        }
                        print(row, flush=True)
                        rows.append(row)
    table = pd.DataFrame(rows)
    table["running"] = table["running"].astype("Int64")
    table["cpu"] = platform.processor() or platform.machine()
    table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
