"""Verdicts of two runs as people read them: the answer first (the counts, SLOWER in capitals),
then the slower cells, the faster, the inconclusive, the rest counted; each change in percent with
its interval ("+14 % (11-16 %)"); when many cells are inconclusive, why, and the ``segbench ab``
command that measures just those again. Used by compare, ab and the pytest gate.
"""

from __future__ import annotations

import itertools
import math
import shlex
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd

from segbench.presentation import tables
from segbench.presentation.run_tables import render
from segbench.presentation.tables import cell_label, compact_cell_label, human_time, short_cell_label
from segbench.verdicts import stats


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
    refs = (
        table.attrs.get("refs")
        or [  # segbench ab names its sides as it was given them
            (side.get("commit") or placeholder)[:10] for side, placeholder in ((old, "OLD_COMMIT"), (new, "NEW_COMMIT"))
        ]
    )
    profile = old.get("profile") if old.get("profile") == new.get("profile") else None
    # quoted for a shell: a side given as a directory may hold a space
    base = ["segbench", "ab", *map(shlex.quote, refs), *(["--profile", profile] if profile else [])]
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
            (stats.BEYOND_THE_BAND, f"intervals reach beyond ±{threshold:.0%}"),
            (stats.NOT_RESOLVED, "changes the test cannot resolve"),
            (stats.UNDER_THE_FLOOR, "changes within the noise floor"),
            (stats.NO_INTERVAL, "cells with too few samples"),
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
        parts.append(f"a change must pass a noise floor of up to {100 * (floors[worst] - 1):.0f} % ({worst})")
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
    if commands and missing and not table.attrs.get("refs"):
        note = f"({' and '.join(missing)} recorded no commit: give the ref or directory that was measured)"
        lines.append(tables.wrap(note, width))
    if any(side.get("dirty") for side in runs.values()) and not table.attrs.get("refs"):
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
