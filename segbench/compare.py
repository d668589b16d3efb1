"""``segbench compare``: XLA and tf.function against eager (and numpy) in one run; or two runs.

One run: per pass, a row per loss x formulation x shape with eager's time, each mode's speedup
over eager and over numpy, the best mode and its fraction of the memory-read ceiling; then compile
times and the break-even number of calls after which a compiled mode has paid for compiling.

Two runs (OLD NEW): each cell present in both gets a verdict from its raw samples: slower, faster,
no change or inconclusive (a statistical test *and* the threshold; see segbench.stats), with the
ratio NEW/OLD and its interval; a change must also exceed the noise floor of the comparison
(three robust standard deviations of the log-ratios of its mode's cells). The exit status is 1
only when a cell is slower, so scripts and CI
can use it; for two commits measured in alternation on one machine, see ``segbench ab``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

from segbench import stats, tables
from segbench.results import KEY_COLUMNS

SHAPE_COLUMNS = ["batch", "resolution", "classes", "dtype"]
CEILING_SLACK = 1.05
"""A cell measured above 105 % of the read ceiling means a faster read exists: the ceiling is wrong."""


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["status"] == "ok"].copy()
    ok["resolution"] = ok["height"].astype(str) + "x" + ok["width"].astype(str)
    # Several runs of a cell (concatenated tables): the latest counts.
    return ok.sort_values("finished_at", na_position="first").drop_duplicates(KEY_COLUMNS, keep="last")


def _modes_in(frame: pd.DataFrame) -> list[str]:
    from segbench.registry import MODES

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
        from segbench.registry import MODES

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


def render(table: pd.DataFrame, fmt: str, columns: Sequence[str] | None = None) -> str:
    """A table of segbench compare, in the one style of segbench's commands (segbench.tables)."""
    return tables.render(_for_people(table, fmt), fmt, columns=columns, drop_first=DROP_FIRST)


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
    from segbench.registry import get_mode

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
    key = ["loss", "formulation", "batch", "resolution"]
    with_grad = both.set_index(key)["xla x"] if "xla x" in both else pd.Series(dtype=float)
    pays = compile_[compile_["pass"] == "forward"].set_index(key) if len(compile_) else pd.DataFrame()
    rows = []
    for _, row in forward.iterrows():
        index = tuple(row[k] for k in key)
        rows.append(
            {
                "loss": f"{tables.short_loss(row['loss'])}/{row['formulation'][:3]}",
                "shape": tables.shape_label(row["batch"], *row["resolution"].split("x")),
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
    old: pd.DataFrame, new: pd.DataFrame, threshold: float = stats.DEFAULT_THRESHOLD, alpha: float = stats.DEFAULT_ALPHA
) -> pd.DataFrame:
    """Cells present in both runs, each with a verdict from its raw samples (see segbench.stats)."""
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise ValueError(f"--threshold must be a positive fraction (0.1 = 10%), got {threshold}")
    columns = [*KEY_COLUMNS, "median_s", "raw_times_s", "visit_medians_s"]
    joined = _ok(old)[columns].merge(_ok(new)[columns], on=list(KEY_COLUMNS), suffixes=("_old", "_new"))
    records = []
    for _, row in joined.iterrows():
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
            }
        )
    table = pd.DataFrame(records, columns=[*KEY_COLUMNS, *VERDICT_COLUMNS])
    table = _hold_to_the_noise_floor(table)
    return table.sort_values("ratio", ascending=False).reset_index(drop=True)


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
]


def short_cell_label(row: pd.Series | dict) -> str:
    """A cell's name within 50 columns: ce/blocked/xla/f+b b16 512x512 (classes, dtype left out)."""
    return (
        f"{tables.short_loss(row['loss'])}/{row['formulation']}/{row['mode']}/{tables.SHORT_PASS[row['pass']]} "
        + tables.shape_label(row["batch"], row["height"], row["width"])
    )


