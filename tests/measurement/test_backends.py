"""One loss, every backend: the keras formulation and Keras' standard losses on JAX and PyTorch held
to the float64 oracle (forward and gradient, every dtype, the TensorFlow modes' tolerances), each
backend in its own process with KERAS_BACKEND set; segbench run with one worker per backend, on a
machine without TensorFlow, with a backend that fails to import, and with a user's keras.ops loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import segbench
from segbench.losses import registry
from segbench.measurement.sweep import PROFILES, Sweep

ROOT = Path(__file__).resolve().parents[2]
JAX_MODES, TORCH_MODES = ("jax", "jax-jit"), ("torch", "torch-compile")

# Runs in a fresh process whose Keras backend is the mode's: every loss x dtype x reduction, forward
# and gradient, against the oracle with segbench's tolerances; prints a JSON summary.
CHECK = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import segbench
    from segbench import make_scene
    from segbench.losses import oracle, plugins
    from segbench._constants import compute_dtype, tolerance

    mode, dtypes, reductions, losses = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4:]
    plugins.load_all(export=False)
    backend = segbench.MODES[mode].backend
    if backend == "torch":
        from segbench.losses.modes_torch import to_numpy as to_np
    else:
        to_np = np.asarray
    checked = 0
    for dtype in dtypes:
        s = make_scene(2, 12, 10, 4, missing=2, dtype=dtype)
        terms = 2 * 12 * 10
        for name in losses:
            loss, formulation = name.split(":")
            for reduction in reductions:
                expected = oracle.loss_value(loss, s.y_true, s.y_pred, reduction)
                expected_grad = oracle.gradient(loss, s.y_true, s.y_pred, reduction, backend=backend)
                for gradient in (False, True):
                    fn = segbench.loss_fn(loss, mode, formulation=formulation, reduction=reduction, gradient=gradient)
                    out = fn(s.y_true, s.y_pred)
                    value = to_np(out[0] if gradient else out)
                    assert str(value.dtype) == compute_dtype(dtype), (name, mode, dtype, value.dtype)
                    tol = tolerance(dtype, terms if reduction != "none" else 1)
                    message = f"{name} {mode} {dtype} {reduction}"
                    np.testing.assert_allclose(value.astype(np.float64), expected, err_msg=message, **tol)
                    if gradient:
                        grad = to_np(out[1]).astype(np.float64)
                        assert grad.shape == s.y_pred.shape
                        scale = max(float(np.abs(expected_grad).max()), 1e-300)
                        base = tolerance(dtype)
                        np.testing.assert_allclose(grad, expected_grad, rtol=base["rtol"], atol=base["atol"] * scale,
                                                   err_msg=f"gradient {name} {mode} {dtype} {reduction}")
                    checked += 1
    print(json.dumps({"checked": checked, "tensorflow": "tensorflow" in sys.modules}))
    """
)

SEED = [f"{loss}:keras" for loss in registry.builtin_losses()]
STANDARD = ["soft_dice:keras", "tversky:keras", "categorical_focal_crossentropy:keras"]


