"""Measure how far every float32 implementation is from the float64 oracle at a bandwidth-sized
shape: the numbers behind the constants of segbench/losses/tolerances.py.

    PYTHONPATH=$PWD .venv/bin/python docs/tolerances/measure_errors.py --classes 4 --out docs/tolerances/errors_c4.csv
    PYTHONPATH=$PWD .venv/bin/python docs/tolerances/measure_errors.py --classes 32 --reductions mean \
        --modes function,xla --out docs/tolerances/errors_c32.csv

One row per loss x formulation x mode x pass x reduction (mean, sum), with the value's relative
error, and for forward+backward with reduction mean the gradient's error statistics:
``grad_rel`` = max over entries of |d| / (|g| + typical) (typical: the median |g| of the nonzero
entries), the quantity segbench.losses.tolerances bounds; ``grad_rel_big`` = max |d| / |g| over entries
with |g| >= typical. The oracle is computed a chunk of images at a time (segbench.losses.oracle).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from segbench.losses import oracle, plugins
from segbench.losses.registry import FORMULATIONS, LOSSES, MODES, loss_fn, unsupported
from segbench.measurement.sweep import scene_for


def typical(grad: np.ndarray) -> float:
    nonzero = np.abs(grad[grad != 0])
    return float(np.median(nonzero)) if nonzero.size else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--losses", default="")
    parser.add_argument("--formulations", default=",".join(FORMULATIONS))
    parser.add_argument("--reductions", default="mean,sum")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    plugins.load_all(export=False)
    scene = scene_for(args.batch, args.size, args.size, args.classes, "float32")
    y_true, y_pred = scene.y_true, scene.y_pred
    rows = []
    losses = args.losses.split(",") if args.losses else list(LOSSES)
    for loss in losses:
        start = time.time()
        expected = {r: float(oracle.loss_value(loss, y_true, y_pred, r)) for r in args.reductions.split(",")}
        grad = oracle.gradient(loss, y_true, y_pred, "mean")
        scale = typical(grad)
        print(f"{loss}: oracle {time.time() - start:.0f} s", flush=True)
        for formulation in args.formulations.split(","):
            for mode in args.modes.split(","):
                for gradient in (False, True):
                    if unsupported(loss, formulation, mode, gradient):
                        continue
                    for reduction in args.reductions.split(","):
                        fn = loss_fn(loss, mode, formulation=formulation, gradient=gradient, reduction=reduction)
                        result = fn(y_true, y_pred)
                        value = float(np.asarray(result[0] if gradient else result))
                        row = {
                            "loss": loss,
                            "formulation": formulation,
                            "mode": mode,
                            "pass": "forward+backward" if gradient else "forward",
                            "reduction": reduction,
                            "value_rel": abs(value - expected[reduction]) / abs(expected[reduction]),
                            "oracle": expected[reduction],
                        }
                        if gradient and reduction == "mean":
                            got = np.asarray(result[1], dtype=np.float64)
                            diff = np.abs(got - grad)
                            row["grad_rel"] = float((diff / (np.abs(grad) + scale)).max())
                            big = np.abs(grad) >= scale
                            row["grad_rel_big"] = float((diff[big] / np.abs(grad[big])).max())
                            row["grad_typical"] = scale
                            row["grad_max"] = float(np.abs(grad).max())
                            del got, diff
                        rows.append(row)
                        print(row, flush=True)
                        pd.DataFrame(rows).to_csv(args.out + ".partial", index=False, float_format="%.3g")
        del grad
    table = pd.DataFrame(rows)
    table.insert(0, "shape", f"{args.batch}x{args.size}x{args.size}x{args.classes}")
    table["cpu"] = platform.processor() or platform.machine()
    table.to_csv(args.out, index=False, float_format="%.3g")
    Path(args.out + ".partial").unlink(missing_ok=True)  # the rows so far, written while it ran


if __name__ == "__main__":
    main()
