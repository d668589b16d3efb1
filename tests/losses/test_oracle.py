"""The oracle itself, against numbers worked out by hand."""

import numpy as np
import pytest

from segbench._constants import EPSILON
from segbench.losses import oracle


def tiny():
    """One 1x3 image, C=3: pixels labelled background, background, class 1; class 2 never annotated."""
    y_true = np.array([[[[1, 0, 0], [1, 0, 0], [0, 1, 0]]]], dtype=np.float64)
    y_pred = np.array([[[[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]]]], dtype=np.float64)
    return y_true, y_pred


def test_categorical_crossentropy_by_hand():
    y_true, y_pred = tiny()
    expected = -np.array([np.log(0.7), np.log(0.1), np.log(0.5)])
    np.testing.assert_allclose(oracle.loss_value("categorical_crossentropy", y_true, y_pred, "none")[0, 0], expected)
    assert oracle.loss_value("categorical_crossentropy", y_true, y_pred) == pytest.approx(expected.mean())
    assert oracle.loss_value("categorical_crossentropy", y_true, y_pred, "sum") == pytest.approx(expected.sum())


def test_missing_annotation_drops_background_term_where_argmax_is_an_absent_class():
    y_true, y_pred = tiny()
    # Pixel 2 is labelled background but predicted as class 2, which the image never annotates.
    expected = -np.array([np.log(0.7), 0.0, np.log(0.5)])
    got = oracle.loss_value("missing_annotation_crossentropy", y_true, y_pred, "none")[0, 0]
    np.testing.assert_allclose(got, expected)
    grad = oracle.gradient("missing_annotation_crossentropy", y_true, y_pred, "sum")[0, 0]
    np.testing.assert_allclose(grad, [[-1 / 0.7, 0, 0], [0, 0, 0], [0, -1 / 0.5, 0]])


def test_marginal_merges_absent_classes_into_background():
    y_true, y_pred = tiny()
    expected = -np.array([np.log(0.7 + 0.1), np.log(0.1 + 0.7), np.log(0.5)])
    np.testing.assert_allclose(oracle.loss_value("marginal_crossentropy", y_true, y_pred, "none")[0, 0], expected)
    grad = oracle.gradient("marginal_crossentropy", y_true, y_pred, "sum")[0, 0]
    np.testing.assert_allclose(grad, [[-1 / 0.8, 0, -1 / 0.8], [-1 / 0.8, 0, -1 / 0.8], [0, -1 / 0.5, 0]])


def test_clip_bounds_the_loss_and_stops_the_gradient():
    y_true = np.array([[[[1, 0], [0, 1]]]], dtype=np.float64)
    y_pred = np.array([[[[0.0, 1.0], [0.0, 1.0]]]], dtype=np.float64)
    got = oracle.loss_value("categorical_crossentropy", y_true, y_pred, "none")[0, 0]
    np.testing.assert_allclose(got, [-np.log(EPSILON), -np.log(1 - EPSILON)])
    assert not oracle.gradient("categorical_crossentropy", y_true, y_pred).any()


def test_mean_gradient_is_sum_gradient_over_pixel_count():
    y_true, y_pred = tiny()
    for loss in oracle.ORACLE_LOSSES:
        np.testing.assert_allclose(
            oracle.gradient(loss, y_true, y_pred, "mean") * 3, oracle.gradient(loss, y_true, y_pred, "sum")
        )


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    y_true = np.eye(4)[rng.integers(0, 3, size=(2, 3, 3))]  # class 3 absent everywhere
    y_pred = rng.dirichlet(5 * np.ones(4), size=(2, 3, 3))
    for loss in oracle.ORACLE_LOSSES:
        grad = oracle.gradient(loss, y_true, y_pred)
        step = 1e-6
        numeric = np.zeros_like(y_pred)
        for index in np.ndindex(*y_pred.shape):
            up, down = y_pred.copy(), y_pred.copy()
            up[index] += step
            down[index] -= step
            numeric[index] = (oracle.loss_value(loss, y_true, up) - oracle.loss_value(loss, y_true, down)) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7, err_msg=loss)


def test_unknown_loss_lists_valid_ones():
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        oracle.loss_value("dice", *tiny())


def test_the_oracle_in_chunks_is_the_oracle_whole():
    from segbench.losses import plugins

    plugins.load_all(export=False)
    from segbench.losses.scenes import make_scene

    scene = make_scene(5, 16, 12, 4, missing=2)
    for loss in ("marginal_crossentropy", "soft_dice", "categorical_focal_crossentropy"):
        for reduction in ("mean", "sum", "none"):
            whole = oracle.loss_value(loss, scene.y_true, scene.y_pred, reduction, chunk=5)
            np.testing.assert_allclose(oracle.loss_value(loss, scene.y_true, scene.y_pred, reduction, chunk=2), whole)
            [(_, whole_grad)] = list(oracle.gradient_chunks(loss, scene.y_true, scene.y_pred, reduction, chunk=5))
            for part, grad in oracle.gradient_chunks(loss, scene.y_true, scene.y_pred, reduction, chunk=2):
                np.testing.assert_allclose(grad, whole_grad[part], rtol=1e-13, atol=1e-300)


def test_a_chunk_of_float64_work_stays_within_the_inputs_size():
    y_pred = np.zeros((16, 64, 64, 4), dtype=np.float32)
    images = oracle.images_per_chunk(y_pred)
    assert 1 <= images < 16
    assert oracle.TEMPORARIES * 8 * images * y_pred[0].size <= 2 * y_pred.nbytes
