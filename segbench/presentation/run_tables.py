"""What one run says, as tables: each mode's speedup over eager (and numpy), compile times and the
calls until compiling paid off, formulations side by side, the read ceiling; ``summary`` prints them
all (``segbench compare RUN``) and ``brief`` is the end of ``segbench run``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from segbench.presentation import tables
from segbench.presentation.tables import cell_label, human_calls, human_time, short_cell_label
from segbench.results.schema import KEY_COLUMNS, latest_successful

SHAPE_COLUMNS = ["batch", "resolution", "classes", "dtype"]
CEILING_SLACK = 1.05
"""A cell measured above 105 % of the read ceiling means a faster read exists: the ceiling is wrong."""


def _modes_in(frame: pd.DataFrame) -> list[str]:
    from segbench.losses.registry import MODES

    present = set(frame["mode"])
    return [m for m in MODES if m in present] + sorted(present - set(MODES))


def speedup_table(frame: pd.DataFrame, pass_: str, baseline: str = "eager") -> pd.DataFrame:
    """Rows: loss, formulation, shape; columns: baseline ms, each mode's speedup, best mode."""
    ok = latest_successful(frame)
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
    ok = latest_successful(frame)
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
    ok = latest_successful(frame)
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
    ok = latest_successful(frame).dropna(subset=["ceiling_gb_per_s"])
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
    ok = latest_successful(frame)
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


def selected_columns(table: pd.DataFrame, columns: Sequence[str] | None) -> Sequence[str] | None:
    """Of the chosen columns, those this table has (None: all of them)."""
    return None if columns is None else [c for c in columns if c in table.columns]


def section_heading(text: str, fmt: str) -> str:
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
        chosen = selected_columns(table, columns)
        if chosen is not None and not chosen:
            continue
        if heading is not None:
            parts.append(section_heading(heading, fmt))
        parts.append(render(table, fmt, chosen))
    if fmt != "csv":
        warning = ceiling_warning(frame)
        if warning:
            parts.append("\n" + tables.wrap(warning))
        label = short_cell_label if terminal else cell_label
        off = frame[(frame["status"] == "ok") & (frame["within_tolerance"] == False)]  # noqa: E712 (NA-aware)
        if len(off):
            parts.append(section_heading("cells whose loss is NOT within the tolerance of the float64 oracle", fmt))
            shown = off.assign(cell=[label(r) for _, r in off.iterrows()])
            parts.append(render(shown[["cell", "loss_value", "oracle_value", "oracle_abs_diff", "oracle_rtol"]], fmt))
        bad = failures(frame)
        if len(bad):
            parts.append(section_heading("cells that did not run", fmt))
            shown = bad.assign(cell=[label(r) for _, r in bad.iterrows()])
            if terminal:
                shown["error"] = shown["error"].fillna("").str.slice(0, 40)
            parts.append(render(shown[["cell", "status", "error"]], fmt))
    return "\n".join(parts)


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
