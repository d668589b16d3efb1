"""``segbench compare``: XLA and tf.function against eager (and numpy) in one run; or two runs.

One run: per pass, a row per loss x formulation x shape with eager's time, each mode's speedup
over eager and over numpy, the best mode and its fraction of the memory-read ceiling; then compile
times and the break-even number of calls after which a compiled mode has paid for compiling.

Two runs (OLD NEW): each cell present in both gets a verdict from its raw samples: slower, faster,
no change (its interval inside the threshold band) or inconclusive (a statistical test *and* the
threshold; see segbench.verdicts.stats), with the change NEW/OLD - 1 in percent and its interval; a change
must also exceed the noise floor of the comparison (three robust standard deviations of the
log-ratios of its mode's cells); for two commits measured in alternation on one machine, see
``segbench ab``. The counts come first, then the slower cells, the faster, the inconclusive; the
cells with no change are counted (``--all`` lists them; ``--format csv`` or ``markdown`` list every
cell). When more than 5 % are inconclusive, why, and the ``segbench ab`` command for just those.
OLD and NEW may also be pytest-benchmark's JSON or its ``.benchmarks`` folder, or asv's results
directory (one such folder alone: its last two runs; ``PATH@ID`` picks the run whose name holds ID).

Before any verdict the two runs' machine identities are compared (segbench.measurement.environment.IDENTITY:
CPU model and code-generation flags, logical CPUs, threads, BLAS, oneDNN, TensorFlow, numpy and
Python versions and build, device, GPU driver). Runs from different machines or software get no
slower/faster verdict: the differences are listed and the exit status is 3. With
``--across-machines`` the verdicts are given anyway, the differences head the table and each row
names what differs. A column a run did not record (an older run) is unknown, not different.

Exit status: 0 no cell slower; 1 a cell is slower; 2 bad input (one line says what); 3 the runs
come from different machines or software versions, so no verdict was given (see --across-machines).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

from segbench.cli import options
from segbench.measurement import environment
from segbench.presentation import tables
from segbench.results.storage import KEY_COLUMNS
from segbench.verdicts import stats

NOT_COMPARABLE = 3
"""Exit status of compare and ab when the runs come from different machines or software versions."""


class DifferentMachinesError(ValueError):
    """Runs whose machine identities differ, where a verdict (or one figure) needs them alike."""

    def __init__(self, message: str, lines: list[str]):
        super().__init__(message + " " + "; ".join(line.strip() for line in lines))  # one line
        self.message, self.lines = message, lines


def machine_check(runs: dict[str, pd.DataFrame], *, across_machines: bool, what: str) -> list[str]:
    """Compare the identities of ``runs`` (name -> table) first. Alike: no lines. Different:
    DifferentMachinesError naming what differs, unless ``across_machines``, then the lines of the
    header block that says so (the caller prints them above its verdicts or figures)."""
    differences = environment.identity_differences(runs)
    lines = environment.describe_differences(differences)
    if not differences:
        return []
    names = " and ".join(runs) if len(runs) > 1 else "the rows of " + next(iter(runs))
    if not across_machines:
        raise DifferentMachinesError(
            f"{names} come from different machines or software versions, so {what}; they differ in:", lines
        )
    return [f"ACROSS MACHINES: {names} differ in (times are not comparable as a regression):", *lines]


def unknown_note(runs: dict[str, pd.DataFrame]) -> str | None:
    """A line naming the identity columns some runs did not record (treated as alike)."""
    unknown = environment.identity_unknown(runs)
    if not unknown:
        return None
    labels = ", ".join(environment.IDENTITY[c] for c in unknown)
    return f"note: not recorded by every run (an older segbench), so not checked: {labels}"


def check_duplicates(frame: pd.DataFrame, origin: str) -> None:
    """Refuse a results table that holds a cell more than once (one line naming them)."""
    if frame.empty:
        return
    keys = frame[list(KEY_COLUMNS)].astype(str)
    repeated = frame[keys.duplicated(keep=False)]
    if repeated.empty:
        return
    cells = list(dict.fromkeys(cell_label(row) for _, row in repeated.iterrows()))
    runs = sorted(set(repeated["run_id"].dropna().astype(str))) if "run_id" in repeated else []
    shown = ", ".join(cells[:3]) + (f" and {len(cells) - 3} more" if len(cells) > 3 else "")
    where = f" (runs {', '.join(runs)})" if len(runs) > 1 else ""
    raise ValueError(
        f"{origin}: {len(cells)} cell(s) appear more than once{where}: {shown}; "
        "give one run per path, or combine shards with segbench merge"
    )


def missing_shards(frame: pd.DataFrame) -> list[str]:
    """The shards (K/N) of a sweep that a table made of shards lacks ([] when complete or unsharded)."""
    if "shard" not in frame:
        return []
    shards = set(frame["shard"].dropna().astype(str))
    if not shards:
        return []
    parts: dict[int, set[int]] = {}
    for shard in shards:
        k, _, n = shard.partition("/")
        if k.isdigit() and n.isdigit():
            parts.setdefault(int(n), set()).add(int(k))
    return [f"{k}/{n}" for n, have in sorted(parts.items()) for k in range(1, n + 1) if k not in have]


def partial_note(frame: pd.DataFrame) -> str | None:
    """PARTIAL: the line that says a table lacks shards of its sweep, or None."""
    missing = missing_shards(frame)
    if not missing:
        return None
    return f"PARTIAL: shard(s) {', '.join(missing)} of the sweep are missing; its cells are not all here"


SHAPE_COLUMNS = ["batch", "resolution", "classes", "dtype"]
CEILING_SLACK = 1.05
"""A cell measured above 105 % of the read ceiling means a faster read exists: the ceiling is wrong."""


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["status"] == "ok"].copy()
    ok["resolution"] = ok["height"].astype(str) + "x" + ok["width"].astype(str)
    # Several runs of a cell (concatenated tables): the latest counts.
    return ok.sort_values("finished_at", na_position="first").drop_duplicates(KEY_COLUMNS, keep="last")


def _modes_in(frame: pd.DataFrame) -> list[str]:
    from segbench.losses.registry import MODES

    present = set(frame["mode"])
    return [m for m in MODES if m in present] + sorted(present - set(MODES))


def speedup_table(frame: pd.DataFrame, pass_: str, baseline: str = "eager") -> pd.DataFrame:
    """Rows: loss, formulation, shape; columns: baseline ms, each mode's speedup, best mode."""
    ok = _ok(frame)
    ok = ok[ok["pass"] == pass_]
    index = ["loss", "formulation", *SHAPE_COLUMNS]
    median = ok.pivot_table(index=index, columns="mode", values="median_s", aggfunc="first", sort=False)
    roofline = ok.pivot_table(index=index, columns="mode", values="roofline_fraction", aggfunc="first", sort=False)
    roofline = roofline.where(roofline <= CEILING_SLACK)  # above it the ceiling is wrong: not shown
    modes = [m for m in _modes_in(ok) if m in median]
    table = pd.DataFrame(index=median.index)
    if baseline in median:
        table[f"{baseline} ms"] = median[baseline] * 1e3
        for mode in modes:
            if mode != baseline:
                table[f"{mode} x"] = median[baseline] / median[mode]
    if "numpy" in median and baseline != "numpy":
        for mode in modes:
            if mode not in ("numpy", baseline):
                table[f"{mode} /numpy x"] = median["numpy"] / median[mode]
    best = median[modes].idxmin(axis=1)
    table["best"] = best
    table["best ms"] = median[modes].min(axis=1) * 1e3
    table["% ceiling"] = [
        100 * roofline.at[i, m] if m in roofline and pd.notna(roofline.at[i, m]) else np.nan
        for i, m in zip(table.index, best, strict=True)
    ]
    return table.reset_index()


