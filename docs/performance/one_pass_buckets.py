"""The missing-annotation loss in one read, as the issue sketches it, and what XLA makes of it.

    .venv/bin/python docs/performance/one_pass_buckets.py

Each background pixel's term goes into a bucket (image, predicted class) in the same pass that
computes class presence and the object terms; the loss then adds the buckets of the present
classes. Written with TensorFlow ops (k blocks per image, channel slices, as segbench's blocked
formulation) it is correct (the value is printed against the fused formulation), but XLA:CPU has
no multi-output loop fusion: it emits one fusion per output array (the object terms, each class's
bucket, presence), and each of them reads the inputs again. The fusions printed below are the
evidence; the time shows the cost.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))

from fusions import fusions

from segbench.measurement.backends import import_tensorflow_quietly

tf = import_tensorflow_quietly()

import segbench  # noqa: E402
from segbench.losses.tf_impl import _nll  # noqa: E402
from segbench.measurement.sweep import scene_for  # noqa: E402

BLOCKS = 4


def fold(x: tf.Tensor, k: int) -> tf.Tensor:
    """(N, M) -> (N,) by adding k slices elementwise, then a small reduction."""
    n, m = x.shape
    x = tf.reshape(x, [n, k, m // k])
    acc = x[:, 0]
    for i in range(1, k):
        acc = acc + x[:, i]
    return tf.reduce_sum(acc, axis=1)


def one_pass_buckets(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    n, h, w, c = y_pred.shape
    m = h * w // BLOCKS
    truth, probs = tf.reshape(y_true, [n, BLOCKS, m, c]), tf.reshape(y_pred, [n, BLOCKS, m, c])
    objects, buckets, seen = None, [None] * c, [None] * c
    for b in range(BLOCKS):
        t = [truth[:, b, :, k] for k in range(c)]
        p = [probs[:, b, :, k] for k in range(c)]
        score = t[0] * p[0]
        for k in range(1, c):
            score = score + t[k] * p[k]
        term = _nll(score)
        best, taken = p[0], None
        for k in range(1, c):
            best = tf.maximum(best, p[k])
        taken = tf.zeros_like(best, dtype=tf.bool)
        for k in range(c):
            predicted = tf.logical_and(tf.equal(p[k], best), tf.logical_not(taken))  # first maximum
            taken = tf.logical_or(taken, predicted)
            bucket = tf.where(predicted, t[0] * term, 0.0)
            buckets[k] = bucket if buckets[k] is None else buckets[k] + bucket
            seen[k] = t[k] if seen[k] is None else tf.maximum(seen[k], t[k])
        obj = (1.0 - t[0]) * term
        objects = obj if objects is None else objects + obj
    present = tf.stack([tf.reduce_max(s, axis=1) > 0 for s in seen], axis=1)  # (N, C)
    total = tf.reduce_sum(fold(objects, 8)) + tf.reduce_sum(
        tf.where(present, tf.stack([fold(b, 8) for b in buckets], axis=1), 0.0)
    )
    return total / (n * h * w)


def median_time(fn, *args, calls: int = 20) -> float:
    fn(*args)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        float(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    scene = scene_for(16, 512, 512, 4, "float32")
    y_true, y_pred = tf.constant(scene.y_true), tf.constant(scene.y_pred)
    buckets = tf.function(one_pass_buckets, jit_compile=True)
    blocked = segbench.loss_fn("missing_annotation_crossentropy", "xla", formulation="blocked", validate=False)
    print(f"value: buckets {float(buckets(y_true, y_pred)):.7f}, blocked {float(blocked(y_true, y_pred)):.7f}")
    rows = fusions(buckets.experimental_get_compiler_ir(y_true, y_pred)(stage="optimized_hlo"))
    print(f"one-pass buckets compiled to {len(rows)} fusions; {sum(r[3] != '-' for r in rows)} read an input:")
    for name, kind, shape, reads in rows:
        if reads != "-":
            print(f"  {name:28s} {kind:8s} writes {shape:26s} reads {reads}")
    print(
        f"median time at batch 16, 512x512, C=4: buckets {1e3 * median_time(buckets, y_true, y_pred):.1f} ms, "
        f"blocked (presence first, then one pass) {1e3 * median_time(blocked, y_true, y_pred):.1f} ms"
    )


if __name__ == "__main__":
    main()
