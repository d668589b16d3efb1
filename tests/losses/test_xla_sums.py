"""The longest float32 running sum read from XLA's optimized HLO (segbench/losses/xla_sums.py)."""

import numpy as np
import pytest

from segbench.losses import tolerances
from segbench.losses.xla_sums import compiled_running_sum, longest_running_sum

ADD = """%add_f32 (x: f32[], y: f32[]) -> f32[] {
  %x = f32[] parameter(0)
  %y = f32[] parameter(1)
  ROOT %add.1 = f32[] add(%x, %y)
}
"""
MAX = """%max_f32 (x.1: f32[], y.1: f32[]) -> f32[] {
  %x.1 = f32[] parameter(0)
  %y.1 = f32[] parameter(1)
  ROOT %maximum.1 = f32[] maximum(%x.1, %y.1)
}
"""


def module(*body: str) -> str:
    lines = "\n".join(f"  {line}" for line in body)
    return f"{ADD}{MAX}ENTRY %main (p: f32[16,512,512,4]) -> f32[] {{\n{lines}\n}}\n"


def test_a_reduce_adds_the_product_of_its_reduced_dimensions():
    hlo = module(
        "%p = f32[16,512,512,4]{3,2,1,0} parameter(0)",
        "%c = f32[] constant(0)",
        "ROOT %s = f32[16]{0} reduce(%p, %c), dimensions={1,2,3}, to_apply=%add_f32",
    )
    assert longest_running_sum(hlo) == 512 * 512 * 4


def test_a_reduce_window_adds_its_window_and_the_longest_stage_counts():
    hlo = module(
        "%p = f32[16,512,512,4]{3,2,1,0} parameter(0)",
        "%c = f32[] constant(0)",
        "%w = f32[1,16,16,1]{3,2,1,0} reduce-window(%p, %c), "
        "window={size=16x32x32x4 stride=16x32x32x4}, to_apply=%add_f32",
        "ROOT %s = f32[] reduce(%w, %c), dimensions={0,1,2,3}, to_apply=%add_f32",
    )
    assert longest_running_sum(hlo) == 16 * 32 * 32 * 4


def test_maxima_and_float64_sums_are_not_running_float32_sums():
    hlo = module(
        "%p = f32[16,512,512,4]{3,2,1,0} parameter(0)",
        "%c = f32[] constant(0)",
        "%m = f32[16]{0} reduce(%p, %c), dimensions={1,2,3}, to_apply=%max_f32",
        "%d = f64[16,512,512,4]{3,2,1,0} convert(%p)",
        "%z = f64[] constant(0)",
        "ROOT %s = f64[] reduce(%d, %z), dimensions={0,1,2,3}, to_apply=%add_f32",
    )
    assert longest_running_sum(hlo) is None
    assert longest_running_sum("not HLO at all") is None


def test_a_shorter_running_sum_tightens_only_the_sequential_tolerance():
    n = 16 * 512 * 512
    whole = tolerances.value_tolerance("float32", n, "xla")
    staged = tolerances.value_tolerance("float32", n, "xla", running=65536)
    assert staged["rtol"] < whole["rtol"] / 7  # sqrt(4.2e6 / 65536) = 8
    assert tolerances.value_tolerance("float32", n, "function", running=65536) == tolerances.value_tolerance(
        "float32", n, "function"
    )  # a tree sum: unchanged
    assert tolerances.value_tolerance("float32", 100, "xla", running=10**9) == tolerances.value_tolerance(
        "float32", 100, "xla"
    )  # never looser than one sum of every term


def test_the_compiled_hlo_of_a_jit_loss_is_read():
    pytest.importorskip("tensorflow")
    from segbench.losses.registry import loss_fn
    from segbench.losses.scenes import make_scene

    scene = make_scene(batch=2, height=64, width=64, classes=4, seed=0)
    jit = loss_fn("categorical_crossentropy", "xla", formulation="fused")
    running = compiled_running_sum(jit, scene.y_true, scene.y_pred)
    assert running is not None and 4 <= running <= 2 * 64 * 64
    graph = loss_fn("categorical_crossentropy", "function", formulation="fused")
    assert compiled_running_sum(graph, scene.y_true, scene.y_pred) is None  # not jit-compiled
    assert compiled_running_sum(lambda t, p: np.mean(p), scene.y_true, scene.y_pred) is None