def break_even_calls(compile_s: float, base_compile_s: float, median_s: float, base_median_s: float) -> float:
    """Calls after which a mode's total time (first call, then median per call) beats the baseline's.

    n calls cost ``compile_s + (n - 1) * median_s``; the break-even n is the smallest n where that is
    at most the baseline's. 1 when the mode is never behind; inf when it is never ahead.
    """
    if any(pd.isna(v) for v in (compile_s, base_compile_s, median_s, base_median_s)):
        return math.nan  # a mode of this cell did not run (a partial run): nothing to compare
    extra_first_call = compile_s - base_compile_s
    saving_per_call = base_median_s - median_s
    if extra_first_call <= 0:
        return 1.0
    if saving_per_call <= 0:
        return math.inf
    return 1.0 + math.ceil(extra_first_call / saving_per_call)


def compile_table(frame: pd.DataFrame, baseline: str = "eager") -> pd.DataFrame:
    """First-call seconds per mode and the break-even call count of each compiled mode."""
    ok = _ok(frame)
    index = ["loss", "formulation", "pass", *SHAPE_COLUMNS]
    first = ok.pivot_table(index=index, columns="mode", values="compile_s", aggfunc="first", sort=False)
    median = ok.pivot_table(index=index, columns="mode", values="median_s", aggfunc="first", sort=False)
    table = pd.DataFrame(index=first.index)
    for mode in _modes_in(ok):
        if mode in first:
            table[f"{mode} first call s"] = first[mode]
    if baseline in first:
        from segbench.losses.registry import MODES

        for mode in [m for m in _modes_in(ok) if m in MODES and MODES[m].compiles and m != baseline]:
            if mode in first:
                table[f"{mode} break-even calls"] = [
                    break_even_calls(
                        first.at[i, mode], first.at[i, baseline], median.at[i, mode], median.at[i, baseline]
                    )
                    for i in table.index
                ]
    return table.reset_index()


def formulation_table(frame: pd.DataFrame, pass_: str) -> pd.DataFrame:
    """At the largest shape: each formulation's time and fraction of the ceiling, side by side per
    loss and mode, and how much faster each formulation is than ``reference``."""
    ok = _ok(frame)
    ok = ok[ok["pass"] == pass_]
    if ok.empty:
        return pd.DataFrame()
    size = ok["batch"] * ok["height"] * ok["width"] * ok["classes"]
    ok = ok[size == size.max()]
    index = ["loss", "mode"]
    median = ok.pivot_table(index=index, columns="formulation", values="median_s", aggfunc="first", sort=False)
    roofline = ok.pivot_table(
        index=index, columns="formulation", values="roofline_fraction", aggfunc="first", sort=False
    )
    roofline = roofline.where(roofline <= CEILING_SLACK)
    table = pd.DataFrame(index=median.index)
    for formulation in median.columns:
        table[f"{formulation} ms"] = median[formulation] * 1e3
        table[f"{formulation} % ceiling"] = roofline[formulation] * 100
    for formulation in median.columns:
        if formulation != "reference" and "reference" in median:
            table[f"{formulation} x reference"] = median["reference"] / median[formulation]
    shape = ok.iloc[0]
    table.attrs["shape"] = (
        f"batch {shape['batch']}, {shape['height']}x{shape['width']}, C={shape['classes']}, {shape['dtype']}"
    )
    return table.reset_index()


def ceiling_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per shape: the read ceiling in GB/s, the kernel that set it, and the best fraction reached."""
    ok = _ok(frame).dropna(subset=["ceiling_gb_per_s"])
    if ok.empty:
        return pd.DataFrame()
    grouped = ok.groupby(SHAPE_COLUMNS, sort=False)
    return grouped.agg(
        **{
            "ceiling GB/s": ("ceiling_gb_per_s", "first"),
            "set by": ("ceiling_method", "first"),
            "best % of it": ("roofline_fraction", lambda f: 100 * f.max()),
        }
    ).reset_index()


def ceiling_warning(frame: pd.DataFrame) -> str | None:
    """A line saying the ceiling is wrong where a cell beat it by more than the slack, else None."""
    ok = _ok(frame)
    above = ok[ok["roofline_fraction"] > CEILING_SLACK]
    if above.empty:
        return None
    worst = above.loc[above["roofline_fraction"].idxmax()]
    return (
        f"WARNING: {len(above)} cell(s) read their inputs faster than the measured read ceiling "
        f"(up to {100 * worst['roofline_fraction']:.0f}%, {cell_label(worst)}): the ceiling is wrong, "
        "so those fractions are not shown"
    )


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame[frame["status"] != "ok"]
    return bad[[*KEY_COLUMNS, "status", "error"]].reset_index(drop=True)


def _constant_columns(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Move shape columns that hold one value (often classes, dtype) out of the table, into a note."""
    constant = [c for c in ("classes", "dtype") if c in table and table[c].nunique() == 1]
    note = ", ".join(f"{c} {table[c].iloc[0]}" for c in constant)
    return table.drop(columns=constant), note


# In a terminal, what goes first when a table is too wide: the ratios against numpy, then numpy's.
DROP_FIRST = [
    "function /numpy x",
    "xla /numpy x",
    "numpy x",
    "numpy first call s",
    "eager first call s",
    "fn /numpy x",
    "numpy 1st",
    "eager 1st",
    "fn 1st",
]


