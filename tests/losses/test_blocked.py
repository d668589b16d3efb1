"""The blocked formulation on shapes whose pixels do not divide into its blocks.

Each image's pixels are rows of ``blocks`` groups of GROUP_PIXELS, and the pixels after the last
whole row are the last, partial block, summed on their own (segbench/losses/tf_impl.py). A value or a
gradient that is wrong only there is a small share of the whole, so these tests look at the
partial block itself: its pixels' gradient element by element, and the value to within 1 % of the
partial block's share of it. The scenes' partial blocks are mispredicted, so that share is large.
"""

import numpy as np
import pytest
from conftest import to_numpy

import segbench
from segbench import make_scene
from segbench.losses import oracle

BUILTIN_CROSSENTROPIES = ["categorical_crossentropy", "missing_annotation_crossentropy", "marginal_crossentropy"]

# (batch, height, width, classes): blocks, rows and the partial block's pixels as _layout cuts them.
SHAPES = {
    (2, 37, 59, 4): (2, 136, 7),  # 2183 pixels: a prime number of them
    (1, 100, 131, 4): (12, 136, 44),
    (2, 61, 67, 9): (3, 170, 7),  # C = 9: fewer blocks
    (2, 1, 7, 4): (1, 0, 7),  # fewer pixels than one group: all of them in the partial block
}
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]

RTOL = 1e-4  # float32 against the float64 oracle, element by element


@pytest.fixture(scope="module")
def tf():
    from segbench.measurement.backends import import_tensorflow_quietly

    return import_tensorflow_quietly()


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_the_shapes_have_a_partial_block(shape):
    from segbench.losses.tf_impl import GROUP_PIXELS, _layout

    _, h, w, c = shape
    blocks, rows, tail = _layout(h * w, c)
    assert (blocks, rows, tail) == SHAPES[shape]
    assert 0 < tail < blocks * GROUP_PIXELS or rows == 0
    assert rows * blocks * GROUP_PIXELS + tail == h * w


def inputs(shape):
    """A scene whose partial block is mispredicted: its pixels' probabilities rolled by one class,
    so that the true class gets a small one and those pixels carry a large share of the loss."""
    n, h, w, c = shape
    s = make_scene(n, h, w, c, missing=min(n, 2) if c > 2 else 0, seed=0)
    y_pred = s.y_pred.reshape(n, -1, c).copy()
    mask = tail_pixels(shape)
    y_pred[mask] = np.roll(y_pred[mask], 1, axis=-1)
    return s.y_true, y_pred.reshape(s.y_pred.shape)


def tail_pixels(shape):
    """A (N, H*W) mask of the partial block's pixels."""
    from segbench.losses.tf_impl import _layout

    n, h, w, c = shape
    tail = _layout(h * w, c)[2]
    mask = np.zeros((n, h * w), bool)
    mask[:, h * w - tail :] = True
    return mask


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("loss", BUILTIN_CROSSENTROPIES)
def test_gradient_of_the_partial_block(tf, loss, shape, mode, reduction):
    y_true, y_pred = inputs(shape)
    fn = segbench.loss_fn(loss, mode, formulation="blocked", gradient=True, reduction=reduction)
    value, grad = fn(y_true, y_pred)
    expected = oracle.gradient(loss, y_true, y_pred, reduction)
    n, c = shape[0], shape[3]
    mask = tail_pixels(shape)
    got_tail = to_numpy(grad).astype(np.float64).reshape(n, -1, c)[mask]
    expected_tail = expected.reshape(n, -1, c)[mask]
    assert np.abs(expected_tail).max() > 0  # the partial block has pixels whose gradient is not zero
    np.testing.assert_allclose(got_tail, expected_tail, rtol=RTOL, atol=RTOL * np.abs(expected_tail).max())
    got = to_numpy(grad).astype(np.float64)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())
    np.testing.assert_allclose(float(value), oracle.loss_value(loss, y_true, y_pred, reduction), rtol=RTOL)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("loss", BUILTIN_CROSSENTROPIES)
def test_value_of_the_partial_block(tf, loss, shape, mode, reduction):
    """The value against the oracle within 1 % of the partial block's share of it: a partial block
    left out, counted twice or scaled wrongly fails, however small its share of the whole."""
    y_true, y_pred = inputs(shape)
    got = float(segbench.loss_fn(loss, mode, formulation="blocked", reduction=reduction)(y_true, y_pred))
    expected = oracle.loss_value(loss, y_true, y_pred, reduction)
    per_pixel = oracle.loss_value(loss, y_true, y_pred, "none").reshape(shape[0], -1)
    share = per_pixel[tail_pixels(shape)].sum() / (per_pixel.size if reduction == "mean" else 1)
    assert abs(share) > 1e-4 * abs(expected)  # 1 % of it is well above float32's rounding of the whole
    assert abs(got - expected) <= 0.01 * abs(share)


@pytest.mark.parametrize("elements", [2**21, 2**21 + 64, 4096 * 3 + 5])
def test_the_column_total_adds_no_long_float32_chain_under_xla(elements):
    """XLA:CPU added a column's rows one after the other and merged chained float32 reductions: a
    total of 2**21 near-equal terms was 7e-5 off (categorical_crossentropy/blocked/xla at C=32:
    5.9e-4, over its tolerance). Chunks of 256 rows, then float64: within a few u."""
    import tensorflow as tf

    from segbench.losses.tf_impl import _column_total

    values = (0.0101 + 1e-4 * np.random.default_rng(0).random(elements)).astype(np.float32)
    exact = float(np.sum(values, dtype=np.float64))
    got = float(tf.function(_column_total, jit_compile=True)(tf.constant(values)))
    assert abs(got - exact) / exact < 5e-7


@pytest.mark.parametrize("loss", BUILTIN_CROSSENTROPIES)
@pytest.mark.parametrize("mode", ["function", "xla"])
def test_one_log_of_scores_at_the_clip_bound_stays_finite_and_exact(tf, loss, mode):
    """Every pixel's true class predicted with probability 0: four scores at EPSILON multiply to
    1e-28 (LOG_GROUP), still a normal float32, so the value is -log(EPSILON) as the oracle says;
    a product that underflowed to 0 would give inf."""
    from segbench.losses import tf_impl

    assert np.finfo(np.float32).tiny < tf_impl.EPSILON**tf_impl.LOG_GROUP
    y_true = np.zeros((2, 64, 64, 4), np.float32)
    y_true[..., 1] = 1.0  # every pixel: class 1, present in every image
    y_pred = np.zeros_like(y_true)
    y_pred[..., 2] = 1.0  # predicted: class 2, with certainty
    got = float(segbench.loss_fn(loss, mode, formulation="blocked")(y_true, y_pred))
    expected = oracle.loss_value(loss, y_true.astype(np.float64), y_pred.astype(np.float64))
    assert np.isfinite(got) and got == pytest.approx(expected, rel=1e-6)
