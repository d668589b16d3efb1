"""Bring your own loss: register_loss, plugins from files outside the package, and their errors."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

import segbench
from segbench import results
from segbench.cli.parser import main
from segbench.losses import oracle, plugins, registry
from segbench.measurement.runner import run
from segbench.measurement.sweep import PROFILES, Sweep

TINY = PROFILES["tiny"]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "balanced_loss.py"

# A user's loss in a file of its own: TensorFlow for training, numpy to debug with.
USER_LOSS = """
import numpy as np
import segbench

def squared_numpy(y_true, y_pred):
    return ((y_true - y_pred) ** 2).sum(axis=-1) * {scale}

def squared_gradient(y_true, y_pred):
    return 2 * (y_pred - y_true)

@segbench.register_loss("{name}", numpy=squared_numpy, numpy_gradient=squared_gradient)
def squared_tensorflow(y_true, y_pred):
    import tensorflow as tf
    return tf.reduce_sum((y_true - y_pred) ** 2, axis=-1)
"""


@pytest.fixture
def plugin_file(tmp_path):
    """Write a plugin file; the losses it registers are removed after the test."""
    before = set(segbench.LOSSES)

    def write(body: str, name: str = "user_loss.py") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(body))
        return str(path)

    yield write
    for name in set(segbench.LOSSES) - before:
        registry.unregister_loss(name)
    plugins._loaded.clear()


@pytest.mark.slow
def test_a_registered_loss_is_swept_in_every_mode_and_pass(plugin_file, tmp_path, monkeypatch):
    monkeypatch.delenv("SEGBENCH_PLUGINS", raising=False)
    path = plugin_file(USER_LOSS.format(name="squared_error", scale=1.0))
    plugins.load_all([path])
    assert "squared_error" in segbench.LOSSES
    sweep = Sweep(losses=("squared_error",), formulations=("reference",), batches=(2,), resolutions=((8, 8),))
    frame = results.load(run(TINY, sweep, out=tmp_path / "r", progress=False))  # workers load it via the env
    assert len(frame) == 8 and (frame["status"] == "ok").all(), frame[["mode", "error"]]
    assert frame["within_tolerance"].all()
    assert set(frame["mode"]) == set(segbench.losses.registry.TENSORFLOW_MODES)


def test_each_mode_agrees_with_the_users_oracle_and_gradient(plugin_file):
    plugins.load_all([plugin_file(USER_LOSS.format(name="squared_error", scale=1.0))], export=False)
    scene = segbench.make_scene(2, 8, 8, 4, missing=1)
    expected = oracle.gradient("squared_error", scene.y_true, scene.y_pred)
    np.testing.assert_allclose(expected, 2 * (scene.y_pred - scene.y_true) / (2 * 8 * 8), rtol=1e-6, atol=1e-9)
    for mode in segbench.losses.registry.TENSORFLOW_MODES:
        value, grad = segbench.loss_fn("squared_error", mode, gradient=True)(scene.y_true, scene.y_pred)
        expected_value = float(oracle.loss_value("squared_error", scene.y_true, scene.y_pred))
        assert float(np.asarray(value)) == pytest.approx(expected_value, rel=1e-5)
        np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_a_reference_one_percent_off_does_not_pass(plugin_file, capsys):
    path = plugin_file(USER_LOSS.format(name="off_by_one_percent", scale=1.01))
    assert main(["values", "--plugin", path]) == 1
    err = capsys.readouterr().err
    assert "MISMATCH: off_by_one_percent (reference, plugin " in err and " in mode eager" in err
    assert main(["check", "--plugin", path, "--loss", "off_by_one_percent", "--scenario", "edges_float32"]) == 1
    assert "numpy vs tensorflow" in capsys.readouterr().err


@pytest.mark.slow
def test_the_example_plugin_checks_clean(capsys):
    assert main(["check", "--plugin", str(EXAMPLE), "--loss", "balanced_crossentropy", "--scenario", "seed"]) == 0
    assert "0 mismatches" in capsys.readouterr().out
    registry.unregister_loss("balanced_crossentropy")
    plugins._loaded.clear()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "file not found"),
        ("import no_such_module_here\n", "failed to import: ModuleNotFoundError"),
        ("raise RuntimeError('boom')\n", "failed to import: RuntimeError: boom"),
        (
            "import segbench\nsegbench.register_loss('categorical_crossentropy', lambda t, p: t)\n",
            "'categorical_crossentropy' is already registered by segbench",
        ),
    ],
)
def test_bad_plugins_name_the_plugin_and_the_problem(plugin_file, tmp_path, capsys, body, message):
    path = str(tmp_path / "missing.py") if body is None else plugin_file(body)
    assert main(["values", "--plugin", path]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if body is not None:
        assert path in err or "already registered" in err


def test_a_plugin_that_is_not_a_python_file_is_named(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("not python")
    assert main(["values", "--plugin", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"plugin '{path}': not a Python file" in err and "Traceback" not in err


def test_a_missing_module_plugin_is_named(capsys):
    assert main(["run", "--list", "--plugin", "no_such_package.losses"]) == 2
    assert "plugin 'no_such_package.losses': module not found" in capsys.readouterr().err


def test_wrong_output_shape_or_dtype_is_a_clear_error(plugin_file):
    body = """
    import segbench
    import tensorflow as tf
    segbench.register_loss("flat", lambda y_true, y_pred: y_pred[..., 0:2])
    segbench.register_loss("integer", lambda y_true, y_pred: tf.cast(y_pred > 0.5, "int32")[..., 0])
    """
    plugins.load_all([plugin_file(body)], export=False)
    scene = segbench.make_scene(2, 8, 8, 4)
    with pytest.raises(ValueError, match=r"loss 'flat' \(plugin .*\): its TensorFlow function returned shape"):
        segbench.loss_fn("flat", "eager")(scene.y_true, scene.y_pred)
    with pytest.raises(TypeError, match=r"loss 'integer' .* returned dtype int32"):
        segbench.loss_fn("integer", "xla")(scene.y_true, scene.y_pred)


@pytest.mark.slow
def test_a_loss_xla_cannot_compile_fails_its_cells_and_the_sweep_goes_on(plugin_file, tmp_path, monkeypatch):
    body = """
    import numpy as np
    import segbench

    def host_only(y_true, y_pred):
        import tensorflow as tf
        return tf.numpy_function(lambda t, p: ((t - p) ** 2).sum(-1), [y_true, y_pred], y_pred.dtype)

    segbench.register_loss("host_only", host_only)
    """
    monkeypatch.delenv("SEGBENCH_PLUGINS", raising=False)
    plugins.load_all([plugin_file(body)])
    sweep = Sweep(
        losses=("host_only",), formulations=("reference",), passes=("forward",), batches=(1,), resolutions=((8, 8),)
    )
    frame = results.load(run(TINY, sweep, out=tmp_path / "r", progress=False)).set_index("mode")
    assert frame.loc["xla", "status"] == "error" and frame.loc["eager", "status"] == "ok"
    assert "numpy" not in frame.index  # no numpy reference: no numpy cell


def test_register_loss_checks_its_arguments():
    with pytest.raises(ValueError, match="name must be an identifier"):
        segbench.register_loss("no spaces", lambda t, p: t)
    with pytest.raises(TypeError, match="must be a function or a keras Loss"):
        segbench.register_loss("not_callable", 3)
    with pytest.raises(ValueError, match="numpy_gradient but no numpy"):
        segbench.register_loss("grad_only", lambda t, p: t, numpy_gradient=lambda t, p: t)


def test_a_keras_loss_instance_registers_as_it_is():
    keras = pytest.importorskip("keras")
    segbench.register_loss("keras_focal", keras.losses.CategoricalFocalCrossentropy())
    try:
        scene = segbench.make_scene(2, 8, 8, 4)
        expected = float(keras.losses.CategoricalFocalCrossentropy()(scene.y_true, scene.y_pred))
        got = float(segbench.loss_fn("keras_focal", "xla")(scene.y_true, scene.y_pred))
        assert got == pytest.approx(expected, rel=1e-5)
    finally:
        registry.unregister_loss("keras_focal")
