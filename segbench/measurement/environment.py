"""What makes a result reproducible: versions, device, threads, environment variables, git commit."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

RELEVANT_VARIABLES = (
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "TF_GPU_ALLOCATOR",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_DETERMINISTIC_OPS",
    "SEGBENCH_PROFILE",
)


def variables() -> str:
    """JSON of the environment variables that change timings, as set for this process ("{}": none
    is set, every library at its default)."""
    return json.dumps({k: os.environ[k] for k in RELEVANT_VARIABLES if k in os.environ}, sort_keys=True)


_PERSISTENT_CACHE_FLAG = re.compile(r"--tf_xla_persistent_cache_\w+(=\S*)?")


def disable_xla_persistent_cache() -> bool:
    """Remove XLA's persistent compilation cache flags from TF_XLA_FLAGS, so compile time is real.

    Must run before TensorFlow is imported (TensorFlow reads the flags once). TensorFlow keeps no
    persistent cache unless --tf_xla_persistent_cache_directory is set; returns True if it was.
    """
    flags = os.environ.get("TF_XLA_FLAGS", "")
    cleaned = _PERSISTENT_CACHE_FLAG.sub("", flags).strip()
    if cleaned != flags.strip():
        if "tensorflow" in sys.modules:
            raise RuntimeError("TF_XLA_FLAGS must be cleaned before TensorFlow is imported")
        os.environ["TF_XLA_FLAGS"] = cleaned
        return True
    return False


def git_state(path: str | os.PathLike[str] | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout holding ``path`` (default: segbench's source), or (None, None)."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, bool(status.strip())


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a short random suffix."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def load_average() -> str | None:
    """The 1, 5 and 15 minute load averages, as "0.52 0.61 0.70" (None where the OS has none)."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except (OSError, AttributeError):
        return None


def cpu() -> dict[str, Any]:
    """The CPU's model (py-cpuinfo, which pytest-benchmark brings) and the logical CPUs usable."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        import cpuinfo

        info = cpuinfo.get_cpu_info()
    except Exception:  # py-cpuinfo missing or unable to read this machine: say what is known
        return {"cpu_model": platform.processor() or None, "cpu_count": count, "cpu_flags": None}
    details = ", ".join(
        f"{key} {info[key]}" for key in ("family", "model", "stepping", "l3_cache_size") if info.get(key) is not None
    )
    model = info.get("brand_raw") or platform.processor() or None
    return {
        "cpu_model": f"{model} ({details})" if model and details else model,
        "cpu_count": count,
        "cpu_flags": codegen_flags(info.get("flags") or ()),
    }


CODEGEN_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512cd",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512ifma",
    "avx512vbmi",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
"""The CPU instruction sets that change the code XLA, oneDNN, Eigen and the BLAS generate or pick."""


def codegen_flags(flags: Any) -> str | None:
    """Of a CPU's flags (py-cpuinfo or /proc/cpuinfo names; avx512_vnni and avx512vnni alike),
    those in CODEGEN_FLAGS, as one space-separated string in that order (None: no flags known)."""
    have = {str(flag).lower().replace("_", "") for flag in flags}
    if not have:
        return None
    return " ".join(flag for flag in CODEGEN_FLAGS if flag.replace("_", "") in have) or "none"


def gpu_driver() -> str | None:
    """The NVIDIA kernel driver's version line (/proc/driver/nvidia/version), or None."""
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    found = re.search(r"\b(\d+\.\d+(?:\.\d+)?)\b", first)
    return found.group(1) if found else first.strip() or None


# -- machine identity: what must agree for two runs' times to be comparable ------------------

IDENTITY: dict[str, str] = {
    "cpu_model": "CPU model",
    "cpu_flags": "CPU flags",
    "cpu_count": "logical CPUs",
    "intra_op_threads": "TF intra-op threads",
    "inter_op_threads": "TF inter-op threads",
    "blas": "BLAS",
    "blas_threads": "BLAS threads",
    "onednn": "oneDNN",
    "tensorflow_version": "TensorFlow",
    "tensorflow_build": "TensorFlow build",
    "numpy_version": "numpy",
    "python_version": "Python",
    "device_name": "device",
    "gpu_driver": "GPU driver",
    "asv_machine": "asv machine",
}
"""The columns of a run that make its times comparable with another run's, and their names for
people: the one definition segbench compare, ab, merge and report check before any verdict. The
git commit, profile and segbench version are what one compares, not the machine, so not here.
``asv_machine`` is derived: the machine key of rows imported from asv (their ``host``)."""


def identity_values(frame: Any) -> dict[str, list[str]]:
    """Per identity column, the distinct values a results table (or its rows) records, as text;
    an empty list where the column is missing or never recorded (an older run): unknown."""
    values: dict[str, list[str]] = {}
    for column in IDENTITY:
        if column == "asv_machine":
            asv = {"host", "source"} <= set(frame.columns)
            series = frame["host"][frame["source"].astype(str) == "asv"] if asv else None
        else:
            series = frame[column] if column in frame.columns else None
        if series is None:
            values[column] = []
            continue
        known = series.dropna().astype(str).map(lambda value, c=column: _comparable(c, value))
        values[column] = sorted(set(known[known.str.strip() != ""]))
    return values


