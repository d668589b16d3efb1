"""Results as tidy pandas tables: the schema, a crash-safe writer, and loading.

One row per cell (long format). The schema is versioned: ``SCHEMA_VERSION`` changes whenever a
column is added, removed or changes meaning, and :func:`load` refuses tables of a newer version.
Tables from ``segbench run``, asv (:func:`from_asv`) and pytest-benchmark
(:func:`from_pytest_benchmark`) share it, so they concatenate.

A run directory holds ``cells.jsonl`` (the journal and the source of truth: one JSON line per
finished cell, flushed and fsynced before the next cell starts, so Ctrl-C, a crash or the OOM
killer lose nothing already measured), ``results.parquet`` and ``results.csv`` (written whole when
the run ends or stops), and ``run.json`` (the run's environment).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
    "visit_medians_s": _c("string", "JSON list: the median of each visit (the unit segbench.stats tests on)", "s"),
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

JOURNAL = "cells.jsonl"
COMPRESSED_JOURNAL = JOURNAL + ".gz"  # a published run's journal (read-only: gzip -9 of cells.jsonl)
PARQUET = "results.parquet"
CSV = "results.csv"
RUN_META = "run.json"


def aggregate_visits(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell from a journal's rows, one per visit (segbench run visits each cell several
    times): the first visit's row with the samples of every successful visit pooled, its timing
    columns recomputed from them, and the first call the median of the visits' first calls."""
    if "visit" not in frame.columns or frame.empty:
        return frame.assign(visits=frame.get("visits", 1)) if not frame.empty else frame
    frame = frame.copy()
    frame["visit"] = pd.to_numeric(frame["visit"], errors="coerce").fillna(1).astype(int)
    rows = []
    keys = ["run_id", *KEY_COLUMNS] if "run_id" in frame.columns else list(KEY_COLUMNS)
    for _, group in frame.sort_values("visit", kind="stable").groupby(keys, sort=False, dropna=False):
        base = group.iloc[0].to_dict()
        ok = group[group["status"] == "ok"]
        if base.get("status") != "ok" or len(group) == 1:
            rows.append({**base, "visits": len(ok) if base.get("status") == "ok" else 0})
            continue
        from segbench.timing import Measurement

        times = [t for raw in ok["raw_times_s"] for t in json.loads(raw)]
        first_call = float(np.median(pd.to_numeric(ok["compile_s"])))
        calls = base.get("calls_per_round")
        pooled = Measurement(tuple(times), int(calls) if pd.notna(calls) else None, first_call, 0)
        median = pooled.median
        failed = group[group["status"] != "ok"]
        base.update(
            pooled.columns(),
            visits=len(ok),
            visit_medians_s=json.dumps([float(np.median(json.loads(raw))) for raw in ok["raw_times_s"]]),
        )
        if "pixels_per_s" in base and pd.notna(base.get("batch")):
            base["pixels_per_s"] = base["batch"] * base["height"] * base["width"] / median
        if pd.notna(base.get("bytes_moved")) and pd.notna(base.get("ceiling_gb_per_s")):
            base["gb_per_s"] = base["bytes_moved"] / median / 1e9
            base["roofline_fraction"] = base["gb_per_s"] / base["ceiling_gb_per_s"]
        if len(failed):
            base["error"] = "; ".join(f"visit {v}: {e}" for v, e in zip(failed["visit"], failed["error"], strict=True))
        rows.append(base)
    return pd.DataFrame(rows).drop(columns="visit")


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in schema order with schema dtypes; missing columns filled with NA."""
    frame = frame.copy()
    if "mode" in frame and ("backend" not in frame or frame["backend"].isna().any()):
        from segbench.registry import MODES  # tables before schema 4: the mode says the backend

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


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The rows of a journal. A last line cut short (a crash or a full disk while writing it) is
    ignored; a line that is not JSON anywhere else means the file is damaged: a ValueError says where."""
    rows = []
    compressed = path.with_name(path.name + ".gz")
    if not path.exists() and compressed.exists():  # a published run, compressed to keep the repository small
        import gzip

        path, data = compressed, gzip.decompress(compressed.read_bytes())
    elif path.exists():
        data = path.read_bytes()
    else:
        return rows
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a segbench journal: not UTF-8 text ({error.reason})") from None
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # no newline after it: the write was torn
                continue
            raise ValueError(f"{path}, line {number}: not a JSON row (the journal is damaged)") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {number}: a row must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _check_frame(frame: pd.DataFrame, origin: str) -> None:
    """A results table needs its key columns and status; numbers must be numbers."""
    needed = [*KEY_COLUMNS, "status"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{origin} is not a segbench results table: it lacks the columns {', '.join(missing)}")
    for column, dtype in SCHEMA.items():
        if column in frame and (dtype == "float64" or dtype == "Int64"):
            values = frame[column]
            numbers = pd.to_numeric(values, errors="coerce")
            bad = values[numbers.isna() & values.notna() & (values.astype(str).str.strip() != "")]
            if len(bad):
                raise ValueError(f"{origin}: column {column} holds text where numbers belong, e.g. {bad.iloc[0]!r}")


def _snapshot(path: Path) -> bytes:
    """The whole file, read through one open handle: a run that replaces the file meanwhile (an
    atomic rename) leaves this handle on the old file, so a read sees the old table or the new,
    never half of each (reading by path, pyarrow opens a file more than once)."""
    with open(path, "rb") as handle:
        return handle.read()


def read_parquet(path: Path) -> pd.DataFrame:
    import io

    return pd.read_parquet(io.BytesIO(_snapshot(path)))


def read_csv(path: Path) -> pd.DataFrame:
    """A results CSV; a file cut short (its last row unfinished) is refused, not read with blanks."""
    import csv
    import io

    data = _snapshot(path)
    if data and not data.endswith(b"\n"):
        raise ValueError(
            f"{path} is cut short: its last row ends without a newline (a copy or a write that did not "
            "finish); read the run's cells.jsonl instead, or copy the file again"
        )
    text = data.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    widths = {len(row) for row in rows if row}
    if len(widths) > 1:
        header = len(rows[0])
        short = next(number for number, row in enumerate(rows, start=1) if row and len(row) != header)
        raise ValueError(f"{path}, line {short}: {len(rows[short - 1])} fields where the header has {header}")
    return pd.read_csv(io.StringIO(text))


def _load_one(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}")
    if path.is_dir():
        journal = path / JOURNAL
        if journal.exists() or (path / COMPRESSED_JOURNAL).exists():  # the truth; tables are written at the end
            frame = aggregate_visits(pd.DataFrame(read_journal(journal)))
        elif (path / PARQUET).exists():
            frame = read_parquet(path / PARQUET)
        elif (path / CSV).exists():
            frame = read_csv(path / CSV)
        else:
            raise FileNotFoundError(f"{path} holds no segbench results ({JOURNAL}, {PARQUET} or {CSV})")
    elif path.suffix == ".parquet":
        frame = read_parquet(path)
    elif path.suffix == ".csv":
        frame = read_csv(path)
    elif path.suffix == ".jsonl":
        frame = aggregate_visits(pd.DataFrame(read_journal(path)))
    else:
        raise ValueError(f"cannot read results from {path}: expected a run directory, .parquet, .csv or .jsonl")
    if frame.empty:
        return empty()
    _check_version(frame, str(path))
    _check_frame(frame, str(path))
    return conform(frame)


def load(*paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Read one or more runs (directories, .parquet, .csv, .jsonl) into one DataFrame."""
    flat: list[Path] = []
    for item in paths:
        if isinstance(item, (str, os.PathLike)):
            flat.append(Path(item))
        else:
            flat.extend(Path(p) for p in item)
    if not flat:
        raise ValueError("load() needs at least one path")
    frames = [_load_one(p) for p in flat]
    return conform(pd.concat(frames, ignore_index=True)) if len(frames) > 1 else frames[0]


class RunLockedError(RuntimeError):
    """Another process is writing the run directory."""


class ResultWriter:
    """Appends finished cells to a run directory so that nothing measured is ever lost.

    The journal (``cells.jsonl``) is append-only and each row is flushed and fsynced before the
    next cell starts; a line torn by a crash is cut off when the writer opens the file again.
    ``run.json`` and the tables are written whole to a temporary file and renamed into place, and
    the tables only once, by :meth:`close`. While the writer is open it holds a lock on the
    directory: a second writer fails with :class:`RunLockedError`.
    """

    def __init__(
        self, directory: str | os.PathLike[str], meta: Mapping[str, Any], run_meta: Mapping[str, Any] | None = None
    ):
        """``meta``: the columns every row gets; ``run_meta``: run.json's content if it differs (a
        new run's plan and device), written only when the directory has no run.json yet."""
        self.directory = Path(directory)
        if (self.directory / COMPRESSED_JOURNAL).exists():
            raise ValueError(
                f"{self.directory} is a published run ({COMPRESSED_JOURNAL}): read it, do not write into it"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.directory)
        self.meta = dict(meta)
        journal = self.directory / JOURNAL
        _cut_torn_line(journal)
        self.rows: list[dict[str, Any]] = read_journal(journal)
        if not (self.directory / RUN_META).exists():
            text = json.dumps(dict(run_meta if run_meta is not None else meta), indent=2, sort_keys=True, default=str)
            atomic_write_text(self.directory / RUN_META, text)

    def done_keys(self) -> set[tuple]:
        """Keys of cells already in the journal (for --resume)."""
        return {tuple(row.get(k) for k in KEY_COLUMNS) for row in self.rows}

    def append(self, row: Mapping[str, Any]) -> None:
        full = {"schema_version": SCHEMA_VERSION, **self.meta, **row}
        with open(self.directory / JOURNAL, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(full, default=_json_default) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        self.rows.append(full)

    def frame(self) -> pd.DataFrame:
        """The run's table: one row per cell, its visits pooled."""
        return conform(aggregate_visits(pd.DataFrame(self.rows))) if self.rows else empty()

    def write_tables(self) -> None:
        """results.parquet and results.csv from the journal, each replaced atomically."""
        frame = self.frame()
        tmp = self.directory / (PARQUET + ".tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.directory / PARQUET)
        tmp = self.directory / (CSV + ".tmp")
        frame.to_csv(tmp, index=False)
        os.replace(tmp, self.directory / CSV)

    def close(self) -> None:
        """Write the tables and release the lock (also after an interrupted run)."""
        try:
            if self.rows:
                self.write_tables()
        finally:
            self._lock.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LOCK = ".lock"


def _lock(directory: Path) -> Any:
    """An exclusive, non-blocking lock on ``directory/.lock``, held while the file stays open."""
    import fcntl

    handle = open(directory / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 (held until close)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLockedError(f"{directory} is being written by another segbench run ({holder}); wait for it") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def _cut_torn_line(journal: Path) -> None:
    """Remove an unfinished last line (no newline after it), so the next row starts a line of its own."""
    if not journal.exists() or journal.stat().st_size == 0:
        return
    with open(journal, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        content = handle.read()
        handle.truncate(content.rfind(b"\n") + 1)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if value is pd.NA:
        return None
    raise TypeError(f"cannot store {type(value).__name__} in a results row")


def from_asv(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """asv's JSON results as a DataFrame in this schema (see segbench.importers)."""
    from segbench import importers

    return importers.from_asv(*args, **kwargs)


def from_pytest_benchmark(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """pytest-benchmark's saved JSON as a DataFrame in this schema (see segbench.importers)."""
    from segbench import importers

    return importers.from_pytest_benchmark(*args, **kwargs)
