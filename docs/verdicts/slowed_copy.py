"""Make a copy of this checkout in which one cell is slower by a known amount (for docs/verdicts.md).

    python docs/verdicts/slowed_copy.py OUT --loss categorical_crossentropy --formulation fused \
        --mode xla --pass forward --shape 16x512x512 --delay-ms 1.4

The copy's ``segbench.loss_fn`` wraps the named loss x formulation x mode x pass so that each call
on inputs of ``--shape`` (batch x height x width) busy-waits ``--delay-ms`` more: every other cell
runs the same code as this checkout.
Then ``segbench ab . OUT`` (or two ``segbench run``s and ``segbench compare``) should flag that
cell, and only it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PATCH = """

# --- docs/verdicts/slowed_copy.py: a deliberate slowdown of one cell -------------------------
_original_loss_fn = loss_fn


def loss_fn(loss, mode, **options):  # noqa: F811
    built = _original_loss_fn(loss, mode, **options)
    if (loss, mode, built.formulation, built.gradient) != ({loss!r}, {mode!r}, {formulation!r}, {gradient!r}):
        return built
    import time

    call = built.call

    def slowed(y_true, y_pred):
        result = call(y_true, y_pred)
        if tuple(y_pred.shape[:3]) == {shape!r}:
            end = time.perf_counter() + {delay_s}
            while time.perf_counter() < end:
                pass
        return result

    import dataclasses

    return dataclasses.replace(built, call=slowed)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--loss", required=True)
    parser.add_argument("--formulation", required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--pass", dest="pass_", choices=["forward", "forward+backward"], required=True)
    parser.add_argument("--shape", required=True, help="BATCHxHEIGHTxWIDTH, e.g. 16x512x512")
    parser.add_argument("--delay-ms", type=float, required=True)
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        target = args.out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    registry = args.out / "segbench" / "losses" / "registry.py"
    registry.write_text(
        registry.read_text()
        + PATCH.format(
            loss=args.loss,
            mode=args.mode,
            formulation=args.formulation,
            gradient=args.pass_ == "forward+backward",
            shape=tuple(int(v) for v in args.shape.split("x")),
            delay_s=args.delay_ms / 1e3,
        )
    )
    print(f"{args.out}: {args.loss}/{args.formulation}/{args.mode}/{args.pass_} at {args.shape}: +{args.delay_ms} ms")


if __name__ == "__main__":
    main()