def _for_people(table: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """In a terminal, shorter loss names (crossentropy -> ce); Markdown and CSV keep them whole."""
    if fmt == "terminal" and "loss" in table:
        table = table.assign(loss=table["loss"].map(tables.short_loss))
    return table


def render(table: pd.DataFrame, fmt: str, columns: Sequence[str] | None = None, width: int | None = None) -> str:
    """A table of segbench compare, in the one style of segbench's commands (segbench.presentation.tables)."""
    return tables.render(_for_people(table, fmt), fmt, columns=columns, drop_first=DROP_FIRST, width=width)


def _selected(table: pd.DataFrame, columns: Sequence[str] | None) -> Sequence[str] | None:
    """Of the chosen columns, those this table has (None: all of them)."""
    return None if columns is None else [c for c in columns if c in table.columns]


def _heading(text: str, fmt: str) -> str:
    return f"\n### {text}\n" if fmt == "markdown" else "\n" + tables.wrap(f"== {text} ==") + "\n"


def _shape_labels(table: pd.DataFrame) -> list[str]:
    """b16 512x512 for each row of a table with batch and resolution (HxW) columns."""
    return [tables.shape_label(b, *r.split("x")) for b, r in zip(table["batch"], table["resolution"], strict=True)]


def _terminal_speedups(table: pd.DataFrame) -> pd.DataFrame:
    """speedup_table for a terminal: one shape column, times in their unit, short headings."""
    out = pd.DataFrame({"loss": table["loss"], "form": table["formulation"], "shape": _shape_labels(table)})
    for column in [c for c in table.columns if c.endswith(" ms") and c != "best ms"]:  # the baseline's time
        out[column[: -len(" ms")]] = [human_time(v / 1e3) for v in table[column]]
    for column in table.columns:
        if column.endswith(" x"):
            out[column.replace("function", "fn")] = table[column]
    out["best"] = table["best"]
    out["time"] = [human_time(v / 1e3) for v in table["best ms"]]
    out["%ceil"] = [f"{v:.0f}" if pd.notna(v) else "-" for v in table["% ceiling"]]
    return out


def readable_compile_table(table: pd.DataFrame) -> pd.DataFrame:
    """compile_table as people read it (terminal, Markdown, the report's page): first calls in
    their unit, break-even calls as integers or never, one shape column."""
    out = pd.DataFrame(
        {
            "loss": table["loss"],
            "form": table["formulation"],
            "pass": table["pass"].replace(tables.SHORT_PASS),
            "shape": _shape_labels(table),
        }
    )
    for column in table.columns:
        if column.endswith(" first call s"):
            out[column.replace(" first call s", "").replace("function", "fn") + " 1st"] = [
                human_time(v) for v in table[column]
            ]
    for column in table.columns:
        if column.endswith(" break-even calls"):
            out[column.replace(" break-even calls", "").replace("function", "fn") + " pays"] = [
                human_calls(v) for v in table[column]
            ]
    return out


def summary(
    frame: pd.DataFrame, fmt: str = "terminal", columns: Sequence[str] | None = None, baseline: str = "eager"
) -> str:
    """The comparison of one run (or concatenated runs), as text, Markdown or CSV; ``columns``
    keeps only those columns (each table shows the ones it has; a table with none is left out);
    speedups are over ``baseline``, any mode (e.g. xla: "JAX jit against TF XLA")."""
    from segbench.losses.registry import get_mode

    get_mode(baseline)  # an unknown mode names the choices
    terminal = fmt == "terminal"
    sections: list[tuple[str | None, pd.DataFrame]] = []
    for pass_ in ("forward", "forward+backward"):
        table = speedup_table(frame, pass_, baseline)
        if not len(table):
            continue
        if fmt == "csv":
            table.insert(0, "pass", pass_)
            sections.append((None, table))
            continue
        table, note = _constant_columns(table)
        what = "time of the fastest mode, its % of the read ceiling" if terminal else "best mode"
        sections.append(
            (
                f"{pass_}, {note}: speedup over {baseline} (x, >1 is faster); {what}",
                _terminal_speedups(table) if terminal else table,
            )
        )
    if fmt != "csv":
        table, note = _constant_columns(compile_table(frame, baseline))
        if len(table):
            sections.append(
                (
                    f"first call (trace + compile), {note}; calls until compiling paid off against {baseline}",
                    readable_compile_table(table),
                )
            )
        table, note = _constant_columns(ceiling_table(frame))
        if len(table):
            sections.append((f"read ceiling: the fastest read of both inputs found in this run, {note}", table))
    if columns:
        known = dict.fromkeys(c for _, table in sections for c in table.columns)
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise ValueError(
                f"--columns: no table has {', '.join(map(repr, unknown))}; the columns are: {', '.join(known)}"
            )
    parts = []
    if fmt != "csv":
        device = ", ".join(sorted(set(frame["device_name"].dropna().astype(str)))) or "unknown device"
        parts.append(f"{len(frame)} cells, {int((frame['status'] == 'ok').sum())} ok; devices: {device}")
    for heading, table in sections:
        chosen = _selected(table, columns)
        if chosen is not None and not chosen:
            continue
        if heading is not None:
            parts.append(_heading(heading, fmt))
        parts.append(render(table, fmt, chosen))
    if fmt != "csv":
        warning = ceiling_warning(frame)
        if warning:
            parts.append("\n" + tables.wrap(warning))
        label = short_cell_label if terminal else cell_label
        off = frame[(frame["status"] == "ok") & (frame["within_tolerance"] == False)]  # noqa: E712 (NA-aware)
        if len(off):
            parts.append(_heading("cells whose loss is NOT within the tolerance of the float64 oracle", fmt))
            shown = off.assign(cell=[label(r) for _, r in off.iterrows()])
            parts.append(render(shown[["cell", "loss_value", "oracle_value", "oracle_abs_diff", "oracle_rtol"]], fmt))
        bad = failures(frame)
        if len(bad):
            parts.append(_heading("cells that did not run", fmt))
            shown = bad.assign(cell=[label(r) for _, r in bad.iterrows()])
            if terminal:
                shown["error"] = shown["error"].fillna("").str.slice(0, 40)
            parts.append(render(shown[["cell", "status", "error"]], fmt))
    return "\n".join(parts)


def human_time(seconds: float) -> str:
    """A time in the unit that suits it: 85 µs, 8.7 ms, 1.2 s."""
    if seconds is None or pd.isna(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def human_calls(calls: float) -> str:
    """A break-even call count as a person reads it: an integer, or never."""
    if calls is None or pd.isna(calls):
        return "-"
    return "never" if math.isinf(calls) else f"{int(calls):d}"


def _one_decimal(value: float) -> str:
    """A ratio for people: one decimal, or "-" where it was not measured (e.g. no eager cell)."""
    return "-" if value is None or pd.isna(value) else f"{value:.1f}"


def brief(frame: pd.DataFrame) -> str:
    """The end of segbench run: what a person reads in ten seconds, within 100 columns.

    Per loss, formulation and shape (forward): the fastest mode and its time, XLA against eager
    forward and forward+backward, the fastest mode's fraction of the read ceiling, and after how
    many calls XLA's compile has paid off. The full tables are ``segbench compare RUN``.
    """
    device = ", ".join(sorted(set(frame["device_name"].dropna().astype(str)))) or "unknown device"
    lines = [f"{len(frame)} cells, {int((frame['status'] == 'ok').sum())} ok, on {device}"]
    forward = speedup_table(frame, "forward")
    if forward.empty:
        return "\n".join([*lines, "no forward cell ran: see segbench compare RUN"])
    both = speedup_table(frame, "forward+backward")
    compile_ = compile_table(frame)
    key = ["loss", "formulation", "batch", "resolution", "classes", "dtype"]  # one row per cell of a multi-dtype run
    with_grad = both.set_index(key)["xla x"] if "xla x" in both else pd.Series(dtype=float)
    pays = compile_[compile_["pass"] == "forward"].set_index(key) if len(compile_) else pd.DataFrame()
    rows = []
    for _, row in forward.iterrows():
        index = tuple(row[k] for k in key)
        rows.append(
            {
                "loss": f"{tables.short_loss(row['loss'])}/{row['formulation'][:3]}",
                "shape": tables.shape_label(row["batch"], *row["resolution"].split("x"))
                + (f" c{row['classes']}" if forward["classes"].nunique() > 1 else "")
                + (f" {row['dtype']}" if forward["dtype"].nunique() > 1 else ""),
                "fastest": row["best"],
                "time": human_time(row["best ms"] / 1e3),
                "XLA x": _one_decimal(row.get("xla x", math.nan)),
                "+grad": _one_decimal(with_grad.get(index, math.nan)),
                "%ceil": f"{row['% ceiling']:.0f}" if pd.notna(row["% ceiling"]) else "-",
                "XLA pays": human_calls(pays["xla break-even calls"].get(index, math.nan))
                if "xla break-even calls" in pays
                else "-",
            }
        )
    lines.append("forward, per loss and shape. XLA x: XLA's speedup over eager (+grad: with the gradient);")
    lines.append("%ceil: the fastest mode's share of the read ceiling; XLA pays: calls until its compile paid off")
    lines.append(pd.DataFrame(rows).to_markdown(index=False, tablefmt="simple", disable_numparse=True))
    ceilings = ceiling_table(frame)
    if len(ceilings):
        largest = ceilings.iloc[-1]
        lines.append(
            f"read ceiling at b{largest['batch']} {largest['resolution']}: {largest['ceiling GB/s']:.1f} GB/s "
            f"({largest['set by']})"
        )
    warning = ceiling_warning(frame)
    if warning:
        lines.append(warning)
    off = int(((frame["status"] == "ok") & (frame["within_tolerance"] == False)).sum())  # noqa: E712
    if off:
        lines.append(f"{off} cell(s) NOT within the oracle's tolerance: see segbench compare RUN")
    bad = failures(frame)
    if len(bad):
        lines.append(
            f"{len(bad)} cell(s) did not run ({', '.join(sorted(set(bad['status'])))}): see segbench compare RUN"
        )
    lines.append("every table, per pass and mode: segbench compare RUN [--format markdown|csv]")
    return "\n".join(lines)


def _samples(row: pd.Series) -> list[float]:
    """The raw per-call times of a row (one per round), or its median alone if none were stored."""
    raw = row.get("raw_times_s")
    if isinstance(raw, str) and raw.strip():
        try:
            values = [float(v) for v in json.loads(raw)]
        except (ValueError, TypeError):
            raise ValueError(f"raw_times_s of {cell_label(row)} is not a JSON list of numbers: {raw[:60]!r}") from None
        if values:
            return values
    return [float(row["median_s"])]


def _visit_medians(row: pd.Series) -> list[float] | None:
    raw = row.get("visit_medians_s")
    if isinstance(raw, str) and raw.strip():
        try:
            return [float(v) for v in json.loads(raw)]
        except (ValueError, TypeError):
            raise ValueError(f"visit_medians_s of {cell_label(row)} is not a JSON list: {raw[:60]!r}") from None
    return None


def cell_label(row: pd.Series | dict) -> str:
    """A short name for a cell that a person reads at a glance."""
    return (
        f"{row['loss']}/{row['formulation']}/{row['mode']}/{row['pass']}/"
        f"b{row['batch']}/{row['height']}x{row['width']}/c{row['classes']}/{row['dtype']}"
    )


def compare_runs(
    old: pd.DataFrame,
    new: pd.DataFrame,
    threshold: float = stats.DEFAULT_THRESHOLD,
    alpha: float = stats.DEFAULT_ALPHA,
    *,
    across_machines: bool = False,
    names: tuple[str, str] = ("OLD", "NEW"),
) -> pd.DataFrame:
    """Cells present in both runs, each with a verdict from its raw samples (see segbench.verdicts.stats).

    The runs' machine identities are compared first: DifferentMachinesError if they differ, unless
    ``across_machines``; then ``table.attrs["machines"]`` holds the header lines saying what
    differs and each row's ``differs`` column names the identity columns its two cells disagree on.
    """
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise ValueError(f"--threshold must be a positive fraction (0.1 = 10%), got {threshold}")
    check_duplicates(old, names[0])
    check_duplicates(new, names[1])
    runs = dict(zip(names, (old, new), strict=True))
    header = machine_check(runs, across_machines=across_machines, what="no slower/faster verdict is given")
    unknown = unknown_note(runs)
    identity = [c for c in (*environment.IDENTITY, "host", "source") if c in old.columns and c in new.columns]
    columns = [*KEY_COLUMNS, "median_s", "raw_times_s", "visit_medians_s", *identity]
    joined = _ok(old)[columns].merge(_ok(new)[columns], on=list(KEY_COLUMNS), suffixes=("_old", "_new"))
    records = []
    for _, row in joined.iterrows():
        differs = environment.differing_columns(
            {c: row[f"{c}_old"] for c in identity}, {c: row[f"{c}_new"] for c in identity}
        )
        sides = {}
        for side in ("old", "new"):
            named = row.rename({f"{c}_{side}": c for c in ("raw_times_s", "median_s", "visit_medians_s")})
            sides[side] = (_samples(named), _visit_medians(named))
        verdict = stats.decide(sides["old"][0], sides["new"][0], threshold, alpha, sides["old"][1], sides["new"][1])
        records.append(
            {
                **{k: row[k] for k in KEY_COLUMNS},
                "median_s_old": verdict.old_center,
                "median_s_new": verdict.new_center,
                "ratio": verdict.ratio,
                "ratio_low": verdict.low,
                "ratio_high": verdict.high,
                "p_value": verdict.p_value,
                "samples": f"{verdict.n_old}/{verdict.n_new}",
                "verdict": verdict.verdict,
                "differs": ", ".join(environment.IDENTITY[c] for c in differs),
            }
        )
    table = pd.DataFrame(records, columns=[*KEY_COLUMNS, *VERDICT_COLUMNS])
    table = _hold_to_the_noise_floor(table)
    table["reason"] = _reasons(table, threshold)
    table = table.drop(columns="held_by_floor")
    table = table.sort_values("ratio", ascending=False).reset_index(drop=True)
    table.attrs["machines"] = header + ([unknown] if unknown else [])
    table.attrs["runs"] = {side: _run_context(frame) for side, frame in zip(("old", "new"), (old, new), strict=True)}
    return table


UNDER_THE_FLOOR = "within the noise floor"
BEYOND_THE_BAND = "interval reaches beyond the band"
NOT_RESOLVED = "change not resolved by the test"
NO_INTERVAL = "too few samples for an interval"


def _reasons(table: pd.DataFrame, threshold: float) -> list[str]:
    """Why each inconclusive cell is inconclusive ("" for the others)."""
    reasons = []
    for _, row in table.iterrows():
        if row["verdict"] != stats.INCONCLUSIVE:
            reasons.append("")
        elif pd.isna(row["ratio_low"]):
            reasons.append(NO_INTERVAL)
        elif stats.within_band(row["ratio"], row["ratio"], threshold):
            reasons.append(BEYOND_THE_BAND)
        elif row.get("held_by_floor", False):
            reasons.append(UNDER_THE_FLOOR)
        else:
            reasons.append(NOT_RESOLVED)
    return reasons


def _first_load(value: object) -> float | None:
    """The 1-minute load average of a load_avg_* value ("5.1 4.8 3.2"), or None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    try:
        return float(str(value).split()[0])
    except (ValueError, IndexError):
        return None


def _run_context(frame: pd.DataFrame) -> dict:
    """What the advice on inconclusive cells needs of one run: its commit, profile, source, load
    and CPUs, and how much a cell's visits (or samples) spread within it."""

    def only(column: str) -> object:
        values = frame[column].dropna().astype(str).unique() if column in frame else []
        return values[0] if len(values) == 1 else None

    loads = [
        load
        for column in ("load_avg_start", "load_avg_end")
        if column in frame
        for load in map(_first_load, frame[column])
        if load is not None
    ]
    spreads, visits = [], []
    for _, row in _ok(frame).iterrows() if len(frame) else []:
        medians = _visit_medians(row)
        values = medians if medians and len(medians) >= 2 else None
        if values is None:
            raw = _samples(row)
            values = raw if len(raw) >= 2 else None
        if values is None:
            continue
        visits.append(len(medians) if medians else 1)
        spreads.append(float(np.std(np.log(values), ddof=1)))
    dirty = "git_dirty" in frame and frame["git_dirty"].dropna().astype(str).str.lower().isin(["true", "1"]).any()
    return {
        "commit": only("git_commit"),
        "dirty": bool(dirty),
        "profile": only("profile"),
        "source": only("source"),
        "cpus": only("cpu_count"),
        "load": (min(loads), max(loads)) if loads else None,
        "spread": float(np.median(spreads)) if spreads else None,
        "visits": int(np.median(visits)) if visits else None,
    }


NOISE_FLOOR_SIGMAS = 3.0
MIN_CELLS_FOR_A_FLOOR = 8


def _hold_to_the_noise_floor(table: pd.DataFrame) -> pd.DataFrame:
    """A slower or faster cell must also stand out from how much every cell of its mode moved.

    Two runs differ in every cell a little (the machine drifts between them); the spread of the
    cells' log-ratios within a mode, as a robust standard deviation (1.4826 x the median absolute
    deviation around their median), measures that. A change under three of them is
    ``inconclusive``. A change of the code that moves every cell of a mode alike moves their
    median, not their spread, so it is still found.
    """
    table = table.copy()
    log_ratio = np.log(table["ratio"])
    spread = pd.Series(np.nan, index=table.index)
    for _, cells in log_ratio.groupby(table["mode"]):
        if len(cells) >= MIN_CELLS_FOR_A_FLOOR:
            spread[cells.index] = 1.4826 * (cells - cells.median()).abs().median()
    if len(log_ratio) >= MIN_CELLS_FOR_A_FLOOR:  # modes with too few cells: the whole run's spread
        spread = spread.fillna(1.4826 * (log_ratio - log_ratio.median()).abs().median())
    table["noise_floor"] = np.exp(NOISE_FLOOR_SIGMAS * spread)
    within = log_ratio.abs() < NOISE_FLOOR_SIGMAS * spread
    flagged = table["verdict"].isin([stats.SLOWER, stats.FASTER])
    table.loc[flagged & within, "verdict"] = stats.INCONCLUSIVE
    table["held_by_floor"] = flagged & within
    return table


VERDICT_COLUMNS = [
    "median_s_old",
    "median_s_new",
    "ratio",
    "ratio_low",
    "ratio_high",
    "p_value",
    "samples",
    "verdict",
    "differs",  # the identity columns (segbench.measurement.environment.IDENTITY) on which the two cells' runs differ
]


def short_cell_label(row: pd.Series | dict) -> str:
    """A cell's name within 50 columns: ce/blocked/xla/f+b b16 512x512 (classes, dtype left out)."""
    return (
        f"{tables.short_loss(row['loss'])}/{row['formulation']}/{row['mode']}/{tables.SHORT_PASS[row['pass']]} "
        + tables.shape_label(row["batch"], row["height"], row["width"])
    )


def percent(ratio: float) -> str:
    """A ratio NEW/OLD as the change a person reads at once: 1.14 -> +14 %, 0.88 -> -12 %."""
    if ratio is None or pd.isna(ratio):
        return "-"
    change = 100 * (ratio - 1)
    return f"{change:+.1f} %" if abs(change) < 1 else f"{change:+.0f} %"


def change_text(ratio: float, low: float, high: float) -> str:
    """The change and its interval: +14 % (11-16 %), -12 % (-15 to -9 %), +9 % (-21 to +51 %)."""
    if pd.isna(low) or pd.isna(high):
        return f"{percent(ratio)} (no interval)"
    lo, hi = percent(low).removesuffix(" %"), percent(high).removesuffix(" %")
    if low >= 1:
        return f"{percent(ratio)} ({lo.lstrip('+')}-{hi.lstrip('+')} %)"
    return f"{percent(ratio)} ({lo} to {hi} %)"


def compact_cell_label(row: pd.Series | dict) -> str:
    """A cell's name for a narrow terminal: missing_annotation_ce/ref/fn/f+b b1 64x64."""
    return (
        f"{tables.short_loss(row['loss'])}/{row['formulation'][:3]}/{SHORT_MODE.get(row['mode'], row['mode'])}/"
        f"{tables.SHORT_PASS[row['pass']]} " + tables.shape_label(row["batch"], row["height"], row["width"])
    )


SHORT_MODE = {"function": "fn"}
CHANGE = f"change ({stats.CONFIDENCE:.0%} CI)"


def verdict_table(table: pd.DataFrame, fmt: str = "csv", width: int | None = None) -> pd.DataFrame:
    """compare_runs' table as people read it: one label per cell, the change in percent with its
    interval, times. In a terminal the label is short (shorter still where the terminal is
    narrow), and the classes and dtype, if one value, go to the heading."""
    interval = [
        "n/a" if math.isnan(lo) else f"{lo:.3f}-{hi:.3f}"
        for lo, hi in zip(table["ratio_low"], table["ratio_high"], strict=True)
    ]
    change = [
        change_text(r, lo, hi)
        for r, lo, hi in zip(table["ratio"], table["ratio_low"], table["ratio_high"], strict=True)
    ]
    if fmt != "terminal":
        return pd.DataFrame(
            {
                "cell": [cell_label(row) for _, row in table.iterrows()],
                "verdict": table["verdict"],
                "change": change,
                "old ms": table["median_s_old"] * 1e3,
                "new ms": table["median_s_new"] * 1e3,
                "new/old": table["ratio"],
                f"{stats.CONFIDENCE:.0%} interval": interval,
                "p": table["p_value"],
                "n": table["samples"],
                **({"why inconclusive": table["reason"]} if "reason" in table else {}),
                **_differs(table),
            }
        )
    # In a terminal the verdict and the change come first, so that a narrow table keeps them
    # (n, p, then the times are what goes first when the cell names are long).
    width = width or tables.terminal_width()
    labels = [short_cell_label(row) for _, row in table.iterrows()]
    essential = max(map(len, labels), default=0) + len("inconclusive") + max(map(len, change), default=0) + 4
    if essential > width:
        labels = [compact_cell_label(row) for _, row in table.iterrows()]
    return pd.DataFrame(
        {
            "cell": labels,
            "verdict": table["verdict"],
            **_differs(table),
            CHANGE: change,
            "old -> new": [
                f"{human_time(a)} -> {human_time(b)}"
                for a, b in zip(table["median_s_old"], table["median_s_new"], strict=True)
            ],
            "p": table["p_value"],
            "n": table["samples"],
        }
    )


def _differs(table: pd.DataFrame) -> dict[str, pd.Series]:
    """The "differs" column, where any row's runs differ (compared --across-machines)."""
    if "differs" in table and table["differs"].fillna("").astype(bool).any():
        return {"differs": table["differs"].fillna("").replace("", "-")}
    return {}


def verdict_counts(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    return ", ".join(f"{int(counts.get(v, 0))} {v}" for v in stats.VERDICTS)


def by_verdict(table: pd.DataFrame) -> pd.DataFrame:
    """The cells in the order people read them: slower (largest first), faster (largest first),
    inconclusive (largest change first), then no change."""
    order = {stats.SLOWER: 0, stats.FASTER: 1, stats.INCONCLUSIVE: 2, stats.NO_CHANGE: 3}
    size = np.log(table["ratio"].astype(float)).abs()
    ranked = table.assign(_group=table["verdict"].map(order).fillna(4), _size=-size)
    ranked = ranked.sort_values(["_group", "_size"], kind="stable").drop(columns=["_group", "_size"])
    ranked.attrs = table.attrs
    return ranked.reset_index(drop=True)


INCONCLUSIVE_ADVICE_SHARE = 0.05
"""Above this share of inconclusive cells, the output says why and what to run next."""
LINES_WITHOUT_SLOWER = 14
"""The terminal output of a comparison with no slower cell fits 15 lines with the OLD/NEW line."""
MIN_ROWS = 3


DISPLAY_ORDER = (stats.SLOWER, stats.FASTER, stats.INCONCLUSIVE, stats.NO_CHANGE)


def verdict_line(table: pd.DataFrame, threshold: float, alpha: float) -> str:
    """The answer, in one line: the counts, slower first (and SLOWER in capitals when any is)."""
    counts = table["verdict"].value_counts()
    slower = int(counts.get(stats.SLOWER, 0))
    listed = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in DISPLAY_ORDER)
    head = "SLOWER (exit 1): " if slower else ""
    return f"{head}{len(table)} cells compared: {listed} (threshold {threshold:.0%}, alpha {alpha:g})"


def _grid_boxes(cells: pd.DataFrame) -> list[dict[str, list]]:
    """Grid selections (one value list per dimension) whose union is exactly ``cells``: each cell
    a box, then boxes that differ in one dimension only merged, until none do."""
    dims = ["loss", "formulation", "mode", "pass", "batch", "resolution", "classes", "dtype"]
    boxes = [
        {d: frozenset([row[d] if d != "resolution" else (int(row["height"]), int(row["width"]))]) for d in dims}
        for _, row in cells.iterrows()
    ]
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(boxes)), 2):
            differ = [d for d in dims if boxes[i][d] != boxes[j][d]]
            if len(differ) <= 1:
                if differ:
                    boxes[i] = {**boxes[i], differ[0]: boxes[i][differ[0]] | boxes[j][differ[0]]}
                del boxes[j]
                merged = True
                break
    return [{d: sorted(box[d]) for d in dims} for box in boxes]


