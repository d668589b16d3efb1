"""How fast XLA:CPU code reads the inputs, against TensorFlow's (Eigen's) reduction, per thread count.

    .venv/bin/python docs/performance/xla_read_rate.py --threads 1 --batch 16
    .venv/bin/python docs/performance/xla_read_rate.py --threads 2 --batch 1

One process per thread count (TensorFlow fixes its thread pools at start). Printed per kernel: the
median of 40 calls and the rate over both inputs' bytes. ``xla interleaved blocks`` is the
blocked formulation's read without its arithmetic (one of the read ceiling's kernels);
``tf.function reduce_sum`` is Eigen's reduction; ``ce blocked`` the cross-entropy's blocked
formulation under XLA. Batch 1 (8 MB of inputs) fits the last-level cache, batch 16 (134 MB) does
not: a kernel as slow in cache as in memory is bound by its own instructions, not by memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--res", type=int, default=512)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import segbench
    from segbench.measurement import device as devices
    from segbench.measurement.cells import _tensorflow_read_kernels
    from segbench.measurement.sweep import scene_for

    scene = scene_for(args.batch, args.res, args.res, 4, "float32")
    nbytes = scene.y_true.nbytes + scene.y_pred.nbytes
    y_true, y_pred = tf.constant(scene.y_true), tf.constant(scene.y_pred)
    kernels = _tensorflow_read_kernels(devices.resolve("cpu"), args.res * args.res)
    cells = {
        "xla interleaved blocks": kernels["xla interleaved blocks"][0],
        "tf.function reduce_sum": kernels["tf.function reduce_sum"][0],
        "ce blocked": segbench.loss_fn("categorical_crossentropy", "xla", formulation="blocked", validate=False),
    }
    for kernel in cells.values():
        kernel(y_true, y_pred)
    for name, kernel in cells.items():
        times = []
        for _ in range(40):
            start = time.perf_counter()
            float(kernel(y_true, y_pred))
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(
            f"threads {args.threads} batch {args.batch:2d}  {name:24s} {median * 1e3:7.2f} ms  "
            f"{nbytes / median / 1e9:5.1f} GB/s"
        )


if __name__ == "__main__":
    main()
