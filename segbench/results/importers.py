"""asv and pytest-benchmark results as DataFrames in segbench's results schema.

Both tools measure cells of the same sweep (``segbench.measurement.sweep``), so their rows carry the same key
columns as ``segbench run``'s and one notebook reads all three with ``pd.concat``.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import itertools
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segbench.results import storage as results
from segbench.results.storage import SCHEMA, SCHEMA_VERSION, conform, empty

# How a sweep dimension is named in an asv param / a case key, and its column in the schema.
_INT_COLUMNS = ("batch", "classes")


def _key_from_params(names: Iterable[str], values: Iterable[Any]) -> dict[str, Any]:
    """Schema key columns from benchmark params (asv's repr strings or plain values)."""
    key: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if isinstance(value, str):
            with contextlib.suppress(ValueError, SyntaxError):  # asv stores params as repr strings
                value = ast.literal_eval(value)
        if name == "resolution":
            height, _, width = str(value).partition("x")
            key["height"], key["width"] = int(height), int(width or height)
        elif name in _INT_COLUMNS:
            key[name] = int(value)
        elif name in ("pass", "pass_"):
            key["pass"] = value
        else:
            key[name] = value
    return key


def _iso(timestamp_ms: float | None) -> str | None:
    if timestamp_ms is None:
        return None
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _status(value: Any) -> str:
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"  # asv's value for a benchmark whose setup raised NotImplementedError
    return "ok"


def _asv_measures(kind: str, name: str, value: Any, stats: dict | None, samples: list | None) -> dict[str, Any]:
    """Schema columns for one asv value, by benchmark type (time, peakmem, track)."""
    if _status(value) != "ok":
        return {}
    if name.endswith("timeraw_compile"):  # a time, but of the first call: the schema's compile_s
        return {"compile_s": value}
    if kind == "time":
        row: dict[str, Any] = {"median_s": value}
        if stats:
            if stats.get("q_25") is not None and stats.get("q_75") is not None:
                row["iqr_s"] = stats["q_75"] - stats["q_25"]
            row["rounds"] = stats.get("repeat")
            row["calls_per_round"] = stats.get("number")
        if samples:
            row.update(raw_times_s=json.dumps(samples), mean_s=float(np.mean(samples)), min_s=float(np.min(samples)))
        return row
    if kind == "peakmem":
        return {"peak_mem_bytes": int(value), "mem_method": "asv_peakmem (process max RSS)"}
    if name.endswith("track_loss_value"):
        return {"loss_value": value}
    if name.endswith("track_compile_time"):  # results of earlier segbench versions
        return {"compile_s": value}
    return {}


def from_asv(
    results_dir: str | os.PathLike[str], benchmarks_json: str | os.PathLike[str] | None = None
) -> pd.DataFrame:
    """Every result under asv's results directory (all machines and commits), one row per param.

    ``benchmarks_json`` (default: ``results_dir/benchmarks.json``, which asv writes) gives each
    benchmark's type, unit and param names.
    """
    from asv.results import iter_results

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results_dir {results_dir} is not a directory of asv results")
    meta_path = Path(benchmarks_json) if benchmarks_json else results_dir / "benchmarks.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no asv benchmarks.json at {meta_path}: pass benchmarks_json=")
    benchmarks = {k: v for k, v in json.loads(meta_path.read_text()).items() if isinstance(v, dict)}
    rows = []
    for result in iter_results(str(results_dir)):
        requirements = result.params
        run = {
            "schema_version": SCHEMA_VERSION,
            "source": "asv",
            "run_id": f"asv-{result.commit_hash[:8]}-{result.env_name}",
            "git_commit": result.commit_hash,
            "host": requirements.get("machine"),
            "python_version": requirements.get("python"),
            "numpy_version": requirements.get("req-numpy") or None,
            "tensorflow_version": requirements.get("req-tensorflow") or None,
            "device_name": requirements.get("cpu"),
            # what asv's machine file knows of the environment; BLAS, oneDNN and load it does not
            # record, so those columns stay missing (NA), never zero
            "cpu_model": requirements.get("cpu"),
            "cpu_count": int(requirements["num_cpu"]) if str(requirements.get("num_cpu") or "").isdigit() else None,
        }
        for name in result.get_all_result_keys():
            info = benchmarks.get(name)
            if info is None:
                continue  # a benchmark that no longer exists
            params = result.get_result_params(name)
            values = result.get_result_value(name, params)
            stats = result.get_result_stats(name, params)
            samples = result.get_result_samples(name, params)
            combos = list(itertools.product(*params)) if params else [()]
            if not params:
                values, stats, samples = [values], [stats], [samples]
            for combo, value, stat, sample in zip(combos, values, stats, samples, strict=True):
                rows.append(
                    {
                        **run,
                        **_key_from_params(info.get("param_names", []), combo),
                        "benchmark": name,
                        "status": _status(value),
                        "value": value if _status(value) == "ok" else None,
                        "unit": info.get("unit"),
                        "started_at": _iso(result.started_at.get(name)),
                        **_asv_measures(info.get("type", ""), name, value, stat, sample),
                    }
                )
    return conform(pd.DataFrame(rows)) if rows else empty()