OPTION = {
    "loss": "--loss",
    "formulation": "--formulation",
    "mode": "--mode",
    "pass": "--pass",
    "batch": "--batch",
    "resolution": "--res",
    "classes": "--classes",
    "dtype": "--dtype",
}


def _profile_grid(name: str | None) -> dict[str, set]:
    """Each dimension's values in the named profile (to leave out options that select them all)."""
    from segbench.measurement.sweep import PROFILES

    if name not in PROFILES:
        return {}
    sweep = PROFILES[name].resolved_sweep()
    return {
        "loss": set(sweep.losses),
        "formulation": set(sweep.formulations),
        "mode": set(sweep.modes),
        "pass": set(sweep.passes),
        "batch": set(sweep.batches),
        "resolution": set(sweep.resolutions),
        "classes": set(sweep.classes),
        "dtype": set(sweep.dtypes),
    }


def _option_value(dim: str, values: list) -> str:
    if dim == "resolution":
        return ",".join(str(h) if h == w else f"{h}x{w}" for h, w in values)
    return ",".join(map(str, values))


def next_commands(table: pd.DataFrame, cells: pd.DataFrame, max_commands: int = 3) -> list[tuple[str, int]]:
    """The ``segbench ab`` commands that measure just ``cells`` again, interleaved: the runs' commits,
    their profile, and the grid options that select those cells (one command per grid box; over
    ``max_commands`` boxes, one command whose grid covers them all), each with how many of the
    table's cells the commands select together."""
    runs = table.attrs.get("runs", {})
    old, new = runs.get("old", {}), runs.get("new", {})
    refs = [
        (side.get("commit") or placeholder)[:10] for side, placeholder in ((old, "OLD_COMMIT"), (new, "NEW_COMMIT"))
    ]
    profile = old.get("profile") if old.get("profile") == new.get("profile") else None
    base = ["segbench", "ab", *refs, *(["--profile", profile] if profile else [])]
    if old.get("source") == new.get("source") == "segbench ab" and old.get("visits"):
        base += ["--visits", str(2 * old["visits"])]  # interleaved already: more builds a side
    grid = _profile_grid(profile)
    boxes = _grid_boxes(cells)
    if len(boxes) > max_commands:
        boxes = [{d: sorted({v for box in boxes for v in box[d]}) for d in boxes[0]}]
    commands, selected = [], 0
    for box in boxes:
        options = [f"{OPTION[d]} {_option_value(d, values)}" for d, values in box.items() if set(values) != grid.get(d)]
        selected += sum(_in_box(row, box) for _, row in table.iterrows())
        commands.append(" ".join([*base, *options]))
    return [(command, selected) for command in commands]


