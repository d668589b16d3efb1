import numpy as np
import pytest

import segbench
from segbench import make_scene, validate_inputs


@pytest.fixture(scope="module")
def good():
    s = make_scene(2, 8, 8, 4, seed=0)
    return s.y_true.copy(), s.y_pred.copy()


def modified(array, index, value):
    out = array.copy()
    out[index] = value
    return out


CASES = {
    "rank_not_4": (lambda t, p: (t[0], p[0]), ValueError, "y_true must have rank 4"),
    "shapes_differ": (lambda t, p: (t, p[:, :4]), ValueError, "same shape"),
    "one_class": (lambda t, p: (np.ones_like(t[..., :1]), np.ones_like(p[..., :1])), ValueError, "at least 2 classes"),
    "not_one_hot": (lambda t, p: (modified(t, (0, 0, 0), [0.5, 0.5, 0, 0]), p), ValueError, "y_true must be one-hot"),
    "two_ones": (lambda t, p: (modified(t, (0, 0, 0), [1, 1, 0, 0]), p), ValueError, "y_true must be one-hot"),
    "pred_negative": (lambda t, p: (t, modified(p, (0, 0, 0), [-0.1, 0.6, 0.3, 0.2])), ValueError, r"y_pred must lie"),
    "pred_rows": (lambda t, p: (t, modified(p, (0, 0, 0), [0.5, 0.5, 0.5, 0.0])), ValueError, "y_pred rows must sum"),
    "nan": (lambda t, p: (t, modified(p, (0, 0, 0, 0), np.nan)), ValueError, "y_pred contains NaN or Inf"),
    "inf": (lambda t, p: (modified(t, (0, 0, 0, 0), np.inf), p), ValueError, "y_true contains NaN or Inf"),
    "empty_batch": (lambda t, p: (t[:0], p[:0]), ValueError, "empty"),
    "int_true": (lambda t, p: (t.astype(np.int32), p), TypeError, "y_true must be a floating-point"),
    "int_pred": (lambda t, p: (t, p.astype(np.int64)), TypeError, "y_pred must be a floating-point"),
    "mixed_dtypes": (lambda t, p: (t.astype(np.float64), p), TypeError, "same dtype"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["numpy", "eager", "xla"])
def test_bad_input_names_argument(good, case, mode):
    make, exc, message = CASES[case]
    y_true, y_pred = make(*good)
    with pytest.raises(exc, match=message):
        segbench.loss_fn("missing_annotation_crossentropy", mode)(y_true, y_pred)


def test_tensors_are_validated_too(good):
    tf = pytest.importorskip("tensorflow")
    y_true, y_pred = good
    with pytest.raises(ValueError, match="y_pred rows must sum"):
        segbench.loss_fn("categorical_crossentropy", "function")(tf.constant(y_true), tf.constant(y_pred * 0.5))


def test_validate_false_skips_checks(good):
    y_true, y_pred = good
    bad = y_pred * 0.5  # rows sum to 0.5
    value = segbench.loss_fn("categorical_crossentropy", "numpy", validate=False)(y_true, bad)
    assert np.isfinite(value)


def test_good_input_passes(good):
    validate_inputs(*good)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "dice"}, "unknown loss 'dice'; expected one of: categorical_crossentropy"),
        ({"mode": "mxnet"}, "unknown mode 'mxnet'; expected one of: numpy, eager, function, xla, jax, jax-jit"),
        ({"formulation": "magic"}, "unknown formulation 'magic'; expected one of: reference"),
        ({"reduction": "max"}, "unknown reduction 'max'; expected one of: mean, sum, none"),
    ],
)
def test_unknown_names_list_valid_ones(kwargs, message):
    args = {"loss": "categorical_crossentropy", "mode": "numpy", **kwargs}
    with pytest.raises(ValueError, match=message):
        segbench.loss_fn(args.pop("loss"), args.pop("mode"), **args)
