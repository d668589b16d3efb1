"""Every loss x formulation x mode x pass agrees with the float64 oracle; the seed's claims hold."""

from functools import cache

import numpy as np
import pytest
from conftest import (
    ALL_FORMULATIONS,
    ALL_LOSSES,
    ALL_MODES,
    assert_close_to_oracle,
    assert_gradient_close,
    formulations_for,
    to_numpy,
)

import segbench
from segbench import make_scene
from segbench._constants import TOLERANCES, compute_dtype, tolerance
from segbench.losses import oracle

SHAPES = [(1, 8, 8, 2), (2, 12, 20, 4), (3, 16, 16, 9), (2, 24, 16, 4)]


@cache
def built(loss, mode, formulation="reference", gradient=False, reduction="mean"):
    return segbench.loss_fn(loss, mode, formulation=formulation, gradient=gradient, reduction=reduction)


@cache
def scene(batch, height, width, classes, missing=None, seed=0):
    if missing is None:
        missing = min(batch, 2) if classes > 2 else 0
    return make_scene(batch, height, width, classes, missing=missing, seed=seed)


def check(loss, mode, formulation, y_true, y_pred, reduction="mean"):
    value = built(loss, mode, formulation, False, reduction)(y_true, y_pred)
    assert_close_to_oracle(value, oracle.loss_value(loss, y_true, y_pred, reduction))
    value, grad = built(loss, mode, formulation, True, reduction)(y_true, y_pred)
    assert_close_to_oracle(value, oracle.loss_value(loss, y_true, y_pred, reduction))
    assert_gradient_close(grad, oracle.gradient(loss, y_true, y_pred, reduction))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("formulation", ALL_FORMULATIONS)
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_agrees_with_oracle(loss, formulation, mode, shape):
    if formulation not in formulations_for(mode):
        pytest.skip(f"formulation {formulation} does not run in mode {mode}")
    s = scene(*shape)
    check(loss, mode, formulation, s.y_true, s.y_pred)


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_reductions(loss, mode, reduction):
    s = scene(2, 12, 20, 4)
    for formulation in formulations_for(mode):
        check(loss, mode, formulation, s.y_true, s.y_pred, reduction)
    per_pixel = to_numpy(built(loss, mode, "reference", False, "none")(s.y_true, s.y_pred))
    assert per_pixel.shape == (2, 12, 20)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_other_dtypes_within_their_tolerance(loss, mode, dtype):
    if dtype not in segbench.MODES[mode].dtypes:
        pytest.skip(f"mode {mode} does not support {dtype}")
    s = make_scene(2, 16, 16, 4, missing=1, dtype=dtype)
    for formulation in formulations_for(mode):
        value = segbench.loss_fn(loss, mode, formulation=formulation)(s.y_true, s.y_pred)
        assert to_numpy(value).dtype.name == compute_dtype(dtype)  # half precision computes in float32
        assert_close_to_oracle(value, oracle.loss_value(loss, s.y_true, s.y_pred), dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_half_precision_gradients_are_finite_and_right(loss, mode, dtype, reduction):
    if dtype not in segbench.MODES[mode].dtypes:
        pytest.skip(f"mode {mode} does not support {dtype}")
    # the example: in float16 itself, 1/p overflowed into 2110 inf/NaN entries
    s = make_scene(4, 64, 64, 4, missing=2, dtype=dtype)
    expected = oracle.gradient(loss, s.y_true, s.y_pred, reduction)
    for formulation in formulations_for(mode):
        fn = segbench.loss_fn(loss, mode, formulation=formulation, gradient=True, reduction=reduction)
        value, grad = fn(s.y_true, s.y_pred)
        grad = to_numpy(grad)
        assert np.isfinite(grad).all() and np.isfinite(to_numpy(value)).all()
        assert_gradient_close(grad, expected, dtype)
        terms = s.y_true.size // s.y_true.shape[-1]
        assert_close_to_oracle(value, oracle.loss_value(loss, s.y_true, s.y_pred, reduction), dtype, terms)


def test_the_float32_tolerance_grows_with_the_terms_summed():
    assert tolerance("float32")["rtol"] == TOLERANCES["float32"]["rtol"]
    small, large = tolerance("float32", 131_072)["rtol"], tolerance("float32", 16 * 512 * 512)["rtol"]
    assert TOLERANCES["float32"]["rtol"] < small < large < 6e-4
    assert large > 4.3e-5  # XLA's worst measured difference at that size
    assert tolerance("float16") == tolerance("float32")  # computed in float32


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_standard_loss_matches_keras(mode):
    import keras

    s = scene(2, 12, 20, 4)
    expected = float(keras.losses.CategoricalCrossentropy()(s.y_true, s.y_pred))
    got = float(to_numpy(built("categorical_crossentropy", mode)(s.y_true, s.y_pred)))
    assert got == pytest.approx(expected, rel=1e-5)


def test_numpy_standard_loss_matches_keras():
    import keras

    s = scene(3, 16, 16, 9)
    expected = float(keras.losses.CategoricalCrossentropy()(s.y_true, s.y_pred))
    for formulation in formulations_for("numpy"):
        got = float(built("categorical_crossentropy", "numpy", formulation)(s.y_true, s.y_pred))
        assert got == pytest.approx(expected, rel=1e-5)


# The seed's claims, in every mode.


@pytest.mark.parametrize("mode", ALL_MODES)
def test_complete_annotations_missing_annotation_loss_equals_standard(mode):
    s = make_scene(8, 32, 32, 4, missing=0, seed=0)
    for formulation in formulations_for(mode):
        standard = float(built("categorical_crossentropy", mode, formulation)(s.y_true, s.y_pred))
        custom = float(built("missing_annotation_crossentropy", mode, formulation)(s.y_true, s.y_pred))
        marginal = float(built("marginal_crossentropy", mode, formulation)(s.y_true, s.y_pred))
        # Same terms, but each formulation may order the float32 arithmetic differently (XLA fuses).
        assert custom == pytest.approx(standard, rel=TOLERANCES["float32"]["rtol"])
        assert marginal == pytest.approx(standard, rel=TOLERANCES["float32"]["rtol"])


@pytest.mark.parametrize("mode", ALL_MODES)
def test_missing_annotations_raise_standard_loss_and_custom_loss_is_lower(mode):
    s = make_scene(8, 32, 32, 4, missing=2, seed=0)
    for formulation in formulations_for(mode):
        complete = float(built("categorical_crossentropy", mode, formulation)(s.y_true_complete, s.y_pred))
        standard = float(built("categorical_crossentropy", mode, formulation)(s.y_true, s.y_pred))
        custom = float(built("missing_annotation_crossentropy", mode, formulation)(s.y_true, s.y_pred))
        marginal = float(built("marginal_crossentropy", mode, formulation)(s.y_true, s.y_pred))
        assert standard > complete
        assert custom < standard
        assert 0 < marginal < standard


# Edge cases.


def edge_cases():
    s = make_scene(3, 16, 16, 4, seed=2)
    y_true, y_pred = s.y_true.copy(), s.y_pred
    y_true[1] = np.eye(4, dtype=np.float32)[0]  # image 1 has no objects at all
    yield "image_without_objects", y_true, y_pred

    every = make_scene(2, 16, 16, 4, missing=6, seed=2)
    yield "every_object_missing", every.y_true, every.y_pred

    # Class 2 present in image 0 only; class 3 present in image 1 only.
    labels = np.zeros((2, 4, 4), dtype=int)
    labels[0, :2, :2] = 2
    labels[1, 2:, 2:] = 3
    y_true = np.eye(4, dtype=np.float32)[labels]
    rng = np.random.default_rng(0)
    y_pred = rng.dirichlet(np.ones(4), size=(2, 4, 4)).astype(np.float32)
    y_pred /= y_pred.sum(-1, keepdims=True)
    yield "class_present_in_some_images", y_true, y_pred

    # Exact ties in the argmax: lowest index wins (background over 1, 1 over 2, 2 over 3).
    y_pred = np.zeros((1, 2, 3, 4), dtype=np.float32)
    y_pred[0, 0] = [[0.4, 0.4, 0.1, 0.1], [0.1, 0.4, 0.4, 0.1], [0.1, 0.1, 0.4, 0.4]]
    y_pred[0, 1] = [[0.25, 0.25, 0.25, 0.25], [0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.5, 0.5]]
    y_true = np.zeros_like(y_pred)
    y_true[..., 0] = 1
    y_true[0, 1, 0] = [0, 1, 0, 0]
    yield "ties_in_argmax", y_true, y_pred

    # Probabilities exactly 0 and 1: right and wrong certain predictions.
    labels = np.array([[[0, 1, 2, 3], [3, 2, 1, 0]]])
    y_true = np.eye(4, dtype=np.float32)[labels]
    y_pred = np.eye(4, dtype=np.float32)[np.array([[[0, 1, 3, 3], [0, 2, 1, 1]]])]
    yield "probabilities_0_and_1", y_true, y_pred


EDGE_CASES = {name: (t, p) for name, t, p in edge_cases()}


@pytest.mark.parametrize("case", EDGE_CASES)
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_edge_cases(loss, mode, case):
    y_true, y_pred = EDGE_CASES[case]
    for formulation in formulations_for(mode):
        check(loss, mode, formulation, y_true, y_pred)
        check(loss, mode, formulation, y_true, y_pred, "none")


def test_tie_rule_is_lowest_index():
    y_true, y_pred = EDGE_CASES["ties_in_argmax"]
    # Only class 1 is annotated, so a tie between 2 and 3 resolves to 2: absent -> weight 0.
    per_pixel = oracle.loss_value("missing_annotation_crossentropy", y_true, y_pred, "none")[0]
    assert per_pixel[0, 0] > 0  # background wins the 0/1 tie: background term kept
    assert per_pixel[0, 1] > 0  # class 1 (annotated) wins the 1/2 tie: kept
    assert per_pixel[0, 2] == 0  # class 2 (absent) wins the 2/3 tie: dropped


BUILTIN_CROSSENTROPIES = ["categorical_crossentropy", "missing_annotation_crossentropy", "marginal_crossentropy"]


@pytest.mark.parametrize("shape", [(2, 64, 64, 4), (1, 48, 96, 9), (2, 48, 48, 2)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize("loss", BUILTIN_CROSSENTROPIES)
def test_blocked_formulation_with_several_blocks_per_image(loss, mode, shape):
    """Images big enough to be cut into blocks (small ones are one block): value and gradient."""
    from segbench.losses.tf_impl import MIN_BLOCK_PIXELS, _blocks

    assert _blocks(shape[1] * shape[2], shape[3]) > 1 or shape[1] * shape[2] < 2 * MIN_BLOCK_PIXELS
    s = scene(*shape)
    check(loss, mode, "blocked", s.y_true, s.y_pred)
    check(loss, mode, "blocked", s.y_true, s.y_pred, "sum")