def _in_box(row: pd.Series, box: dict[str, list]) -> bool:
    cell = {**row.to_dict(), "resolution": (int(row["height"]), int(row["width"]))}
    return all(cell[d] in values for d, values in box.items())


def _spread_text(runs: dict) -> str | None:
    spreads = [side["spread"] for side in runs.values() if side.get("spread") is not None]
    if not spreads:
        return None
    visits = [side["visits"] for side in runs.values() if side.get("visits")]
    unit = f"{min(visits)} visits a side" if visits and min(visits) > 1 else "samples"
    spread = 100 * (math.exp(float(np.median(spreads))) - 1)
    return f"a cell's {unit} spread by a median {spread:.{0 if spread >= 1 else 1}f} % (one sd)"


def inconclusive_advice(table: pd.DataFrame, threshold: float, width: int | None = None) -> list[str]:
    """When more than 5 % of the cells are inconclusive: why (the noise measured in the runs, the
    load recorded in them, separate runs against segbench ab) and the exact next command."""
    inconclusive = table[table["verdict"] == stats.INCONCLUSIVE]
    if len(table) == 0 or len(inconclusive) <= INCONCLUSIVE_ADVICE_SHARE * len(table):
        return []
    runs = table.attrs.get("runs", {})
    interleaved = all(side.get("source") == "segbench ab" for side in runs.values()) and bool(runs)
    reasons = inconclusive["reason"].value_counts() if "reason" in inconclusive else pd.Series(dtype=int)
    why = [
        f"{int(reasons[r])} {what}"
        for r, what in (
            (BEYOND_THE_BAND, f"intervals reach beyond ±{threshold:.0%}"),
            (NOT_RESOLVED, "changes the test cannot resolve"),
            (UNDER_THE_FLOOR, "changes within the noise floor"),
            (NO_INTERVAL, "cells with too few samples"),
        )
        if reasons.get(r, 0)
    ]
    parts = [f"why {len(inconclusive)} inconclusive: " + ", ".join(why)]
    spread = _spread_text(runs)
    if spread:
        parts.append(spread)
    if "noise_floor" in table and table["noise_floor"].notna().any():
        floors = table.groupby("mode")["noise_floor"].first().dropna()
        worst = floors.idxmax()
        parts.append(f"the runs drifted apart by up to {100 * (floors[worst] - 1):.0f} % ({worst})")
    loads = [side["load"] for side in runs.values() if side.get("load")]
    cpus = next((side["cpus"] for side in runs.values() if side.get("cpus")), None)
    if loads:
        on = f" on {cpus} CPUs" if cpus else ""
        parts.append(f"load average {min(lo for lo, _ in loads):.1f}-{max(hi for _, hi in loads):.1f}{on}")
    else:
        parts.append("no load average recorded")
    if interleaved:
        parts.append("already interleaved: more builds a side narrow the intervals")
    else:
        parts.append("separate runs are weaker than segbench ab (both sides interleaved)")
    lines = [tables.wrap("; ".join(parts) + ".", width, indent="  ")]
    commands = next_commands(table, inconclusive)
    cells = f"{len(inconclusive)} cell{'s' if len(inconclusive) > 1 else ''}"
    lines.append(f"next, {cells} measured again, interleaved:" if commands else "")
    for command, count in commands:
        if count != len(inconclusive):
            lines[-1] = f"next, {cells} measured again, interleaved (the grid selects {count}):"
        lines.append(_wrap_command(command, width))
    missing = [
        name for name, side in (("OLD", runs.get("old", {})), ("NEW", runs.get("new", {}))) if not side.get("commit")
    ]
    if commands and missing:
        note = f"({' and '.join(missing)} recorded no commit: give the ref or directory that was measured)"
        lines.append(tables.wrap(note, width))
    if any(side.get("dirty") for side in runs.values()):
        lines.append(tables.wrap("(a run had uncommitted changes: give WORKTREE or a directory for its side)", width))
    return [line for line in lines if line]