def _env(backend: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    env.pop("SEGBENCH_PLUGINS", None)
    return env


def _check(mode: str, dtypes: str, reductions: str, losses: list[str]) -> dict:
    backend = segbench.MODES[mode].backend
    done = subprocess.run(
        [sys.executable, "-c", CHECK, mode, dtypes, reductions, *losses],
        capture_output=True,
        text=True,
        env=_env(backend),
        cwd=ROOT,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _needs(backend: str) -> None:
    pytest.importorskip("keras")
    pytest.importorskip(backend)


@pytest.mark.parametrize("mode", ["jax", "torch"])
@pytest.mark.slow
def test_the_seeds_losses_in_keras_ops_agree_with_the_oracle_in_every_dtype(mode):
    """Eager JAX and PyTorch: the three losses, four dtypes (half precision computes in float32),
    three reductions, forward and gradient; and no TensorFlow imported in the process."""
    _needs(segbench.MODES[mode].backend)
    summary = _check(mode, "float32,float16,bfloat16,float64", "mean,sum,none", SEED)
    assert summary == {"checked": 4 * 3 * 3 * 2, "tensorflow": False}


@pytest.mark.parametrize("mode", ["jax-jit", "torch-compile"])
@pytest.mark.slow
def test_the_compiled_modes_agree_with_the_oracle(mode):
    """jax.jit and torch.compile (slow to compile: float32 and bfloat16, mean and none)."""
    _needs(segbench.MODES[mode].backend)
    summary = _check(mode, "float32,bfloat16", "mean,none", SEED)
    assert summary == {"checked": 2 * 3 * 2 * 2, "tensorflow": False}


@pytest.mark.parametrize("mode", ["jax", "torch"])
@pytest.mark.slow
def test_kerass_standard_losses_agree_with_their_numpy_references_on_every_backend(mode):
    _needs(segbench.MODES[mode].backend)
    summary = _check(mode, "float32,float64", "mean,none", STANDARD)
    assert summary == {"checked": 2 * 3 * 2 * 2, "tensorflow": False}


def test_the_keras_formulation_runs_in_the_tensorflow_modes_here():
    """In this process (Keras on TensorFlow) the keras formulation is one more TensorFlow formulation."""
    pytest.importorskip("keras")
    from segbench import make_scene
    from segbench.losses import oracle

    s = make_scene(2, 8, 8, 4, missing=1)
    for mode in ("eager", "function", "xla"):
        value = float(segbench.loss_fn("marginal_crossentropy", mode, formulation="keras")(s.y_true, s.y_pred))
        assert value == pytest.approx(float(oracle.loss_value("marginal_crossentropy", s.y_true, s.y_pred)), rel=1e-5)


def test_a_keras_loss_on_the_wrong_backend_says_how_to_get_the_right_one():
    pytest.importorskip("keras")
    with pytest.raises(RuntimeError, match=r"needs Keras on the JAX backend.*KERAS_BACKEND=jax"):
        segbench.loss_fn("categorical_crossentropy", "jax", formulation="keras")


def test_the_registry_names_each_modes_backend_and_the_choices():
    assert {m: registry.MODES[m].backend for m in (*JAX_MODES, *TORCH_MODES)} == {
        "jax": "jax",
        "jax-jit": "jax",
        "torch": "torch",
        "torch-compile": "torch",
    }
    assert registry.MODES["jax-jit"].compiles and registry.MODES["torch-compile"].compiles
    assert not registry.MODES["jax"].compiles
    with pytest.raises(ValueError, match="unknown backend 'mxnet'; expected one of: numpy, tensorflow, jax, torch"):
        registry.get_backend("mxnet")
    with pytest.raises(ValueError, match=r"unknown mode 'jit'; expected one of: .*jax-jit, torch, torch-compile"):
        segbench.loss_fn("categorical_crossentropy", "jit")
    reason = registry.unsupported("categorical_crossentropy", "fused", "jax", False)
    assert reason == "formulation fused has no JAX implementation (mode jax)"


def test_a_user_loss_runs_where_it_has_a_function():
    try:
        registry.register_loss("tf_only_user_loss", lambda y, p: (y - p) ** 2)
        registry.register_loss("keras_user_loss", keras=lambda y, p: (y - p) ** 2)
        registry.register_loss("both_user_loss", lambda y, p: (y - p) ** 2, keras=lambda y, p: (y - p) ** 2)
        assert registry.unsupported("tf_only_user_loss", "reference", "jax", False).startswith(
            "loss tf_only_user_loss has no JAX implementation"
        )
        for mode in ("eager", "xla", "jax", "torch-compile"):
            assert registry.unsupported("keras_user_loss", "reference", mode, True) is None
        assert segbench.LOSSES["both_user_loss"].formulations == ("reference", "keras")
        assert registry.unsupported("both_user_loss", "reference", "jax", False) is not None
        assert registry.unsupported("both_user_loss", "keras", "jax", False) is None
    finally:
        for name in ("tf_only_user_loss", "keras_user_loss", "both_user_loss"):
            registry.unregister_loss(name)


# ---------------------------------------------------------------------------------------------
# segbench run: a worker per backend.

# A sitecustomize that makes a library look not installed: importing it raises ModuleNotFoundError
# and importlib.util.find_spec answers None, as where it is absent (torch._dynamo asks for TensorFlow).
HIDE = textwrap.dedent(
    """
    import sys
    for name in {hidden!r}:
        sys.modules[name] = None
    """
)


def _segbench(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "segbench.cli", *args],
        capture_output=True,
        text=True,
        env=env or _env("tensorflow"),
        cwd=tmp_path,
        timeout=900,
    )


def _hide(tmp_path: Path, *modules: str) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE.format(hidden=set(modules)))
    return _env("tensorflow", PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))