def _comparable(column: str, value: Any) -> str:
    """A recorded value as identity compares it: oneDNN's state without why it is so ("on (this
    build's default)" and "on (TF_ENABLE_ONEDNN_OPTS=1)" run the same kernels)."""
    text = str(value).strip()
    return text.split(" ", 1)[0] if column == "onednn" else text


def identity_differences(runs: dict[str, Any]) -> list[tuple[str, dict[str, list[str]]]]:
    """Where the runs (name -> results table) disagree on their identity: (column, values per run)
    for each identity column with more than one value among the runs that record it. A run that
    did not record a column (unknown) differs from nobody in it; a run whose own rows disagree (a
    merge --across-machines) differs from everyone."""
    per_run = {name: identity_values(frame) for name, frame in runs.items()}
    differences = []
    for column in IDENTITY:
        known = {name: values[column] for name, values in per_run.items() if values[column]}
        if len({value for values in known.values() for value in values}) > 1:
            differences.append((column, known))
    return differences


def identity_unknown(runs: dict[str, Any]) -> list[str]:
    """The identity columns some of the runs did not record (treated as the same, not as different)."""
    per_run = {name: identity_values(frame) for name, frame in runs.items()}
    return [
        column
        for column in IDENTITY
        if any(values[column] for values in per_run.values()) and not all(v[column] for v in per_run.values())
    ]


def describe_differences(differences: list[tuple[str, dict[str, list[str]]]], indent: str = "  ") -> list[str]:
    """One line per differing identity column, as pyperf's metadata check prints them:
    ``CPU model: OLD Intel Xeon ... | NEW AMD EPYC ...``."""
    return [
        f"{indent}{IDENTITY[column]}: " + " | ".join(f"{name} {' + '.join(values)}" for name, values in known.items())
        for column, known in differences
    ]


def differing_columns(old: Any, new: Any) -> list[str]:
    """For one pair of rows (mappings), the identity columns both record and that differ."""
    names = []
    for column in IDENTITY:
        if column == "asv_machine":
            a = old.get("host") if str(old.get("source")) == "asv" else None
            b = new.get("host") if str(new.get("source")) == "asv" else None
        else:
            a, b = old.get(column), new.get(column)
        if _known(a) and _known(b) and _comparable(column, a) != _comparable(column, b):
            names.append(column)
    return names


def _known(value: Any) -> bool:
    if value is None:
        return False
    try:
        import pandas as pd

        if pd.isna(value):
            return False
    except (TypeError, ValueError):
        pass
    return str(value).strip() != ""


def blas() -> dict[str, Any]:
    """The BLAS numpy calls (its fused paths use it) and its thread count, from threadpoolctl."""
    try:
        import numpy  # noqa: F401  (loads the BLAS threadpoolctl then finds)
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"blas": None, "blas_threads": None}
    pools = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    if not pools:
        return {"blas": None, "blas_threads": None}
    names = [f"{p.get('internal_api')} {p.get('version') or ''}".strip() for p in pools]
    return {"blas": ", ".join(names), "blas_threads": max(int(p.get("num_threads") or 0) for p in pools) or None}


def onednn(tf: Any) -> str:
    """Whether TensorFlow's oneDNN (MKL) kernels are on, and why: the variable, or the build's default."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        built = bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # a TensorFlow without the probe: the variable alone decides what is known
        built = None
    variable = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if built is False:
        return "off (not in this build)"
    if variable is not None:
        state = "off" if variable.strip() in ("0", "false", "False") else "on"
        return f"{state} (TF_ENABLE_ONEDNN_OPTS={variable})"
    return "on (this build's default)" if built else "unknown"


def tensorflow_build(tf: Any) -> str:
    """tf.sysconfig.get_build_info() as JSON: CUDA and cuDNN versions a GPU run used, the compiler."""
    try:
        info = dict(tf.sysconfig.get_build_info())
    except Exception:
        return "{}"
    return json.dumps(info, sort_keys=True, default=str)


def collect(*, uses_tensorflow: bool, device: Any = None, profile: str | None = None, source: str) -> dict[str, Any]:
    """The run metadata columns of the results schema."""
    import numpy as np

    from segbench import __version__

    commit, dirty = git_state()
    meta: dict[str, Any] = {
        "source": source,
        "run_id": new_run_id(),
        "profile": profile,
        "started_at": now(),
        "host": socket.gethostname(),
        "git_commit": commit,
        "git_dirty": dirty,
        "segbench_version": __version__,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "tensorflow_version": None,
        "device": f"{device.kind}:{device.index}" if device else None,
        "device_name": device.name if device else None,
        "gpu_driver": gpu_driver() if device is not None and getattr(device, "kind", None) == "GPU" else None,
        "intra_op_threads": None,
        "inter_op_threads": None,
        "environment": variables(),
        **cpu(),
        **blas(),
        "onednn": None,
        "tensorflow_build": None,
        "load_avg_start": load_average(),
    }
    if uses_tensorflow:
        import tensorflow as tf

        meta["tensorflow_version"] = tf.__version__
        meta["onednn"] = onednn(tf)
        meta["tensorflow_build"] = tensorflow_build(tf)
        # 0 means "TensorFlow's choice": record what that is on this machine.
        meta["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
        meta["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count()
    return meta