def _wrap_command(command: str, width: int | None = None) -> str:
    """A command in lines of ``width`` columns that a shell still reads as one (a backslash ends each)."""
    width = width or tables.terminal_width()
    words, lines, line = command.split(" "), [], "  "
    # keep an option with its value
    tokens = []
    for word in words:
        if tokens and tokens[-1].startswith("--") and " " not in tokens[-1] and not word.startswith("--"):
            tokens[-1] += " " + word
        else:
            tokens.append(word)
    for token in tokens:
        if len(line) + len(token) + 3 > width and line.strip():
            lines.append(line + " \\")
            line = "    "
        line += ("" if line.strip() == "" else " ") + token
    lines.append(line)
    return "\n".join(lines)


def print_verdicts(
    table: pd.DataFrame,
    fmt: str,
    threshold: float,
    alpha: float,
    columns: Sequence[str] | None = None,
    *,
    show_all: bool = False,
    width: int | None = None,
) -> int:
    """Print the answer first (the verdict line), then the slower cells, the faster ones, the
    inconclusive ones and, with ``show_all``, those with no change (in a terminal: as many as fit
    15 lines when none is slower, the rest counted); then, when many are inconclusive, why and
    what to run next. CSV and Markdown list every cell. The exit status: 1 if any cell is slower."""
    if table.empty:
        raise ValueError("the two runs have no successful cell in common")
    width = width or tables.terminal_width()
    for line in table.attrs.get("machines", []):
        print(line if fmt != "csv" else f"# {line}", file=sys.stderr if fmt == "csv" else sys.stdout)
    ordered = by_verdict(table)
    answer = verdict_line(table, threshold, alpha)
    advice = inconclusive_advice(table, threshold, width if fmt == "terminal" else 100)
    status = 1 if (table["verdict"] == stats.SLOWER).any() else 0
    if fmt == "csv":  # the table alone on stdout, every cell
        print(render(verdict_table(ordered, fmt), fmt, columns))
        print(answer, file=sys.stderr)
        for line in advice:
            print(line, file=sys.stderr)
        return status
    if fmt == "markdown":
        print(answer + "\n")
        print(render(verdict_table(ordered, fmt), fmt, columns))
        if advice:
            print("\n```\n" + "\n".join(advice) + "\n```")
        return status
    print(_terminal_verdicts(ordered, answer, advice, columns, show_all, width))
    return status