@pytest.mark.slow
def test_run_without_tensorflow_runs_numpy_and_jax_and_lists_the_rest(tmp_path):
    _needs("jax")
    out = tmp_path / "r"
    args = ["run", "--profile", "tiny", "--loss", "categorical_crossentropy", "--formulation", "reference,keras"]
    args += ["--mode", "numpy,eager,jax-jit", "--pass", "forward", "--out", str(out), "--quiet"]
    done = _segbench(args, tmp_path, _hide(tmp_path, "tensorflow"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "segbench run: TensorFlow is not installed: eager unavailable (pip install tensorflow)" in done.stderr
    assert "Traceback" not in done.stderr
    rows = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert {(r["mode"], r["backend"], r["status"]) for r in rows} == {
        ("numpy", "numpy", "ok"),
        ("jax-jit", "jax", "ok"),
    }
    assert all(r["within_tolerance"] for r in rows)
    assert "JAX 0." in done.stderr  # the backends found, with versions


@pytest.mark.slow
def test_a_backend_that_fails_to_import_gives_error_rows_naming_it(tmp_path):
    _needs("jax")
    broken = tmp_path / "broken"
    (broken / "torch").mkdir(parents=True)
    (broken / "torch" / "__init__.py").write_text("raise ImportError('libtorch_cpu.so: cannot open shared object')\n")
    env = _env("tensorflow", PYTHONPATH=os.pathsep.join([str(broken), str(ROOT)]))
    out = tmp_path / "r"
    args = ["run", "--profile", "tiny", "--loss", "categorical_crossentropy", "--formulation", "keras"]
    args += ["--mode", "jax,torch", "--pass", "forward", "--out", str(out), "--quiet"]
    done = _segbench(args, tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["mode"]: r for r in map(json.loads, (out / "cells.jsonl").read_text().splitlines())}
    assert rows["jax"]["status"] == "ok"
    assert rows["torch"]["status"] == "error"
    assert "the PyTorch backend could not start" in rows["torch"]["error"]
    assert "libtorch_cpu.so" in rows["torch"]["error"]


@pytest.mark.slow
def test_each_backend_has_its_own_worker_started_once_per_visit(tmp_path):
    _needs("jax")
    from segbench.measurement.runner import CellSupervisor

    sweep = Sweep(
        losses=("categorical_crossentropy", "marginal_crossentropy"),
        formulations=("reference", "keras"),
        modes=("numpy", "jax"),
        passes=("forward",),
        batches=(1,),
        resolutions=((8, 8),),
    )
    cases = sweep.cases()
    supervisor = CellSupervisor("cpu", False, PROFILES["tiny"].budget)
    try:
        supervisor.hello("tiny", ("numpy", "jax"))
        rows = [supervisor.measure(case) for case in cases]
        assert [r["status"] for r in rows] == ["ok"] * len(cases), [r.get("error") for r in rows]
        assert {r["backend"] for r in rows} == {"numpy", "jax"}
        assert {b: w.starts for b, w in supervisor.workers.items()} == {"numpy": 1, "jax": 1}
        pids = {b: w.worker.process.pid for b, w in supervisor.workers.items()}
        assert len(set(pids.values())) == 2  # never one process for two backends
        # the read ceiling: the fastest of every backend's reads, the same for every cell of the shape
        assert len({(r["ceiling_gb_per_s"], r["ceiling_method"]) for r in rows}) == 1
        assert all(r["mem_method"] == "unavailable" for r in rows if r["backend"] == "jax")  # JAX on the CPU
    finally:
        supervisor.close()


USER_PLUGIN = textwrap.dedent(
    """
    import segbench
    from keras import ops

    def squared_error(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    def needs_an_op(y_true, y_pred):
        import keras
        if keras.backend.backend() == "torch":
            raise NotImplementedError("ops.fancy_op is not implemented for the torch backend")
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    segbench.register_loss("keras_squared_error", keras=squared_error)
    segbench.register_loss("keras_needs_an_op", keras=needs_an_op)
    """
)


@pytest.mark.slow
def test_a_users_keras_ops_loss_is_timed_and_checked_on_every_backend(tmp_path):
    _needs("jax")
    _needs("torch")
    plugin = tmp_path / "plugin.py"
    plugin.write_text(USER_PLUGIN)
    out = tmp_path / "r"
    args = ["run", "--profile", "tiny", "--plugin", str(plugin), "--loss", "keras_squared_error,keras_needs_an_op"]
    args += ["--mode", "eager,jax,torch", "--out", str(out), "--quiet"]
    done = _segbench(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    squared = [r for r in rows if r["loss"] == "keras_squared_error"]
    assert {(r["mode"], r["status"]) for r in squared} == {(m, "ok") for m in ("eager", "jax", "torch")}
    assert all(r["within_tolerance"] for r in squared)
    failing = {(r["mode"], r["pass"]): r for r in rows if r["loss"] == "keras_needs_an_op"}
    assert {k: r["status"] for k, r in failing.items()} == {
        (m, p): ("error" if m == "torch" else "ok")
        for m in ("eager", "jax", "torch")
        for p in ("forward", "forward+backward")
    }
    error = failing[("torch", "forward")]["error"]
    assert "failed on the PyTorch backend" in error and "ops.fancy_op" in error


def test_tables_before_the_backend_column_load_with_the_backend_of_their_mode(tmp_path):
    import pandas as pd

    from segbench import results

    old = pd.DataFrame(
        [
            {"schema_version": 3, "loss": "categorical_crossentropy", "formulation": "reference", "mode": mode}
            | {"pass": "forward", "batch": 1, "height": 8, "width": 8, "classes": 4, "dtype": "float32"}
            | {"status": "ok", "median_s": 1e-3}
            for mode in ("numpy", "xla")
        ]
    )
    old.to_csv(tmp_path / "old.csv", index=False)
    frame = results.load(tmp_path / "old.csv")
    assert list(frame["backend"]) == ["numpy", "tensorflow"]
    assert (
        results.SCHEMA_VERSION == 5 and list(results.SCHEMA).index("backend") == list(results.SCHEMA).index("mode") + 1
    )


def process_state(group: tuple[str, ...]) -> dict:
    """What a child of plugins.run_isolated runs in (a task of its own: importable by the child)."""
    return {
        "pid": os.getpid(),
        "keras_backend": os.environ.get("KERAS_BACKEND"),
        "tensorflow": "tensorflow" in sys.modules,
        "group": group,
    }


@pytest.mark.slow
def test_values_and_checks_children_serve_one_backend_each():
    """The process values and check evaluate a backend's modes in: Keras on that backend, and no
    TensorFlow in a JAX or PyTorch one."""
    from segbench.losses import plugins

    states = {
        backend: next(iter(plugins.run_isolated(process_state, [("x",)], backend=backend)))[1]
        for backend in ("numpy", "jax", "torch")
    }
    assert {b: (s["keras_backend"], s["tensorflow"]) for b, s in states.items()} == {
        "numpy": ("numpy", False),
        "jax": ("jax", False),
        "torch": ("torch", False),
    }
    assert len({s["pid"] for s in states.values()} | {os.getpid()}) == 4


@pytest.mark.slow
def test_values_shows_every_backend_and_runs_without_tensorflow(tmp_path):
    """segbench values on a machine without TensorFlow: the numpy, JAX and PyTorch rows, and one
    line naming what is left out; no traceback."""
    _needs("jax")
    _needs("torch")
    done = _segbench(["values", "--loss", "categorical_crossentropy"], tmp_path, _hide(tmp_path, "tensorflow"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "NOTE: TensorFlow is not installed: modes eager, function, xla left out" in done.stderr
    assert "Traceback" not in done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("categorical_ce")]
    assert [(r[1], r[2]) for r in rows] == [
        ("reference", "NumPy"),
        ("fused", "NumPy"),
        ("keras", "JAX"),
        ("keras", "PyTorch"),
    ]
    keras = {r[2]: r for r in rows if r[1] == "keras"}
    assert keras["JAX"][3] != "-" and keras["JAX"][5] != "-"  # eager and compiled
    assert keras["PyTorch"][3] != "-" and keras["PyTorch"][5] != "-"


@pytest.mark.slow
def test_values_and_check_give_a_loss_that_fails_on_one_backend_one_line_naming_it(tmp_path):
    _needs("jax")
    _needs("torch")
    plugin = tmp_path / "plugin.py"
    plugin.write_text(USER_PLUGIN)
    losses = ["--plugin", str(plugin), "--loss", "keras_squared_error,keras_needs_an_op"]
    done = _segbench(["values", *losses], tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    rows = {(line.split()[0], line.split()[2]) for line in done.stdout.splitlines() if line.startswith("keras_")}
    assert rows == {
        ("keras_squared_error", "TensorFlow"),
        ("keras_squared_error", "JAX"),
        ("keras_squared_error", "PyTorch"),
        ("keras_needs_an_op", "TensorFlow"),
        ("keras_needs_an_op", "JAX"),
    }
    failed = [line for line in done.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "PyTorch backend" in failed[0] and "ops.fancy_op" in failed[0], done.stderr
    assert "compare the backends' rows with each other" in done.stderr

    check = ["check", *losses, "--mode", "eager,jax,torch", "--scenario", "complete", "--quiet"]
    check += ["--table", str(ROOT / "results" / "reference_values.csv")]
    done = _segbench(check, tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    failed = [line for line in done.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "PyTorch backend" in failed[0] and "ops.fancy_op" in failed[0], done.stderr
    assert "absl::InitializeLog" not in done.stderr  # TensorFlow imported (and quietly) only where it runs
    report = done.stdout
    for mode in ("eager", "jax", "torch"):
        assert any(line.split()[2:3] == [mode] for line in report.splitlines() if "keras_squared" in line), report
