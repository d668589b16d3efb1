"""How fast each way of summing both inputs reads them (README, Performance: reductions).

    .venv/bin/python docs/performance/reductions.py

At batch 16, 512x512, C=4, float32: TensorFlow's eager and tf.function reduce_sum (Eigen's
multi-threaded reduction), the same under XLA (a ynn library call on the CPU), and XLA with the
sum taken as 16 slices added elementwise first (one loop fusion, then a small reduction).
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from segbench.measurement.backends import import_tensorflow_quietly

tf = import_tensorflow_quietly()

from segbench.measurement.sweep import scene_for  # noqa: E402


def reduce_sum(a, b):
    return tf.reduce_sum(a) + tf.reduce_sum(b)


def sliced_sum(a, b, k=16):
    total = 0.0
    for x in (a, b):
        x = tf.reshape(x, [k, -1])
        acc = x[0]
        for i in range(1, k):
            acc = acc + x[i]
        total = total + tf.reduce_sum(acc)
    return total


def main() -> None:
    scene = scene_for(16, 512, 512, 4, "float32")
    a, b = tf.constant(scene.y_true), tf.constant(scene.y_pred)
    nbytes = scene.y_true.nbytes + scene.y_pred.nbytes
    kernels = {
        "eager reduce_sum": reduce_sum,
        "tf.function reduce_sum": tf.function(reduce_sum),
        "XLA reduce_sum": tf.function(reduce_sum, jit_compile=True),
        "XLA 16 slices added, then reduce_sum": tf.function(sliced_sum, jit_compile=True),
    }
    for name, kernel in kernels.items():
        float(kernel(a, b))
        times = []
        for _ in range(30):
            start = time.perf_counter()
            float(kernel(a, b))
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"{name:38s} {median * 1e3:6.2f} ms  {nbytes / median / 1e9:5.1f} GB/s")


if __name__ == "__main__":
    main()