def _fitting(table: pd.DataFrame, width: int) -> list[str]:
    """The verdict table's columns that fit ``width``: the cell, its verdict and change always, then
    the times, p and n as far as they fit (all of them: --format csv)."""
    chosen = [c for c in table.columns if c in ("cell", "verdict", "differs", CHANGE)]
    for column in ("old -> new", "p", "n"):
        if widest_line(tables.render(table, "terminal", columns=[*chosen, column])) <= width:
            chosen.append(column)
    return chosen


def widest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _terminal_verdicts(
    ordered: pd.DataFrame,
    answer: str,
    advice: list[str],
    columns: Sequence[str] | None,
    show_all: bool,
    width: int,
) -> str:
    """The terminal's text: the verdict line, the table of the cells that changed or may have, the
    count of those left out, the advice."""
    shapes = ", ".join(f"C={c} {d}" for c, d in sorted(set(zip(ordered["classes"], ordered["dtype"], strict=True))))
    head = tables.wrap(f"{answer}; cells at {shapes}; change: new/old - 1", width)
    slower = int((ordered["verdict"] == stats.SLOWER).sum())
    listed = ordered if show_all else ordered[ordered["verdict"] != stats.NO_CHANGE]

    def text(shown: int) -> str:
        rows = listed.iloc[:shown]
        parts = [head]
        if len(rows):
            shown_table = verdict_table(rows, "terminal", width)
            parts.append(render(shown_table, "terminal", columns or _fitting(shown_table, width), width=width))
        left = ordered.iloc[len(rows) :]["verdict"].value_counts()
        if len(left):
            hidden = ", ".join(
                f"{int(left[v])} {'more ' if v != stats.NO_CHANGE and len(rows) else ''}"
                f"{('cell' if left[v] == 1 else 'cells') + ' with no change' if v == stats.NO_CHANGE else v}"
                for v in DISPLAY_ORDER
                if left.get(v, 0)
            )
            parts.append(tables.wrap(f"... and {hidden} (--all shows them)", width))
        return "\n".join([*parts, *advice])

    if show_all:
        return text(len(listed))
    # Every slower cell; of the others as many as keep the output within its lines.
    shown = min(len(listed), slower + MIN_ROWS)
    budget = LINES_WITHOUT_SLOWER + (slower + 2 if slower else 0)
    while shown < len(listed) and len(text(shown + 1).splitlines()) <= budget:
        shown += 1
    while shown > slower and len(text(shown).splitlines()) > budget:
        shown -= 1
    return text(shown)