def _pytest_benchmark_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.json"))
        if not files:
            raise FileNotFoundError(f"no pytest-benchmark JSON files under {path}")
        return files
    if not path.exists():
        raise FileNotFoundError(f"no pytest-benchmark JSON at {path}")
    return [path]


# What tests/bench/test_bench_losses.py puts in each benchmark's extra_info, by schema column.
EXTRA_INFO_COLUMNS = ("tensorflow_version", "numpy_version", "device", "device_name", "profile", "compile_s")


def from_pytest_benchmark(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A pytest-benchmark JSON file (``--benchmark-json``/``--benchmark-autosave``), or a directory
    of them (e.g. ``.benchmarks``), one row per benchmark; the case comes from ``extra_info``."""
    rows = []
    for file in _pytest_benchmark_files(Path(path)):
        data = json.loads(file.read_text())
        if "benchmarks" not in data:
            raise ValueError(f"{file} is not pytest-benchmark output (no 'benchmarks' list)")
        rows += pytest_benchmark_rows(data, file.stem)
    return conform(pd.DataFrame(rows)) if rows else empty()


def pytest_benchmark_rows(data: dict, name: str) -> list[dict[str, Any]]:
    """The schema's rows of one pytest-benchmark output (its JSON, as a dict); ``name`` makes the
    run id (the saved file's name)."""
    rows = []
    machine, commit = data.get("machine_info", {}), data.get("commit_info", {})
    run = {
        # segbench's environment, recorded by tests/conftest.py's machine-info hook (where the
        # run had it), then what pytest-benchmark itself knows
        **{k: v for k, v in (machine.get("segbench") or {}).items() if k in SCHEMA and k != "schema_version"},
        "schema_version": SCHEMA_VERSION,
        "source": "pytest-benchmark",
        "run_id": f"pytest-benchmark-{name}",
        "started_at": data.get("datetime"),
        "host": machine.get("node"),
        "python_version": machine.get("python_version"),
        "git_commit": commit.get("id"),
        "git_dirty": commit.get("dirty"),
    }
    run.setdefault("device_name", (machine.get("cpu") or {}).get("brand_raw"))
    run["cpu_model"] = run.get("cpu_model") or (machine.get("cpu") or {}).get("brand_raw")
    run["cpu_count"] = run.get("cpu_count") or (machine.get("cpu") or {}).get("count")
    for bench in data["benchmarks"]:
        stats, extra = bench.get("stats", {}), bench.get("extra_info", {})
        case = extra.get("case", {})
        raw = stats.get("data")
        # what tests/conftest.py keeps out of machine_info, per benchmark: load, versions, run id
        per_benchmark = {
            k: v
            for k, v in (extra.get("segbench") or {}).items()
            if k in SCHEMA and k not in ("schema_version", "source", "run_id") and v is not None
        }
        rows.append(
            {
                **run,
                **per_benchmark,
                **_key_from_params(case.keys(), case.values()),
                **{k: extra[k] for k in EXTRA_INFO_COLUMNS if extra.get(k) is not None},
                "benchmark": bench.get("fullname") or bench.get("name"),
                "status": "ok",
                "median_s": stats.get("median"),
                "iqr_s": stats.get("iqr"),
                "mean_s": stats.get("mean"),
                "min_s": stats.get("min"),
                "rounds": stats.get("rounds"),
                "calls_per_round": stats.get("iterations"),
                "raw_times_s": json.dumps(raw) if raw else None,
                "loss_value": extra.get("loss_value"),
                "value": stats.get("median"),
                "unit": "seconds",
            }
        )
    return rows


def is_pytest_benchmark_json(path: Path) -> bool:
    """A JSON file that pytest-benchmark wrote (a "benchmarks" list and its machine_info)."""
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "benchmarks" in data and "machine_info" in data


def is_asv_results(path: Path) -> bool:
    """asv's results directory: its benchmarks.json beside one directory per machine."""
    return path.is_dir() and (path / "benchmarks.json").is_file() and any(path.glob("*/machine.json"))


def runs_in(path: str | os.PathLike[str]) -> list[tuple[str, pd.DataFrame]]:
    """The runs a path holds, oldest first, each named: a segbench run (directory or table), a
    pytest-benchmark JSON file, a pytest-benchmark storage folder (``.benchmarks``: one run per
    saved file), or asv's results directory (one run per commit and environment)."""
    path = Path(path)
    if is_pytest_benchmark_json(path):
        return [(str(path), from_pytest_benchmark(path))]
    if is_asv_results(path):
        frame = from_asv(path)
        if frame.empty:
            raise ValueError(f"{path}: asv's results directory holds no results")
        runs = [(run, part) for run, part in frame.groupby("run_id", sort=False)]
        runs.sort(key=lambda item: str(item[1]["started_at"].dropna().min()))
        return [
            (f"{path} (asv, commit {part['git_commit'].iloc[0][:10]}, {run.split('-', 2)[-1]})", part)
            for run, part in runs
        ]
    if path.is_dir() and not any((path / name).exists() for name in (results.RUN_META, results.JOURNAL)):
        files = [f for f in sorted(path.rglob("*.json")) if is_pytest_benchmark_json(f)]
        if files:
            dated = sorted(files, key=lambda f: (json.loads(f.read_text()).get("datetime") or "", f.name))
            return [(str(f), from_pytest_benchmark(f)) for f in dated]
    return [(str(path), results.load(path))]


def pick_runs(paths: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """OLD and NEW from what ``segbench compare`` was given: two paths (of a folder that holds
    several runs, its latest; the same folder twice: its last two), or one folder of several
    runs (a ``.benchmarks`` folder, asv's results): its last two. A path may end in ``@ID`` to
    pick the run whose name contains ID (a saved run's number or name, an asv commit)."""
    chosen = []
    held = {}
    for path in paths:
        base, _, wanted = path.rpartition("@") if "@" in path and not Path(path).exists() else (path, "", "")
        if base not in held:
            held[base] = runs_in(base)
        runs = held[base]
        if wanted:
            matching = [run for run in runs if wanted in run[0]]
            if len(matching) != 1:
                names = ", ".join(name for name, _ in runs)
                raise ValueError(f"{path}: {len(matching)} runs match {wanted!r} (of {names})")
            chosen.append(matching[0])
        else:
            chosen.append(runs)
    if len(paths) == 1:
        runs = chosen[0] if isinstance(chosen[0], list) else [chosen[0]]
        return runs[-2:]
    picked = []
    for i, item in enumerate(chosen):
        if not isinstance(item, list):
            picked.append(item)
            continue
        same_before = [j for j in range(i) if paths[j] == paths[i]]
        if (same_before or paths.count(paths[i]) > 1) and len(item) >= 2:
            picked.append(item[-2] if not same_before else item[-1])
        else:
            picked.append(item[-1])
    return picked
