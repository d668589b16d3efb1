"""asv and pytest-benchmark output into the shared schema."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from segbench import results
from segbench.importers import from_asv, from_pytest_benchmark
from segbench.results import SCHEMA

CASE = {
    "loss": "marginal_crossentropy",
    "formulation": "reference",
    "mode": "xla",
    "pass": "forward",
    "batch": 2,
    "height": 32,
    "width": 48,
    "classes": 4,
    "dtype": "float32",
}


def test_pytest_benchmark_json(tmp_path):
    data = {
        "machine_info": {"node": "box", "python_version": "3.11.7", "cpu": {"brand_raw": "Test CPU"}},
        "commit_info": {"id": "abc123", "dirty": False},
        "datetime": "2026-11-23T06:00:00",
        "benchmarks": [
            {
                "name": "test_loss[xla]",
                "fullname": "tests/bench/test_bench_losses.py::test_loss[xla]",
                "extra_info": {"case": CASE, "loss_value": 0.25},
                "stats": {"median": 1e-3, "iqr": 1e-4, "mean": 1.1e-3, "min": 9e-4, "rounds": 5, "iterations": 10},
            }
        ],
    }
    path = tmp_path / "0001_run.json"
    path.write_text(json.dumps(data))
    frame = from_pytest_benchmark(path)
    assert list(frame.columns) == list(SCHEMA)
    row = frame.iloc[0]
    assert {k: row[k] for k in CASE} == CASE
    assert (row["source"], row["median_s"], row["iqr_s"], row["rounds"], row["calls_per_round"]) == (
        "pytest-benchmark",
        1e-3,
        1e-4,
        5,
        10,
    )
    assert (row["git_commit"], row["host"], row["device_name"], row["loss_value"]) == (
        "abc123",
        "box",
        "Test CPU",
        0.25,
    )
    assert len(from_pytest_benchmark(tmp_path)) == 1  # a directory of saved runs
    with pytest.raises(FileNotFoundError):
        from_pytest_benchmark(tmp_path / "none.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not pytest-benchmark output"):
        from_pytest_benchmark(tmp_path / "other.json")


def test_asv_results_directory(tmp_path):
    """A results directory as asv 0.6 writes it (machine.json, benchmarks.json, one result file)."""
    machine = tmp_path / "box"
    machine.mkdir()
    (machine / "machine.json").write_text(json.dumps({"machine": "box", "cpu": "Test CPU", "version": 1}))
    names = ["loss", "formulation", "mode", "pass", "batch", "resolution", "classes", "dtype"]
    params = [
        ["'marginal_crossentropy'"],
        ["'reference'"],
        ["'numpy'", "'xla'"],
        ["'forward'"],
        ["2"],
        ["'32x48'"],
        ["4"],
        ["'float32'"],
    ]
    (tmp_path / "benchmarks.json").write_text(
        json.dumps(
            {
                "losses.TimeLoss.time_loss": {"type": "time", "unit": "seconds", "param_names": names},
                "tracking.TrackLossValue.track_loss_value": {"type": "track", "unit": "loss", "param_names": names},
                "version": 2,
            }
        )
    )
    columns = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
               "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]  # fmt: skip
    result = {
        "commit_hash": "0123456789abcdef",
        "env_name": "virtualenv-py3.11",
        "date": 1795411200000,
        "params": {"machine": "box", "python": "3.11", "req-tensorflow": "2.21.0", "cpu": "Test CPU"},
        "python": "3.11",
        "requirements": {},
        "env_vars": {},
        "result_columns": columns,
        "results": {
            "losses.TimeLoss.time_loss": [
                [1e-4, float("nan")],
                params,
                "v1",
                1795411200000,
                1.0,
                [9e-5, None],
                [1.1e-4, None],
                [9.5e-5, None],
                [1.05e-4, None],
                [10, None],
                [3, None],
                [[9e-5, 1e-4, 1.1e-4], None],
            ],
            "tracking.TrackLossValue.track_loss_value": [[0.14, None], params, "v1", 1795411200000, 1.0],
        },
        "durations": {},
        "version": 2,
    }
    (machine / "0123456789abcdef-virtualenv-py3.11.json").write_text(json.dumps(result).replace("NaN", "NaN"))
    frame = from_asv(tmp_path)
    assert list(frame.columns) == list(SCHEMA)
    times = frame[frame["benchmark"] == "losses.TimeLoss.time_loss"].set_index("mode")
    assert times.loc["numpy", "status"] == "ok" and times.loc["numpy", "median_s"] == 1e-4
    assert times.loc["numpy", "iqr_s"] == pytest.approx(1e-5)
    assert json.loads(times.loc["numpy", "raw_times_s"]) == [9e-5, 1e-4, 1.1e-4]
    assert (times.loc["numpy", "height"], times.loc["numpy", "width"]) == (32, 48)
    assert times.loc["xla", "status"] == "skipped"  # NaN: NotImplementedError in setup
    tracked = frame[frame["benchmark"] == "tracking.TrackLossValue.track_loss_value"].set_index("mode")
    assert tracked.loc["numpy", "loss_value"] == 0.14
    assert tracked.loc["xla", "status"] == "failed"
    assert set(frame["git_commit"]) == {"0123456789abcdef"}
    assert set(frame["tensorflow_version"]) == {"2.21.0"}


@pytest.mark.slow
def test_pytest_benchmark_only_saves_json_in_the_shared_schema(tmp_path):
    out = tmp_path / "bench.json"
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
               f"--benchmark-json={out}", "-k", "categorical_crossentropy", "tests/bench"]  # fmt: skip
    done = subprocess.run(command, cwd=root, env={**os.environ, "SEGBENCH_PROFILE": "tiny"},
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    frame = from_pytest_benchmark(out)
    assert list(frame.columns) == list(SCHEMA)
    combined = results.conform(pd.concat([frame, results.empty()], ignore_index=True))
    assert list(combined.columns) == list(SCHEMA) and len(combined) == len(frame)
    assert (frame["median_s"] > 0).all() and frame["loss"].eq("categorical_crossentropy").all()
    assert set(frame["mode"]) == {"numpy", "eager", "function", "xla"}
    # the environment columns are filled as segbench run fills them (tests/conftest.py's hook)
    for column in ("tensorflow_version", "numpy_version", "segbench_version", "cpu_model", "cpu_count",
                   "blas", "blas_threads", "onednn", "tensorflow_build", "load_avg_start", "environment",
                   "raw_times_s", "compile_s", "device", "device_name"):  # fmt: skip
        assert frame[column].notna().all(), column
    assert frame["profile"].eq("tiny").all()
    assert (frame["compile_s"] > 0).all() and (frame["cpu_count"] >= 1).all()
