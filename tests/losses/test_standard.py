"""The standard losses (segbench.losses.standard), registered through the public API, against Keras 3."""

import numpy as np
import pytest

import segbench
from segbench.losses import plugins

keras = pytest.importorskip("keras")
plugins.load_all(export=False)  # the entry point registers segbench.losses.standard

AXES = (1, 2, 3)
PEERS = {
    "soft_dice": lambda: keras.losses.Dice(axis=AXES, reduction=None),
    "tversky": lambda: keras.losses.Tversky(axis=AXES, reduction=None),
    "categorical_focal_crossentropy": lambda: keras.losses.CategoricalFocalCrossentropy(reduction=None),
    "keras_categorical_crossentropy": lambda: keras.losses.CategoricalCrossentropy(reduction=None),
}


@pytest.fixture(scope="module")
def scene():
    return segbench.make_scene(3, 24, 16, 5, missing=2)


def test_they_come_from_the_entry_point():
    for name in PEERS:
        assert segbench.LOSSES[name].user.origin == "segbench.losses.standard"


@pytest.mark.parametrize("name", list(PEERS))
@pytest.mark.parametrize("mode", ["numpy", "eager", "function", "xla"])
def test_each_agrees_with_keras_where_the_definitions_coincide(name, mode, scene):
    if name == "keras_categorical_crossentropy" and mode == "numpy":
        pytest.skip("Keras' loss has no numpy implementation")
    expected = np.asarray(PEERS[name]()(scene.y_true, scene.y_pred))  # per image or per pixel, unreduced
    got = segbench.loss_fn(name, mode, reduction="none")(scene.y_true, scene.y_pred)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-5, atol=1e-6)
    mean = float(segbench.loss_fn(name, mode)(scene.y_true, scene.y_pred))
    assert mean == pytest.approx(float(np.mean(expected)), rel=2e-5)


def test_kerass_default_dice_pools_the_batch_and_still_equals_the_mean_of_images():
    # Keras' default axis=None gives one value for the batch; segbench's soft_dice gives one per
    # image. With one-hot labels and softmax predictions each image's denominator is 2 H W, so
    # the pooled value equals the mean of the per-image ones, as here with two very different images.
    good, poor = segbench.make_scene(1, 32, 32, 4, quality=1.0), segbench.make_scene(1, 32, 32, 4, quality=0.1, seed=3)
    y_true = np.concatenate([good.y_true, poor.y_true])
    y_pred = np.concatenate([good.y_pred, poor.y_pred])
    per_image = np.asarray(segbench.loss_fn("soft_dice", "eager", reduction="none")(y_true, y_pred))
    assert per_image.shape == (2,) and per_image[1] > 2 * per_image[0]
    assert float(keras.losses.Dice()(y_true, y_pred)) == pytest.approx(per_image.mean(), rel=1e-5)


def test_the_keras_peer_is_the_standard_loss(scene):
    peer = float(segbench.loss_fn("keras_categorical_crossentropy", "xla")(scene.y_true, scene.y_pred))
    ours = float(segbench.loss_fn("categorical_crossentropy", "xla", formulation="fused")(scene.y_true, scene.y_pred))
    assert peer == pytest.approx(ours, rel=1e-5)


@pytest.mark.parametrize("name", list(PEERS))
def test_each_analytic_gradient_matches_finite_differences(name):
    # The independent oracle (issue 17 item 2): numpy's gradient, written from the definitions.
    from segbench.losses import oracle

    scene = segbench.make_scene(2, 5, 4, 3, missing=1)
    y_true, y_pred = scene.y_true.astype(np.float64), scene.y_pred.astype(np.float64)
    grad = oracle.gradient(name, y_true, y_pred, "sum")
    numeric = np.zeros_like(grad)
    step = 1e-7
    for index in np.ndindex(y_pred.shape):
        up, down = y_pred.copy(), y_pred.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (oracle.loss_value(name, y_true, up, "sum") - oracle.loss_value(name, y_true, down, "sum")) / (
            2 * step
        )
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
    assert oracle.independent(name)
