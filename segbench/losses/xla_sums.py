"""How long XLA's float32 running sums are, read from the compiled HLO.

XLA on the CPU adds the terms of a reduction one after the other (a running sum per output, per
vector lane), so a mean's rounding error grows like u sqrt(L), L the number of terms one running
sum adds (segbench.losses.tolerances, ``sequential``). L is not the number of terms of the loss:
XLA may reduce in stages (the reference cross-entropy: a reduce-window of 65536 terms, then 256 of
those), and a formulation may add its partial sums in float64 (the blocked formulation: its longest
float32 sum adds 16384 terms at C=4). Counting every term of the mean as one running sum left 11
cells 393 to 14652 times under their tolerance (docs/tolerances.md); reading the optimized HLO
says what was compiled, on this machine, for these shapes.

:func:`longest_running_sum` parses HLO text (no TensorFlow needed, tested on text);
:func:`compiled_running_sum` asks TensorFlow for a jit-compiled loss's optimized HLO.
"""

from __future__ import annotations

import math
import re
from typing import Any

_COMPUTATION = re.compile(r"^\s*(?:ENTRY\s+)?%?(?P<name>[\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%(?P<name>[\w.\-]+)\s*=\s*(?P<type>[a-z0-9]+)\[(?P<dims>[\d,]*)\]\S*\s+(?P<op>[\w\-]+)\((?P<args>[^)]*)\)(?P<rest>.*)$"
)
_SUMMED_TYPES = ("f32", "f16", "bf16")  # float64 sums (a formulation's own accumulator) are exact enough


def longest_running_sum(hlo: str) -> int | None:
    """The most terms one float32 add-reduction of ``hlo`` (optimized HLO text) adds: the product
    of the reduced dimensions of a ``reduce``, of the window of a ``reduce-window``. None when the
    text holds no such reduction (or cannot be read): the caller then assumes one sum of every term."""
    shapes: dict[str, list[int]] = {}
    reducers: dict[str, bool] = {}  # computation name -> does it add?
    reductions: list[tuple[str, str, str]] = []  # (op, args, rest)
    current: str | None = None
    for line in hlo.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            current = header["name"]
            reducers[current] = False
            continue
        found = _INSTRUCTION.match(line)
        if not found:
            continue
        shapes[found["name"]] = [int(d) for d in found["dims"].split(",") if d]
        if current is not None and found["op"] == "add":
            reducers[current] = True
        if found["op"] in ("reduce", "reduce-window") and found["type"] in _SUMMED_TYPES:
            reductions.append((found["op"], found["args"], found["rest"]))
    longest = None
    for op, args, rest in reductions:
        reducer = re.search(r"to_apply=%?([\w.\-]+)", rest)
        if reducer is None or not reducers.get(reducer[1], False):
            continue  # a max or min: exact
        if op == "reduce-window":
            window = re.search(r"size=([\dx]+)", rest)
            if window is None:
                return None
            length = math.prod(int(s) for s in window[1].split("x"))
        else:
            dims = re.search(r"dimensions=\{([\d,]*)\}", rest)
            operand = args.split(",")[0].strip().lstrip("%")
            if dims is None or operand not in shapes:
                return None
            shape = shapes[operand]
            length = math.prod(shape[int(d)] for d in dims[1].split(",") if d)
        longest = length if longest is None else max(longest, length)
    return longest


def compiled_running_sum(loss_function: Any, y_true: Any, y_pred: Any) -> int | None:
    """:func:`longest_running_sum` of a jit-compiled loss (a registry.LossFunction of an XLA mode)
    at these inputs; None for a loss that is not jit-compiled TensorFlow or whose HLO cannot be had."""
    function = getattr(loss_function, "tf_function", None)
    if function is None or not getattr(function, "_jit_compile", False):
        return None
    import tensorflow as tf

    try:
        hlo = function.experimental_get_compiler_ir(tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred))(
            stage="optimized_hlo"
        )
    except Exception:  # an older TensorFlow, a loss XLA cannot compile here: the conservative model
        return None
    return longest_running_sum(hlo)