def _command(args: argparse.Namespace) -> int:
    try:
        return _compare(args)
    except DifferentMachinesError as error:
        print("\n".join([f"segbench compare: {error.message}", *error.lines]))
        print(
            "segbench compare: no verdict (exit 3): a difference between machines is not a regression; "
            "compare runs of one machine, or pass --across-machines to see the ratios anyway",
            file=sys.stderr,
        )
        return NOT_COMPARABLE


def _compare(args: argparse.Namespace) -> int:
    from segbench.results import importers

    several = len(args.results) == 1 and len(importers.runs_in(args.results[0])) > 1
    if len(args.results) == 1 and not several:
        frame = importers.runs_in(args.results[0])[0][1]
        check_duplicates(frame, args.results[0])
        header = _one_run_header(frame, args.results[0], args.across_machines)
        if header:  # in CSV, on stderr, so that the table stays a table
            print("\n".join(header), file=sys.stderr if args.format == "csv" else sys.stdout)
    if len(args.results) == 1 and args.formulations and not several:
        for pass_ in ("forward", "forward+backward"):
            table = formulation_table(frame, pass_)
            if len(table):
                print(_heading(f"{pass_}, {table.attrs['shape']}: formulations side by side", args.format))
                print(render(table, args.format, _selected(table, args.columns)))
        return 0
    if len(args.results) == 1 and not several:
        print(summary(frame, fmt=args.format, columns=args.columns, baseline=args.baseline))
        return 0
    if len(args.results) > 2:
        raise ValueError(f"compare takes RESULTS or OLD NEW, got {len(args.results)} paths")
    # segbench runs, pytest-benchmark JSON or its .benchmarks folder, asv's results directory
    (old_name, old), (new_name, new) = importers.pick_runs(args.results)
    print(f"OLD = {old_name}, NEW = {new_name}", file=sys.stderr)
    table = compare_runs(old, new, args.threshold, args.alpha, across_machines=args.across_machines)
    for path, frame in zip((old_name, new_name), (old, new), strict=True):
        note = partial_note(frame)
        if note:
            print(f"{path}: {note}", file=sys.stderr)
    return print_verdicts(table, args.format, args.threshold, args.alpha, args.columns, show_all=args.all)


def _one_run_header(frame: pd.DataFrame, path: str, across_machines: bool) -> list[str]:
    """For one table: PARTIAL if shards are missing; refused if its rows come from different
    machines (a merge --across-machines), unless --across-machines."""
    by_run = {str(run): part for run, part in frame.groupby(frame["run_id"].fillna("?"), sort=False)}
    lines = machine_check(
        by_run if len(by_run) > 1 else {path: frame},
        across_machines=across_machines,
        what="one table of their modes mixes machines",
    )
    note = partial_note(frame)
    return [*lines, *([f"{path}: {note}"] if note else [])]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare modes within a run (RESULTS), or two runs (OLD NEW; exit 1 on a slowdown, "
        "3 when they come from different machines)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "results",
        nargs="+",
        help="run directory, .parquet, .csv or .jsonl (one, or OLD NEW); also pytest-benchmark's JSON or its "
        ".benchmarks folder and asv's results directory (a folder of several runs alone: its last two; PATH@ID "
        "picks the run whose name holds ID)",
    )
    options.add_output_options(parser)
    options.add_verdict_options(parser)
    parser.add_argument(
        "--formulations", action="store_true", help="one run: formulations side by side at the largest shape"
    )
    options.add_machine_option(
        parser,
        "give verdicts anyway, with what differs above them and in each row (without it: the differences, "
        "no verdict, exit 3)",
    )
    parser.add_argument(
        "--baseline", default="eager", metavar="MODE", help="one run: speedups over this mode (default eager; e.g. xla)"
    )
    parser.set_defaults(handler=_command)
