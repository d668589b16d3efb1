"""The clip rule: the oracle clips as tf.clip_by_value; Keras' own cross-entropies on JAX pass half
the gradient at a bound and on PyTorch float64 clip at float32's bounds. segbench check measures a
loss's rule on probes and holds it to the oracle under that rule; a gradient that no rule explains
keeps the oracle's rule (and fails the check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segbench._constants import EPSILON
from segbench.losses import clipping, oracle, standard
from segbench.losses.clipping import ORACLE_CLIP, ClipRule, clip_rule
from segbench.losses.scenes import edge_scene
from segbench.verdicts import check

ROOT = Path(__file__).resolve().parents[2]
HALF = ClipRule(at_bound=0.5)


def _normalised(scene):
    p = scene.y_pred.astype(np.float64)
    return p / p.sum(axis=-1, keepdims=True)


def test_the_oracles_rule_is_tf_clip_by_values():
    scene = edge_scene(dtype="float64")
    y, p = scene.y_true.astype(np.float64), scene.y_pred.astype(np.float64)
    q = _normalised(scene)
    passes = (q >= EPSILON) & (q <= 1 - EPSILON)
    g = np.where(passes, -y / np.clip(q, EPSILON, 1 - EPSILON), 0.0)
    s = p.sum(axis=-1, keepdims=True)
    expected = (g - (g * q).sum(axis=-1, keepdims=True)) / s
    np.testing.assert_array_equal(standard.keras_cce_gradient(y, p), expected)
    with clip_rule(ORACLE_CLIP):
        np.testing.assert_array_equal(standard.keras_cce_gradient(y, p), expected)


@pytest.mark.parametrize("loss", ["keras_cce", "focal"])
def test_half_the_gradient_at_a_bound_changes_only_the_pixels_on_it(loss):
    scene = edge_scene(dtype="float64")
    y, p = scene.y_true.astype(np.float64), scene.y_pred.astype(np.float64)
    gradient, value = getattr(standard, f"{loss}_gradient"), getattr(standard, f"{loss}_numpy")
    whole = gradient(y, p)
    with clip_rule(HALF):
        half, half_value = gradient(y, p), value(y, p)
    np.testing.assert_array_equal(half_value, value(y, p))  # the values do not depend on the rule here
    q = _normalised(scene)
    on_bound = ((q == EPSILON) | (q == 1 - EPSILON)).any(axis=-1)
    assert on_bound.sum() > 0
    np.testing.assert_array_equal(half[~on_bound], whole[~on_bound])
    assert not np.allclose(half[on_bound], whole[on_bound])


def test_float32_bounds_clip_the_probabilities_between_the_two_bounds():
    y = np.array([[[[1.0, 0.0], [1.0, 0.0]]]])
    p = np.array([[[[1.0, 0.0], [EPSILON, 1 - EPSILON]]]])
    low, high = clipping.FLOAT32_BOUNDS
    with clip_rule(ClipRule(low, high)):
        value = standard.keras_cce_numpy(y, p)
        grad = standard.keras_cce_gradient(y, p)
    np.testing.assert_allclose(value, [[[-np.log(high), -np.log(low)]]], rtol=1e-15)
    assert grad[0, 0, 1, 0] == 0.0  # 1e-7 lies below float32's 1e-7: clipped, no gradient
    np.testing.assert_allclose(standard.keras_cce_numpy(y, p), [[[-np.log1p(-EPSILON), -np.log(EPSILON)]]])


class _FakeLoss:
    """A loss_fn stand-in: the numpy oracle under ``rule``, its gradient times ``scale`` (at every
    pixel, or only where the probability sits on a bound)."""

    def __init__(self, rule, scale=1.0, only_on_bounds=False):
        self.rule, self.scale, self.only_on_bounds = rule, scale, only_on_bounds

    def __call__(self, loss, mode, *, formulation, gradient, reduction):
        def fn(y_true, y_pred):
            with clip_rule(self.rule):
                value = oracle.loss_value(loss, y_true, y_pred, reduction)
                grad = oracle.gradient(loss, y_true, y_pred, reduction)
            p = np.asarray(y_pred, np.float64)
            q = p / p.sum(axis=-1, keepdims=True)
            where = ((q == EPSILON) | (q == 1 - EPSILON)).any(axis=-1, keepdims=True)
            scale = np.where(where, self.scale, 1.0) if self.only_on_bounds else self.scale
            return (value, grad * scale) if gradient else value

        return fn


FLOAT32_BOUNDS = ClipRule(*clipping.FLOAT32_BOUNDS)
NO_GRADIENT_AT_BOUNDS = ClipRule(at_bound=0.0)  # a `<` where `<=` belongs


@pytest.mark.parametrize(
    ("mode", "implementation", "measured"),
    [
        ("eager", _FakeLoss(ORACLE_CLIP), ORACLE_CLIP),
        ("jax", _FakeLoss(HALF), HALF),
        ("torch", _FakeLoss(FLOAT32_BOUNDS), FLOAT32_BOUNDS),
        # departures a backend is not known for, or no backend has: held to the oracle's rule (fail)
        ("eager", _FakeLoss(HALF), ORACLE_CLIP),
        ("eager", _FakeLoss(FLOAT32_BOUNDS), ORACLE_CLIP),
        ("jax", _FakeLoss(FLOAT32_BOUNDS), ORACLE_CLIP),
        ("jax", _FakeLoss(NO_GRADIENT_AT_BOUNDS), ORACLE_CLIP),
        ("torch", _FakeLoss(NO_GRADIENT_AT_BOUNDS), ORACLE_CLIP),
        # wrong away from the bounds, or by another factor at them: no rule explains it
        ("jax", _FakeLoss(ORACLE_CLIP, scale=0.9), ORACLE_CLIP),
        ("jax", _FakeLoss(ORACLE_CLIP, scale=0.25, only_on_bounds=True), ORACLE_CLIP),
    ],
    ids=[
        "oracle",
        "jax-half",
        "torch-float32-bounds",
        "tensorflow-half",
        "tensorflow-float32-bounds",
        "jax-float32-bounds",
        "jax-no-gradient",
        "torch-no-gradient",
        "scaled",
        "quartered-at-bounds",
    ],
)
def test_the_measured_rule_is_one_its_backend_is_known_for_that_explains_the_probes(
    monkeypatch, mode, implementation, measured
):
    monkeypatch.setattr(check, "loss_fn", implementation)
    assert check.measured_clip_rule("keras_categorical_crossentropy", "reference", mode, "float64") == measured


def test_a_rule_only_a_broken_implementation_follows_fails_the_check(monkeypatch):
    """On the edge scene, a Keras CCE that passes no gradient at a bound fails check on JAX (before
    the rules it failed; a rule that explained it would have let it pass)."""
    monkeypatch.setattr(check, "loss_fn", _FakeLoss(NO_GRADIENT_AT_BOUNDS))
    monkeypatch.setattr(check, "not_here", lambda *cell: None)  # the fake runs in any process
    table = check.read_table(ROOT / "results" / "reference_values.csv")
    report = check.run_check(
        table, modes=["jax"], scenarios=["edges_float64"], losses=["keras_categorical_crossentropy"]
    )
    checks = report[report["mode"] == "jax"]
    assert len(checks) and not checks["ok"].all()
    assert not checks["quantity"].str.startswith(check.CLIP_RULE_NOTE).any()


def test_segbenchs_own_losses_and_formulations_keep_the_oracles_rule():
    assert check.measured_clip_rule("categorical_crossentropy", "keras", "eager", "float64") is ORACLE_CLIP
    assert check.measured_clip_rule("categorical_focal_crossentropy", "reference", "eager", "float64") is ORACLE_CLIP


def test_keras_on_tensorflow_clips_as_the_oracle():
    pytest.importorskip("keras")
    for dtype in ("float64", "float32"):
        assert check.measured_clip_rule("keras_categorical_crossentropy", "reference", "eager", dtype).oracles


@pytest.mark.slow
def test_check_holds_kerass_cross_entropies_to_the_oracle_under_each_backends_measured_rule():
    """On JAX and PyTorch, Keras' own cross-entropies pass the edge scenes (which put probabilities
    exactly on the clip bounds) and the output says which rule each backend's clip follows."""
    for backend in ("jax", "torch"):
        pytest.importorskip(backend)
    command = [sys.executable, "-m", "segbench.cli", "check", "--mode", "jax,torch", "--quiet", "--no-bandwidth"]
    command += ["--loss", "keras_categorical_crossentropy,categorical_focal_crossentropy"]
    command += ["--scenario", "edges_float32,edges_float64"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    notes = [line for line in done.stderr.splitlines() if line.startswith("NOTE: ")]
    half = "bounds [1.000000012e-07, 0.9999998808] in float32, half the gradient at a bound"
    assert any("keras_categorical_crossentropy (reference) on jax float32: " in n and half in n for n in notes), notes
    float32_bounds = "bounds [1.000000012e-07, 0.9999998808] in float64, the whole gradient at a bound"
    assert any("(keras) on torch float64: " in n and float32_bounds in n for n in notes), notes
    assert not any("on eager" in n or "on torch float32" in n for n in notes), notes
    assert " 0 mismatches" in done.stdout
