import subprocess
import sys

import pytest
from conftest import ALL_FORMULATIONS, ALL_LOSSES

import segbench
from segbench import make_scene
from segbench.losses import registry


def test_import_does_not_import_tensorflow():
    code = (
        "import sys, segbench; segbench.loss_fn('marginal_crossentropy', 'numpy'); print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
def test_every_loss_and_formulation_is_implemented_by_every_backend(backend):
    for loss in ALL_LOSSES:
        for formulation in ALL_FORMULATIONS:
            modes = [m for m, spec in segbench.MODES.items() if spec.backend == backend]
            if any(registry.unsupported(loss, formulation, m, False) is None for m in modes):
                assert registry.implementation(loss, formulation, backend) is not None


@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize("gradient", [False, True])
def test_graph_modes_trace_once_per_shape(mode, gradient):
    fn = segbench.loss_fn("missing_annotation_crossentropy", mode, gradient=gradient)
    a, b = make_scene(2, 8, 8, 4, seed=0), make_scene(2, 8, 8, 4, seed=1)
    for s in (a, b, a, b):
        fn(s.y_true, s.y_pred)
    assert fn.tf_function.experimental_get_tracing_count() == 1
    c = make_scene(2, 8, 12, 4)
    fn(c.y_true, c.y_pred)
    assert fn.tf_function.experimental_get_tracing_count() == 2


def test_eager_and_numpy_have_no_tf_function():
    assert segbench.loss_fn("categorical_crossentropy", "eager").tf_function is None
    assert segbench.loss_fn("categorical_crossentropy", "numpy").tf_function is None


def test_loss_function_describes_itself():
    fn = segbench.loss_fn("marginal_crossentropy", "xla", gradient=True, reduction="sum")
    assert (fn.loss, fn.mode, fn.formulation, fn.reduction, fn.gradient) == (
        "marginal_crossentropy",
        "xla",
        "reference",
        "sum",
        True,
    )


def test_modes_are_grouped_by_backend_in_the_registrys_order():
    assert registry.modes_by_backend(["torch", "xla", "numpy", "jax-jit", "eager"]) == {
        "numpy": ("numpy",),
        "tensorflow": ("xla", "eager"),
        "jax": ("jax-jit",),
        "torch": ("torch",),
    }


def test_backends_not_installed_are_named_with_the_modes_they_leave_out(monkeypatch):
    found = {"numpy": True, "tensorflow": False, "jax": True, "torch": False}
    monkeypatch.setattr(registry, "installed_backends", lambda: found)
    groups, missing = registry.installed_modes_by_backend(["eager", "xla", "jax", "torch"])
    assert groups == {"jax": ("jax",)}
    assert missing == [
        "TensorFlow is not installed: modes eager, xla left out",
        "PyTorch is not installed: mode torch left out",
    ]
