"""Results on disk: a crash-safe writer, and loading runs as tidy pandas tables (segbench.results.schema).

A run directory holds ``cells.jsonl`` (the journal and the source of truth: one JSON line per
finished cell, flushed and fsynced before the next cell starts, so Ctrl-C, a crash or the OOM
killer lose nothing already measured), ``results.parquet`` and ``results.csv`` (written whole when
the run ends or stops), and ``run.json`` (the run's environment).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segbench.results.schema import (
    KEY_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    _check_version,
    conform,
    empty,
)

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
        from segbench.measurement.timing import Measurement

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
