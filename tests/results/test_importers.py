"""asv and pytest-benchmark output into the shared schema."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segbench import results
from segbench.results.importers import from_asv, from_pytest_benchmark
from segbench.results.storage import SCHEMA

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
    root = Path(__file__).resolve().parents[2]
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


def pytest_benchmark_output(times: list[float], *, started: str, mode: str = "xla", machine: dict | None = None):
    """pytest-benchmark's JSON of one benchmark whose rounds took ``times``."""
    return {
        "machine_info": machine or {"node": "box", "python_version": "3.11.7", "cpu": {"brand_raw": "Test CPU"}},
        "commit_info": {"id": "abc123", "dirty": False},
        "datetime": started,
        "benchmarks": [
            {
                "name": f"test_loss[{mode}]",
                "fullname": f"tests/bench/test_bench_losses.py::test_loss[{mode}]",
                "extra_info": {
                    "case": {**CASE, "mode": mode},
                    "segbench": {"load_avg_start": "3.5 3.0 2.0", "load_avg_end": "4.5 3.1 2.0", "run_id": "x"},
                },
                "stats": {
                    "median": sorted(times)[len(times) // 2],
                    "rounds": len(times),
                    "iterations": 1,
                    "data": times,
                },
            }
        ],
    }


def test_compare_takes_pytest_benchmark_output_directly(tmp_path, capsys):
    from segbench.cli.parser import main

    storage = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    storage.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = list(1e-3 * np.exp(0.01 * rng.standard_normal(20)))
    same = list(1e-3 * np.exp(0.01 * rng.standard_normal(20)))
    slow = [2 * t for t in same]
    (storage / "0001_base.json").write_text(json.dumps(pytest_benchmark_output(base, started="2026-11-30T01:00:00")))
    (storage / "0002_same.json").write_text(json.dumps(pytest_benchmark_output(same, started="2026-11-30T02:00:00")))
    (tmp_path / "slow.json").write_text(json.dumps(pytest_benchmark_output(slow, started="2026-11-30T03:00:00")))
    # the folder alone: its last two saved runs
    assert main(["compare", str(tmp_path / ".benchmarks")]) == 0
    captured = capsys.readouterr()
    assert "0001_base.json" in captured.err and "0002_same.json" in captured.err
    assert captured.out.startswith("1 cells compared: 0 slower, 0 faster")
    # a folder (its latest run) against a file; a file against a file; PATH@ID picks a saved run
    assert main(["compare", str(tmp_path / ".benchmarks"), str(tmp_path / "slow.json")]) == 1
    assert "SLOWER" in capsys.readouterr().out
    assert main(["compare", f"{tmp_path / '.benchmarks'}@0001", str(storage / "0002_same.json")]) == 0
    assert "0001_base.json" in capsys.readouterr().err
    # the load recorded per benchmark (extra_info, not machine_info) reaches the rows
    frame = from_pytest_benchmark(storage / "0001_base.json")
    assert frame["load_avg_start"].iloc[0] == "3.5 3.0 2.0" and frame["run_id"].iloc[0] == "pytest-benchmark-0001_base"


def test_compare_takes_asv_results_directly(tmp_path, capsys):
    from segbench.cli.parser import main

    machine = tmp_path / "box"
    machine.mkdir()
    (machine / "machine.json").write_text(json.dumps({"machine": "box", "cpu": "Test CPU", "version": 1}))
    names = ["loss", "formulation", "mode", "pass", "batch", "resolution", "classes", "dtype"]
    params = [["'marginal_crossentropy'"], ["'reference'"], ["'numpy'"], ["'forward'"], ["2"], ["'32x48'"], ["4"]]
    params.append(["'float32'"])
    (tmp_path / "benchmarks.json").write_text(
        json.dumps({"losses.TimeLoss.time_loss": {"type": "time", "unit": "seconds", "param_names": names}})
    )
    columns = ["result", "params", "version", "started_at", "duration", "samples"]
    rng = np.random.default_rng(1)
    for commit, level, started in (
        ("1111111111aaaaaa", 1e-4, 1795411200000),
        ("2222222222bbbbbb", 2e-4, 1795414800000),
    ):
        samples = list(level * np.exp(0.01 * rng.standard_normal(10)))
        result = {
            "commit_hash": commit,
            "env_name": "virtualenv-py3.11",
            "date": started,
            "params": {"machine": "box", "python": "3.11", "cpu": "Test CPU"},
            "python": "3.11",
            "requirements": {},
            "env_vars": {},
            "result_columns": columns,
            "results": {
                "losses.TimeLoss.time_loss": [[float(np.median(samples))], params, "v1", started, 1.0, [samples]]
            },
            "durations": {},
            "version": 2,
        }
        (machine / f"{commit}-virtualenv-py3.11.json").write_text(json.dumps(result))
    assert main(["compare", str(tmp_path)]) == 1  # the two commits, oldest first: 2x slower
    captured = capsys.readouterr()
    assert "OLD = " in captured.err and "(asv, commit 1111111111, virtualenv-py3.11)" in captured.err
    assert captured.out.startswith("SLOWER (exit 1): 1 cells compared: 1 slower")
    assert main(["compare", f"{tmp_path}@2222222222", f"{tmp_path}@1111111111"]) == 0  # faster is no failure


def test_pytest_benchmark_machine_info_holds_only_the_machine(monkeypatch):
    """What changes from run to run (run id, start time, load, the CPU's clock) is kept out of
    machine_info, so that pytest-benchmark's compare does not warn "machine_info is different"."""
    import conftest

    from segbench.measurement import environment

    class Config:
        _segbench_environment = environment.collect(uses_tensorflow=False, profile="quick", source="pytest-benchmark")

    machine_info = {
        "node": "box",
        "cpu": {"brand_raw": "Test CPU", "hz_actual": [2.1e9, 0], "hz_actual_friendly": "2.1 GHz"},
    }
    conftest.pytest_benchmark_update_machine_info(Config(), machine_info)
    assert set(machine_info["segbench"]) <= set(environment.IDENTITY)
    assert "cpu_model" in machine_info["segbench"]
    for varying in ("run_id", "started_at", "load_avg_start", "git_commit", "environment"):
        assert varying not in machine_info["segbench"]
    assert "hz_actual" not in machine_info["cpu"] and "hz_actual_friendly" not in machine_info["cpu"]


GATED_TEST = """
import time

def test_loss(benchmark):
    benchmark.extra_info["case"] = {CASE!r}
    benchmark.pedantic(time.sleep, args=(0.002,), rounds=15, iterations=1)
"""


@pytest.mark.slow
def test_the_pytest_plugin_fails_a_session_only_when_segbench_says_slower(tmp_path):
    """pytest --segbench-compare=BASELINE: an unchanged benchmark passes, one made slower fails."""
    (tmp_path / "test_gated.py").write_text(GATED_TEST.replace("{CASE!r}", repr(CASE)))
    (tmp_path / "conftest.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    from importlib.metadata import entry_points

    installed = any(ep.value == "segbench.verdicts.pytest_plugin" for ep in entry_points(group="pytest11"))
    load = [] if installed else ["-p", "segbench.verdicts.pytest_plugin"]  # the pytest11 entry point, once installed

    def pytest_run(*args):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *load,
                   "--benchmark-only", "--benchmark-save-data", *args, "test_gated.py"]  # fmt: skip
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    base = tmp_path / "base.json"
    assert pytest_run(f"--benchmark-json={base}").returncode == 0
    same = pytest_run(f"--segbench-compare={base}")
    assert same.returncode == 0, same.stdout[-3000:]
    assert "segbench verdicts" in same.stdout and "0 slower" in same.stdout
    faster = json.loads(base.read_text())
    stats = faster["benchmarks"][0]["stats"]
    stats["data"] = [t / 3 for t in stats["data"]]
    stats["median"] /= 3
    (tmp_path / "faster.json").write_text(json.dumps(faster))
    slower = pytest_run(f"--segbench-compare={tmp_path / 'faster.json'}")
    assert slower.returncode == 1, slower.stdout[-3000:]
    assert "SLOWER (exit 1)" in slower.stdout