def verdict_table(table: pd.DataFrame, fmt: str = "csv") -> pd.DataFrame:
    """compare_runs' table as people read it: one label per cell, times in ms, the ratio's interval.
    In a terminal the label is short, and the classes and dtype, if one value, go to the heading."""
    interval = [
        "n/a" if math.isnan(lo) else f"{lo:.3f}-{hi:.3f}"
        for lo, hi in zip(table["ratio_low"], table["ratio_high"], strict=True)
    ]
    if fmt != "terminal":
        return pd.DataFrame(
            {
                "cell": [cell_label(row) for _, row in table.iterrows()],
                "old ms": table["median_s_old"] * 1e3,
                "new ms": table["median_s_new"] * 1e3,
                "new/old": table["ratio"],
                f"{stats.CONFIDENCE:.0%} interval": interval,
                "p": table["p_value"],
                "n": table["samples"],
                "verdict": table["verdict"],
            }
        )
    # In a terminal the verdict comes second, so that a narrow table keeps it (n, p, then the
    # times are what goes first when the cell names are long).
    return pd.DataFrame(
        {
            "cell": [short_cell_label(row) for _, row in table.iterrows()],
            "verdict": table["verdict"],
            "new/old": table["ratio"],
            f"{stats.CONFIDENCE:.0%} interval": interval,
            "old": [human_time(v) for v in table["median_s_old"]],
            "new": [human_time(v) for v in table["median_s_new"]],
            "p": table["p_value"],
            "n": table["samples"],
        }
    )


def verdict_counts(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    return ", ".join(f"{int(counts.get(v, 0))} {v}" for v in stats.VERDICTS)


def print_verdicts(
    table: pd.DataFrame, fmt: str, threshold: float, alpha: float, columns: Sequence[str] | None = None
) -> int:
    """Print the verdicts and a one-line summary; the exit status: 1 if any cell is slower."""
    if table.empty:
        raise ValueError("the two runs have no successful cell in common")
    if fmt == "terminal":
        shapes = ", ".join(f"C={c} {d}" for c, d in sorted(set(zip(table["classes"], table["dtype"], strict=True))))
        print(f"cells at {shapes}; new/old > 1 is slower")
    print(render(verdict_table(table, fmt), fmt, columns))
    print(
        f"\n{len(table)} cells compared: {verdict_counts(table)} "
        f"(threshold {threshold:.0%}, alpha {alpha:g}; tested on per-visit medians where both sides have visits, "
        "else on the samples)",
        file=sys.stderr,
    )
    return 1 if (table["verdict"] == stats.SLOWER).any() else 0


def _command(args: argparse.Namespace) -> int:
    from segbench import results

    if len(args.results) == 1 and args.formulations:
        frame = results.load(args.results[0])
        for pass_ in ("forward", "forward+backward"):
            table = formulation_table(frame, pass_)
            if len(table):
                print(_heading(f"{pass_}, {table.attrs['shape']}: formulations side by side", args.format))
                print(render(table, args.format, _selected(table, args.columns)))
        return 0
    if len(args.results) == 1:
        print(summary(results.load(args.results[0]), fmt=args.format, columns=args.columns, baseline=args.baseline))
        return 0
    if len(args.results) != 2:
        raise ValueError(f"compare takes RESULTS or OLD NEW, got {len(args.results)} paths")
    table = compare_runs(results.load(args.results[0]), results.load(args.results[1]), args.threshold, args.alpha)
    return print_verdicts(table, args.format, args.threshold, args.alpha, args.columns)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """--format and --columns, the same for every command that prints a table."""
    parser.add_argument(
        "--format",
        choices=tables.FORMATS,
        default="terminal",
        help="terminal (fits 100 columns; wide tables lose their least important columns), markdown or csv",
    )
    parser.add_argument(
        "--columns",
        type=tables.parse_columns,
        help="comma-separated columns to show, by their headings (e.g. 'loss,shape,best,time')",
    )


def add_verdict_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        type=float,
        default=stats.DEFAULT_THRESHOLD,
        help=f"smallest relative change that counts (default {stats.DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=stats.DEFAULT_ALPHA,
        help=f"significance level of the per-cell test (default {stats.DEFAULT_ALPHA})",
    )


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare modes within a run (RESULTS), or two runs (OLD NEW; exit 1 on a slowdown)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", nargs="+", help="run directory, .parquet, .csv or .jsonl (one, or OLD NEW)")
    add_output_options(parser)
    add_verdict_options(parser)
    parser.add_argument(
        "--formulations", action="store_true", help="one run: formulations side by side at the largest shape"
    )
    parser.add_argument(
        "--baseline", default="eager", metavar="MODE", help="one run: speedups over this mode (default eager; e.g. xla)"
    )
    parser.set_defaults(handler=_command)
