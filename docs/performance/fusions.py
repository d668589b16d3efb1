"""Print what XLA compiled a loss into: its fusions, what each one reads, and what it writes.

    .venv/bin/python docs/performance/fusions.py [--loss L] [--formulation F] [--pass P]
        [--batch 16 --res 512 --classes 4]

Evidence for the performance section of the README: a loss that reads its inputs once shows one
fusion reading both parameters; every other fusion reading a parameter is another pass over it.
The HLO is TensorFlow's own (``experimental_get_compiler_ir(...)(stage="optimized_hlo")``).
"""

from __future__ import annotations

import argparse
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from segbench.measurement.backends import import_tensorflow_quietly

FUSION = re.compile(r"^\s*(?:ROOT )?%(\S+) = (\S+) fusion\((.*?)\), kind=(\w+)")
ALIAS = re.compile(r"^\s*%(\S+) = \S+ (?:bitcast|reshape|copy)\(%(\S+?)\)")
INPUTS = {"arg0.1": "y_true", "arg1.1": "y_pred"}


def fusions(hlo: str) -> list[tuple[str, str, str, str]]:
    """(name, kind, output shape, inputs read) of each fusion of the entry computation; a
    bitcast or reshape of an input counts as the input."""
    entry = hlo[hlo.index("ENTRY") :]
    alias = dict(INPUTS)
    for line in entry.splitlines():
        match = ALIAS.match(line)
        if match and match.group(2) in alias:
            alias[match.group(1)] = alias[match.group(2)]
    rows = []
    for line in entry.splitlines():
        match = FUSION.match(line)
        if match:
            name, shape, operands, kind = match.groups()
            if '"kind":"__ynn_fusion"' in line:
                kind = "ynn (library call)"
            names = re.findall(r"%([\w.\-]+)", operands)
            reads = ", ".join(sorted({alias[n] for n in names if n in alias})) or "-"
            rows.append((name, kind, shape, reads))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", default="categorical_crossentropy")
    parser.add_argument("--formulation", default="blocked")
    parser.add_argument("--pass", dest="pass_", default="forward", choices=["forward", "forward+backward"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--res", type=int, default=512)
    parser.add_argument("--classes", type=int, default=4)
    args = parser.parse_args()
    tf = import_tensorflow_quietly()
    import segbench
    from segbench.measurement.sweep import scene_for

    scene = scene_for(args.batch, args.res, args.res, args.classes, "float32")
    fn = segbench.loss_fn(
        args.loss, "xla", formulation=args.formulation, gradient=args.pass_ == "forward+backward", validate=False
    )
    y_true, y_pred = tf.constant(scene.y_true), tf.constant(scene.y_pred)
    hlo = fn.tf_function.experimental_get_compiler_ir(y_true, y_pred)(stage="optimized_hlo")
    print(f"{args.loss} / {args.formulation} / xla / {args.pass_}, batch {args.batch}, {args.res}x{args.res}, "
          f"C={args.classes}: fusions of the optimized HLO")  # fmt: skip
    rows = fusions(hlo)
    width = max(len(r[0]) for r in rows)
    for name, kind, shape, reads in rows:
        print(f"  {name:{width}s}  {kind:24s}  writes {shape:28s}  reads {reads}")
    passes = sum(reads != "-" for *_, reads in rows)
    print(f"{len(rows)} fusions, {passes} of them read an input")


if __name__ == "__main__":
    main()
