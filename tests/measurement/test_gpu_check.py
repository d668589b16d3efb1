"""scripts/gpu-check: its CPU mode end to end with TensorFlow hidden, and its verdicts one by one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segbench._constants import tolerance
from segbench.losses import oracle
from segbench.measurement import gpu_check

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check"


def run_script(*args: str, hide: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(gpu_check.HIDE_VARIABLE, None)
    if hide:
        env[gpu_check.HIDE_VARIABLE] = hide
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )


@pytest.mark.slow
def test_cpu_mode_without_tensorflow_writes_the_folder_and_agrees_with_the_oracle(tmp_path):
    out = tmp_path / "check"
    done = run_script("--device", "cpu", "--shapes", "2x16x24", "--out", str(out), hide="tensorflow")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skip tensorflow: hidden by SEGBENCH_HIDE_BACKENDS" in done.stdout
    for name in ("summary.txt", "results.csv", "reads.csv", "environment.json"):
        assert (out / name).is_file(), name
    summary = (out / "summary.txt").read_text()
    assert "PASS" in summary and "read ceiling at b2 16x24 C=4" in summary
    assert "best fraction of the read ceiling per loss" in summary
    env = json.loads((out / "environment.json").read_text())
    assert env["skipped"]["tensorflow"] == "hidden by SEGBENCH_HIDE_BACKENDS"
    assert env["packages"]["numpy"] == np.__version__ and "git_commit" in env and env["verdict"]["pass"]
    if env["packages"]["pyarrow"]:
        assert (out / "results.parquet").is_file()

    cells = pd.read_csv(out / "results.csv")
    assert set(cells["status"]) == {"ok"} and "tensorflow" not in set(cells["backend"])
    assert {"numpy", *env["backends"]} == set(cells["backend"])
    assert set(cells["pass"]) == {"forward", "forward+backward"} and len(set(cells["loss"])) == 3
    # Every value against the float64 oracle, recomputed here from the same inputs.
    inputs = gpu_check.make_inputs(gpu_check.Shape(2, 16, 24, 4))
    tol = tolerance("float32", terms=2 * 16 * 24)
    for loss, values in cells.groupby("loss")["loss_value"]:
        expected = oracle.loss_value(loss, inputs.y_true, inputs.y_pred)
        np.testing.assert_allclose(values, expected, rtol=tol["rtol"], atol=tol["atol"])
    backward = cells[cells["pass"] == "forward+backward"]
    assert backward["grad_ok"].all() and cells["value_ok"].all()
    assert (cells["roofline_fraction"] > 0).all() and (cells["ceiling_gb_per_s"] > 0).all()


@pytest.mark.skipif(gpu_check.gpu_visible() is None, reason="this machine shows a GPU")
def test_gpu_asked_on_a_machine_without_one_fails_in_one_line(tmp_path):
    done = run_script("--device", "gpu", "--out", str(tmp_path / "x"), timeout=120)
    assert done.returncode == gpu_check.FAILED
    assert done.stderr.strip().splitlines() == [
        "gpu-check: FAIL: --device gpu: no GPU is visible on this machine (no /dev/nvidia*, no /dev/kfd, no nvidia-smi)"
    ]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_backend_that_sees_no_gpu_is_reported_not_run(backend, tmp_path):
    pytest.importorskip(backend)
    if gpu_check.gpu_visible() is None:
        pytest.skip("this machine shows a GPU")
    result = gpu_check.run_worker(backend, "gpu", (), tmp_path, time.time() + 60)
    assert result["status"] == "no_device" and result["rows"] == []
    assert "GPU" in result["reason"] or "cuda" in result["reason"]


def test_wheels_from_a_folder_without_any_fail_in_one_line(tmp_path):
    done = run_script("--device", "cpu", "--wheels", str(tmp_path), "--out", str(tmp_path / "x"), timeout=120)
    assert done.returncode == gpu_check.FAILED
    assert done.stderr.strip() == f"gpu-check: FAIL: --wheels {tmp_path}: no .whl files there"


def test_a_spent_time_budget_leaves_cells_not_run_and_says_so(tmp_path):
    out = tmp_path / "check"
    done = run_script(
        "--device", "cpu", "--backends", "numpy", "--shapes", "1x8x8", "--time-budget", "0", "--out", str(out)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cells = pd.read_csv(out / "results.csv")
    assert set(cells["status"]) == {"not run"} and len(cells) == 6
    summary = (out / "summary.txt").read_text()
    assert "INCOMPLETE: 6 cells not run" in summary and "PASS, INCOMPLETE" in summary


def test_bad_backend_names_the_choices():
    done = run_script("--device", "cpu", "--backends", "jax,mxnet", timeout=120)
    assert done.returncode == gpu_check.BAD_USAGE
    assert done.stderr.strip() == "gpu-check: --backends: unknown mxnet; choices: numpy, tensorflow, jax, torch"


def test_hidden_backends_look_uninstalled():
    """As if not installed: find_spec finds nothing (torch._dynamo probes TensorFlow that way), import fails."""
    code = (
        "import importlib.util, sys\n"
        "from segbench import gpu_check\n"
        "gpu_check.install_blocker()\n"
        "assert importlib.util.find_spec('tensorflow') is None and importlib.util.find_spec('numpy') is not None\n"
        "try:\n    import tensorflow.python\nexcept ModuleNotFoundError as e:\n    print(e)\n"
        "assert 'tensorflow' not in sys.modules"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), gpu_check.HIDE_VARIABLE: "tensorflow"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "No module named 'tensorflow'"


@pytest.mark.parametrize(
    ("name", "card", "gb_per_s"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 3350),
        ("NVIDIA H100 PCIe", "H100 PCIe", 2000),
        ("NVIDIA H200", "H200 (SXM/NVL)", 4800),
        ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM", 2039),
        ("NVIDIA A100-SXM4-40GB", "A100 40GB", 1555),
        ("NVIDIA L40S", "L40S", 864),
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090", 1008),
        ("NVIDIA L4", "L4", 300),
    ],
)
def test_published_bandwidth_of_known_cards(name, card, gb_per_s):
    assert gpu_check.published_bandwidth(name) == (card, gb_per_s)


def test_unknown_card_has_no_published_bandwidth():
    assert gpu_check.published_bandwidth("Imaginary Accelerator 9000") is None
    assert gpu_check.published_bandwidth(None) is None
    assert gpu_check.published_bandwidth("NVIDIA GH200 480GB") is None  # two memories under one name


def test_shapes_parse_and_bad_ones_name_the_format():
    assert gpu_check.parse_shapes("16x1024x1024, 2x8x8x9", 4) == (
        gpu_check.Shape(16, 1024, 1024, 4),
        gpu_check.Shape(2, 8, 8, 9),
    )
    with pytest.raises(ValueError, match="BATCHxHEIGHTxWIDTH"):
        gpu_check.parse_shapes("16x1024", 4)


def test_numpy_fallback_inputs_are_valid_and_have_a_missing_annotation():
    from segbench.losses.validation import validate_inputs

    inputs = gpu_check._numpy_inputs(gpu_check.Shape(3, 20, 36, 4), missing=1, seed=0)
    validate_inputs(inputs.y_true, inputs.y_pred)
    value = oracle.loss_value("missing_annotation_crossentropy", inputs.y_true, inputs.y_pred)
    assert value < oracle.loss_value("categorical_crossentropy", inputs.y_true, inputs.y_pred)


# Verdicts, from made-up worker results


def _args(device="gpu"):
    import argparse

    return argparse.Namespace(device=device, shape_list=(gpu_check.Shape(16, 1024, 1024, 4),), time_budget=330.0)


def _worker(backend="torch", status="ok", rows=(), reads=(), reason=None):
    info = {"device_name": "NVIDIA H100 80GB HBM3", "device_kind": "GPU", "version": "x"}
    return {"backend": backend, "status": status, "reason": reason, "rows": list(rows), "reads": list(reads)} | {
        "info": info,
        "seconds": 1.0,
    }


def _row(median_s, **extra):
    row = {"backend": "torch", "mode": "compile", "loss": "categorical_crossentropy", "pass": "forward"}
    row |= {"batch": 16, "height": 1024, "width": 1024, "classes": 4, "dtype": "float32", "device": "gpu"}
    moved = 2 * 16 * 1024 * 1024 * 4 * 4
    row |= {"status": "ok", "median_s": median_s, "compile_s": 2.0, "bytes_moved": moved}
    row |= {"gb_per_s": moved / median_s / 1e9, "value_ok": True, "grad_ok": None, "loss_value": 0.1}
    row |= {"oracle_value": 0.1, "error": None}
    return row | extra


def _read(gb_per_s):
    return {"backend": "torch", "batch": 16, "height": 1024, "width": 1024, "classes": 4, "method": "torch sum"} | {
        "status": "ok",
        "gb_per_s": gb_per_s,
    }


def _verdict(results, device="gpu"):
    cells, reads = gpu_check.assemble(results)
    card = gpu_check.published_bandwidth("NVIDIA H100 80GB HBM3")
    failures = gpu_check.verdict(_args(device), results, cells, reads, card)
    text = gpu_check.summary_text(_args(device), {"created_at": "now"}, results, cells, reads, card, failures, 1.0)
    return failures, text


def test_a_good_run_passes_and_its_summary_says_what_was_asked():
    moved = 2 * 16 * 1024 * 1024 * 4 * 4
    rows = [_row(moved / 2500e9), _row(moved / 500e9, mode="eager", compile_s=0.1)]
    failures, text = _verdict([_worker(rows=rows, reads=[_read(3000.0)])])
    assert failures == []
    assert "published bandwidth of the H100 SXM: 3350 GB/s; the fastest read reached 90 % of it" in text
    assert "forward 83 % (torch compile" in text
    assert "torch compile: CE fwd 5.0x" in text
    assert "torch compile: median 2.00 s" in text
    assert text.rstrip().endswith("PASS: every cell ran on the asked-for device and agreed with the oracle")


def test_a_fraction_above_the_ceiling_fails_on_the_gpu_and_is_a_note_on_the_cpu():
    moved = 2 * 16 * 1024 * 1024 * 4 * 4
    results = [_worker(rows=[_row(moved / 2000e9)], reads=[_read(1000.0)])]
    failures, _ = _verdict(results)
    assert len(failures) == 1 and "reads at 200 % of the read ceiling" in failures[0]
    assert "the ceiling is wrong" in failures[0]
    cpu_failures, cpu_text = _verdict(results, device="cpu")
    assert cpu_failures == [] and "cells above 105 % of the read ceiling" in cpu_text


def test_a_read_faster_than_the_card_can_fails():
    moved = 2 * 16 * 1024 * 1024 * 4 * 4
    failures, _ = _verdict([_worker(rows=[_row(moved / 1000e9)], reads=[_read(9000.0)])])
    assert any("above the H100 SXM's published 3350 GB/s" in f for f in failures)


def test_errors_wrong_devices_and_missing_gpus_fail():
    moved = 2 * 16 * 1024 * 1024 * 4 * 4
    rows = [
        _row(moved / 1000e9, status="error", error="RuntimeError: CUDA error: an illegal memory access"),
        _row(moved / 1000e9, mode="eager", status="wrong_device", error="torch: the result is on cpu, not cuda:0"),
        _row(moved / 1000e9, loss="marginal_crossentropy", value_ok=False, loss_value=0.5),
    ]
    results = [
        _worker(rows=rows, reads=[_read(3000.0)]),
        _worker("jax", "no_device", reason="jax sees no GPU (its devices: cpu; a CPU-only jaxlib?)"),
        _worker("tensorflow", "skipped", reason="not installed (tensorflow cannot be imported)"),
    ]
    failures, text = _verdict(results)
    assert failures[0] == "--device gpu: jax sees no GPU (its devices: cpu; a CPU-only jaxlib?)"
    assert any(f.startswith("device not used: torch: the result is on cpu") for f in failures)
    assert any("CUDA error: an illegal memory access" in f for f in failures)
    assert any("is off the float64 oracle" in f for f in failures)
    assert "skipped tensorflow: not installed" in text and "FAIL: --device gpu: jax sees no GPU" in text


def test_no_backend_at_all_fails():
    results = [_worker("torch", "skipped", reason="not installed (torch cannot be imported)")]
    failures, _ = _verdict(results)
    assert failures == [
        "--device gpu: no backend that can use a GPU is installed (torch: not installed (torch cannot be imported))"
    ]
