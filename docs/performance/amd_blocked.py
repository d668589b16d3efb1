"""Why contiguous blocks were slow on an AMD EPYC, and what interleaved blocks change.

    .venv/bin/python docs/performance/amd_blocked.py [--loss L,...] [--layouts ...] [--reps 7]
        [--batch 16 --res 512 --classes 4] [--dump DIR]

The `blocked` formulation sums k blocks of each image's pixels elementwise in one XLA loop
fusion. Until commit 9ba6c53 block b was the b-th k-th of the image (``contiguous``): the fusion
reads 2k places of memory at once, 256 KiB apart at 512x512 (k = 16: 32 streams a core). Now
block b is group b of each row of k groups of 8 pixels (``interleaved``, segbench/losses/tf_impl.py):
the same loop, with the same slices, but each input is read as one sequential stream. Both are
built here from the same per-pixel terms, so they differ in the addresses they read and in
nothing else; ``contiguous kK`` and ``interleaved kK`` choose the number of blocks, ``blocked``
and ``fused`` are segbench's own formulations.

Printed per layout: the median time (medians of rounds, the layouts' rounds interleaved), its
share of the read ceiling measured in the same process (segbench.measurement.cells.measure_ceiling, as
``segbench run`` does) and the process CPU time per call (both cores; less sensitive than the
wall time to other processes on a shared machine). ``--dump DIR`` also writes XLA's dump (HLO,
LLVM IR, object files) of every compiled layout under DIR, for ``llvm-objdump -d``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LOSSES = ("categorical_crossentropy", "missing_annotation_crossentropy", "marginal_crossentropy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", default=",".join(LOSSES))
    parser.add_argument("--layouts", default="fused,blocked,contiguous k16,contiguous k8")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--res", type=int, default=512)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--dump", help="write XLA's dump of each compiled layout under this folder")
    args = parser.parse_args()
    if args.dump:  # must be set before TensorFlow starts XLA; one folder for all (module names differ)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={args.dump}".strip()

    from segbench.measurement.backends import import_tensorflow_quietly

    tf = import_tensorflow_quietly()
    import segbench
    from segbench.losses import tf_impl as lt
    from segbench.measurement import device as devices
    from segbench.measurement.cells import measure_ceiling
    from segbench.measurement.sweep import TimerBudget, scene_for

    def blocked(loss: str, layout: str, k: int):
        terms, needs_presence = {
            "categorical_crossentropy": (lt._ce_terms, False),
            "missing_annotation_crossentropy": (lt._missing_annotation_terms, True),
            "marginal_crossentropy": (lt._marginal_terms, True),
        }[loss]

        def value(y_true, y_pred):
            n, h, w, c = y_pred.shape
            pixels = h * w
            present = lt._presence(y_true) if needs_presence else None
            if layout == "contiguous":  # block b: pixels [b * pixels / k, (b + 1) * pixels / k)
                truth = tf.reshape(y_true, [n, k, pixels // k, c])
                probs = tf.reshape(y_pred, [n, k, pixels // k, c])
            else:  # block b: group b of each row of k groups of 8 pixels
                truth = tf.reshape(y_true, [n, pixels // (8 * k), k, 8, c])
                probs = tf.reshape(y_pred, [n, pixels // (8 * k), k, 8, c])
            acc = None
            for b in range(k):
                t, p = (truth[:, b], probs[:, b]) if layout == "contiguous" else (truth[:, :, b], probs[:, :, b])
                weights, keep = terms(lt._channels(t), lt._channels(p), present)
                term = lt._nll(lt._score(weights, lt._channels(p)))
                term = term if keep is None else tf.where(keep, term, tf.zeros_like(term))
                acc = term if acc is None else acc + term
            return lt._column_total(acc) / (n * pixels)

        return tf.function(value, jit_compile=True)

    scene = scene_for(args.batch, args.res, args.res, args.classes, "float32")
    nbytes = scene.y_true.nbytes + scene.y_pred.nbytes
    device = devices.resolve("cpu")
    y_true, y_pred = tf.constant(scene.y_true), tf.constant(scene.y_pred)
    print(f"batch {args.batch}, {args.res}x{args.res}, C={args.classes}, float32; load {_load()}")
    for loss in args.loss.split(","):
        cells = {}
        reference = float(segbench.loss_fn(loss, "xla", formulation="fused", validate=False)(y_true, y_pred))
        for name in args.layouts.split(","):
            if name in ("fused", "blocked"):
                fn = segbench.loss_fn(loss, "xla", formulation=name, validate=False)
            else:
                layout, k = name.split()
                fn = blocked(loss, layout, int(k[1:]))
            cells[name] = fn
            got = float(fn(y_true, y_pred))
            if abs(got - reference) > 1e-4 * abs(reference):
                sys.exit(f"{loss} {name}: value {got} differs from fused's {reference}")
        wall: dict[str, list[float]] = {n: [] for n in cells}
        cpu: dict[str, list[float]] = {n: [] for n in cells}
        ceilings = []
        for _ in range(args.reps):
            ceilings.append(measure_ceiling(scene, device, TimerBudget()).gb_per_s)
            for name, fn in cells.items():
                times, cpus = [], []
                for _ in range(10):
                    c0, t0 = time.process_time(), time.perf_counter()
                    float(fn(y_true, y_pred))
                    times.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
                wall[name].append(statistics.median(times))
                cpu[name].append(statistics.mean(cpus))
        ceiling = statistics.median(ceilings)
        print(f"{loss}: read ceiling {ceiling:.1f} GB/s (median of {args.reps}); load {_load()}")
        for name in cells:
            median = statistics.median(wall[name])
            share = nbytes / median / 1e9 / ceiling
            print(
                f"  {name:16s} {median * 1e3:6.2f} ms  {share * 100:5.1f} % of the ceiling  "
                f"cpu {statistics.median(cpu[name]) * 1e3:6.2f} ms/call"
            )


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


if __name__ == "__main__":
    main()
