"""The results table's schema: every column, its pandas dtype, unit and meaning, in one place.

One row per cell (long format). The schema is versioned: ``SCHEMA_VERSION`` changes whenever a
column is added, removed or changes meaning, and loading refuses tables of a newer version. Tables
from ``segbench run``, asv and pytest-benchmark share it, so they concatenate; the documentation's
schema page is generated from :data:`COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

SCHEMA_VERSION = 5  # 4: cpu_flags, gpu_driver; 5: backend, backend_version (older tables: backend from the mode)

KEY_COLUMNS = ("loss", "formulation", "mode", "pass", "batch", "height", "width", "classes", "dtype")
"""What identifies a cell within a run."""


@dataclass(frozen=True)
class Column:
    """One column of the results table: its pandas dtype, its unit and what it means."""

    dtype: str  # string | Int64 | float64 | boolean (pandas' nullable dtypes: missing is NA)
    meaning: str
    unit: str = ""


def _c(dtype: str, meaning: str, unit: str = "") -> Column:
    return Column(dtype, meaning, unit)


COLUMNS: dict[str, Column] = {
    # run metadata (the same on every row of a run)
    "schema_version": _c("Int64", "the schema version the row was written with"),
    "source": _c("string", "what wrote the row: segbench run, segbench ab, asv or pytest-benchmark"),
    "run_id": _c("string", "the run's identifier (its start time and a random suffix)"),
    "profile": _c("string", "the named sweep the run measured: tiny, quick, default or full"),
    "shard": _c("string", "K/N when the run measured one part of its sweep (segbench run --shard)"),
    "started_at": _c("string", "when the run started", "ISO 8601, UTC"),
    "host": _c("string", "the machine's host name"),
    "git_commit": _c("string", "the commit of the code measured"),
    "git_dirty": _c("boolean", "whether that checkout had uncommitted changes"),
    "segbench_version": _c("string", "segbench's version"),
    "python_version": _c("string", "Python's version"),
    "numpy_version": _c("string", "numpy's version"),
    "tensorflow_version": _c("string", "TensorFlow's version (NA when the run imported none)"),
    "device": _c("string", "where the cell ran: CPU:0, GPU:0 (numpy cells: always the host)"),
    "device_name": _c("string", "the CPU or GPU model"),
    "intra_op_threads": _c("Int64", "TensorFlow's intra-op threads (its choice when 0: recorded as used)"),
    "inter_op_threads": _c("Int64", "TensorFlow's inter-op threads"),
    "environment": _c("string", "JSON of the environment variables that change timings (TF_*, XLA_FLAGS, OMP_*...)"),
    "cpu_model": _c("string", "py-cpuinfo's brand, family, model, stepping and L3 size"),
    "cpu_count": _c("Int64", "logical CPUs this process may run on"),
    "cpu_flags": _c("string", "the instruction sets that change code generation (avx2 avx512f amx_tile...)"),
    "gpu_driver": _c("string", "the NVIDIA driver's version, where the device is a GPU"),
    "blas": _c("string", "the BLAS numpy uses, and its version (threadpoolctl)"),
    "blas_threads": _c("Int64", "the BLAS's threads"),
    "onednn": _c("string", "TensorFlow's oneDNN kernels on or off, and why"),
    "tensorflow_build": _c("string", "JSON of tf.sysconfig.get_build_info() (CUDA, cuDNN versions)"),
    "load_avg_start": _c("string", "the 1, 5 and 15 minute load average when the run started"),
    "load_avg_end": _c("string", "the same when this row's cell finished"),
    # the cell
    "loss": _c("string", "the loss (segbench.LOSSES)"),
    "formulation": _c("string", "how the loss is written: reference, fused, blocked (segbench.FORMULATIONS)"),
    "mode": _c("string", "how it is executed: numpy, eager, function, xla, jax, jax-jit, torch... (segbench.MODES)"),
    "backend": _c("string", "the library that ran the mode: numpy, tensorflow, jax or torch"),
    "backend_version": _c("string", "its version (and Keras' where Keras was imported)"),
    "pass": _c("string", "forward, or forward+backward (the loss and its gradient)"),
    "batch": _c("Int64", "images per call", "images"),
    "height": _c("Int64", "image height", "pixels"),
    "width": _c("Int64", "image width", "pixels"),
    "classes": _c("Int64", "classes C, background included"),
    "dtype": _c("string", "the inputs' dtype (half precision computes in float32)"),
    "visits": _c("Int64", "how many visits' samples the row pools (segbench run measures a cell in several)"),
    "benchmark": _c("string", 'what produced the row: "segbench run", or the asv/pytest-benchmark name'),
    "status": _c("string", "ok, error, oom, killed, timeout, skipped or failed"),
    "error": _c("string", "why a cell did not run: the error's first line, how its worker died, its time limit"),
    # time
    "compile_s": _c("float64", "the first call: trace (+ XLA compile) + first run; the visits' median", "s"),
    "median_s": _c("float64", "the median time per call over every round of every visit", "s"),
    "iqr_s": _c("float64", "the interquartile range of the per-call times", "s"),
    "mean_s": _c("float64", "the mean time per call", "s"),
    "min_s": _c("float64", "the fastest round's time per call", "s"),
    "rounds": _c("Int64", "timed rounds, over all visits"),
    "calls_per_round": _c("Int64", "calls in each timed round"),
    "raw_times_s": _c("string", "JSON list: the per-call time of each round", "s"),
    "visit_medians_s": _c(
        "string", "JSON list: the median of each visit (the unit segbench.verdicts.stats tests on)", "s"
    ),
    # throughput and the memory-read ceiling
    "pixels_per_s": _c("float64", "batch x height x width / median_s", "pixels/s"),
    "bytes_moved": _c("Int64", "the least the cell must move: y_true + y_pred read once (+ the gradient written)", "B"),
    "gb_per_s": _c("float64", "bytes_moved / median_s", "GB/s"),
    "ceiling_gb_per_s": _c(
        "float64", "the read ceiling measured in the same run: both inputs read once, fastest way found", "GB/s"
    ),
    "ceiling_method": _c("string", "which kernel set the ceiling (numpy sum, an XLA reduction...)"),
    "roofline_fraction": _c("float64", "gb_per_s / ceiling_gb_per_s (above 1.05: a faster read exists)"),
    # memory
    "peak_mem_bytes": _c("Int64", "peak memory of one call beyond its inputs", "B"),
    "mem_method": _c("string", "how it was measured: tracemalloc, tf_allocator_peak, rss_hwm or unavailable"),
    # correctness of the measured cell
    "loss_value": _c("float64", "the loss the cell computed"),
    "oracle_value": _c("float64", "the float64 oracle's value on the same inputs"),
    "oracle_abs_diff": _c("float64", "|loss_value - oracle_value|"),
    "oracle_rtol": _c("float64", "the relative tolerance for this dtype and number of summed terms"),
    "within_tolerance": _c("boolean", "whether oracle_abs_diff is within it (NA: no oracle at this size)"),
    "value": _c("float64", "the number the source recorded, in unit (for a timing, median_s)"),
    "unit": _c("string", "the unit of value"),
    "finished_at": _c("string", "when this row's cell finished", "ISO 8601, UTC"),
}

SCHEMA: dict[str, str] = {name: column.dtype for name, column in COLUMNS.items()}
"""Column name -> pandas dtype, in table order (derived from :data:`COLUMNS`)."""


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in schema order with schema dtypes; missing columns filled with NA."""
    frame = frame.copy()
    if "mode" in frame and ("backend" not in frame or frame["backend"].isna().any()):
        from segbench.losses.registry import MODES  # tables before schema 4: the mode says the backend

        derived = frame["mode"].map(lambda m: MODES[m].backend if m in MODES else None)
        frame["backend"] = frame["backend"].fillna(derived) if "backend" in frame else derived
    for column, dtype in SCHEMA.items():
        if column not in frame:
            frame[column] = None
        if dtype == "float64":
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(dtype)
        else:
            frame[column] = frame[column].astype(dtype)
    extra = [c for c in frame.columns if c not in SCHEMA]
    return frame[list(SCHEMA) + extra]


def empty() -> pd.DataFrame:
    return conform(pd.DataFrame())


def _check_version(frame: pd.DataFrame, origin: str) -> None:
    versions = pd.to_numeric(frame["schema_version"]).dropna() if "schema_version" in frame else []
    if len(versions):
        newest = int(versions.max())
        if newest > SCHEMA_VERSION:
            raise ValueError(
                f"{origin} has schema version {newest}; this segbench reads up to {SCHEMA_VERSION}: upgrade segbench"
            )


def latest_successful(frame: pd.DataFrame) -> pd.DataFrame:
    """The cells that ran (status ok), each once (the latest where tables of several runs were
    concatenated), with a ``resolution`` column (HxW) for tables that show shapes."""
    ok = frame[frame["status"] == "ok"].copy()
    ok["resolution"] = ok["height"].astype(str) + "x" + ok["width"].astype(str)
    # Several runs of a cell (concatenated tables): the latest counts.
    return ok.sort_values("finished_at", na_position="first").drop_duplicates(KEY_COLUMNS, keep="last")
