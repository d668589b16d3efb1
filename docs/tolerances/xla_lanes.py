"""How XLA on the CPU really adds a long float32 reduction: its relative error against float64, on
independent uniform terms, beside a simulation of k interleaved running sums (k vector lanes, each
adding every k-th term one after the other, the lanes then added exactly). Errors only: the
timing of the machine does not matter, so it can run beside other work.

    PYTHONPATH=$PWD .venv/bin/python docs/tolerances/xla_lanes.py
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

U = 2.0**-24  # float32's unit roundoff
LANES = (1, 8, 16, 64)


def lanes(x: np.ndarray, k: int) -> np.ndarray:
    """The sum of each row of ``x`` as k interleaved float32 running sums, then added in float64."""
    n = x.shape[-1]
    chains = x.reshape(x.shape[0], n // k, k)
    return np.add.accumulate(chains, axis=1, dtype=np.float32)[:, -1, :].astype(np.float64).sum(axis=1)


def error(got: np.ndarray, exact: np.ndarray) -> float:
    """The median relative error of ``got`` against ``exact``, in u."""
    return float(np.median(np.abs(got.astype(np.float64) - exact) / exact) / U)


def main() -> None:
    rng = np.random.default_rng(0)
    print("median relative error of a row's sum, in u (2^-24), over the rows; uniform terms in [0.01, 1)")
    print(f"{'n':>8} {'rows':>5} {'XLA row':>8} {'XLA column':>11} " + " ".join(f"{f'{k} lanes':>9}" for k in LANES))
    for log_n in (10, 12, 14, 16, 18, 20):
        n = 2**log_n
        rows = max(2**22 // n, 8)
        x = rng.uniform(0.01, 1.0, size=(rows, n)).astype(np.float32)
        exact = x.astype(np.float64).sum(axis=1)
        row = tf.function(lambda t: tf.reduce_sum(t, axis=1), jit_compile=True)(tf.constant(x)).numpy()
        column = tf.function(lambda t: tf.reduce_sum(t, axis=0), jit_compile=True)(
            tf.constant(np.ascontiguousarray(x.T))
        ).numpy()
        simulated = " ".join(f"{error(lanes(x, k), exact):>9.2f}" for k in LANES)
        print(f"{n:>8} {rows:>5} {error(row, exact):>8.2f} {error(column, exact):>11.2f} {simulated}")


if __name__ == "__main__":
    main()
