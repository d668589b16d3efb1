"""One table style for every command: a terminal table that fits the terminal, Markdown or CSV.

``render`` is what run, compare, values, check and ab print with. In a terminal a table wider than
the terminal (:func:`terminal_width`: its real width, or :data:`WIDTH` when the output is not a
terminal) loses columns (the least important first, as the caller ranks them) and says which, and
how to get them back: ``--columns`` picks the columns, ``--format csv`` prints them all.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence

import pandas as pd

WIDTH = 100
"""The width of a table when the output is not a terminal (a file, a pipe, CI's log)."""
MIN_WIDTH = 40


def terminal_width() -> int:
    """The terminal's width in columns ($COLUMNS first, as shutil reads it), or :data:`WIDTH`
    where there is no terminal; never under :data:`MIN_WIDTH`."""
    columns = shutil.get_terminal_size((WIDTH, 24)).columns
    return columns if columns >= MIN_WIDTH else WIDTH


FORMATS = ("terminal", "markdown", "csv")


SHORT_PASS = {"forward": "fwd", "forward+backward": "f+b"}


def short_loss(name: str) -> str:
    """A loss name that leaves room for numbers: crossentropy -> ce."""
    return name.replace("crossentropy", "ce")


def shape_label(batch: int, height: int, width: int) -> str:
    """A shape as the tables write it: b16 512x512."""
    return f"b{batch} {height}x{width}"


def choose_columns(table: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    """The table with only ``columns``, in that order (an error names any that does not exist)."""
    if not columns:
        return table
    unknown = [c for c in columns if c not in table.columns]
    if unknown:
        raise ValueError(
            f"--columns: no column {', '.join(map(repr, unknown))} in this table; it has: {', '.join(table.columns)}"
        )
    return table[list(columns)]


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """'loss, best ms' -> ('loss', 'best ms'); None stays None."""
    if text is None:
        return None
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError(f"--columns takes comma-separated column names, got {text!r}")
    return names


def _text(table: pd.DataFrame, tablefmt: str, floatfmt: str) -> str:
    # Text cells stay as written (numbers already formatted for people are not re-aligned).
    text_columns = [i for i, dtype in enumerate(table.dtypes) if not pd.api.types.is_numeric_dtype(dtype)]
    shown = table.astype(object).where(table.notna(), None)  # missing: "-", not "nan"
    return shown.to_markdown(
        index=False, tablefmt=tablefmt, floatfmt=floatfmt, disable_numparse=text_columns, missingval="-"
    )


def render(
    table: pd.DataFrame,
    fmt: str = "terminal",
    *,
    columns: Sequence[str] | None = None,
    drop_first: Sequence[str] = (),
    width: int | None = None,
    floatfmt: str = ".3g",
) -> str:
    """``table`` as ``fmt`` says. In a terminal, columns are dropped until it fits ``width``
    (default: :func:`terminal_width`): those of ``drop_first`` in that order, then the rightmost;
    never the first column."""
    width = width or terminal_width()
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    table = choose_columns(table, columns)
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "markdown":
        return _text(table, "github", floatfmt)
    text = _text(table, "simple", floatfmt)
    if columns or _widest(text) <= width:
        return text
    order = [c for c in drop_first if c in table.columns]
    order += [c for c in reversed(table.columns[1:]) if c not in order]
    hidden: list[str] = []
    for column in order:
        hidden.append(column)
        text = _text(table.drop(columns=hidden), "simple", floatfmt)
        if _widest(text) <= width:
            break
    note = f"(not shown to fit {width} columns: {', '.join(hidden)}; choose with --columns, all with --format csv)"
    return text + "\n" + wrap(note, width)


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def wrap(text: str, width: int | None = None, *, indent: str = "") -> str:
    """``text`` in lines of at most ``width`` columns (default: :func:`terminal_width`); lines after
    the first start with ``indent``."""
    import textwrap

    return "\n".join(
        textwrap.wrap(
            text, width or terminal_width(), subsequent_indent=indent, break_on_hyphens=False, break_long_words=False
        )
    )


def cell_label(row: pd.Series | dict) -> str:
    """A short name for a cell that a person reads at a glance."""
    return (
        f"{row['loss']}/{row['formulation']}/{row['mode']}/{row['pass']}/"
        f"b{row['batch']}/{row['height']}x{row['width']}/c{row['classes']}/{row['dtype']}"
    )


def short_cell_label(row: pd.Series | dict) -> str:
    """A cell's name within 50 columns: ce/blocked/xla/f+b b16 512x512 (classes, dtype left out)."""
    return f"{short_loss(row['loss'])}/{row['formulation']}/{row['mode']}/{SHORT_PASS[row['pass']]} " + shape_label(
        row["batch"], row["height"], row["width"]
    )


def compact_cell_label(row: pd.Series | dict) -> str:
    """A cell's name for a narrow terminal: missing_annotation_ce/ref/fn/f+b b1 64x64."""
    return (
        f"{short_loss(row['loss'])}/{row['formulation'][:3]}/{SHORT_MODE.get(row['mode'], row['mode'])}/"
        f"{SHORT_PASS[row['pass']]} " + shape_label(row["batch"], row["height"], row["width"])
    )


SHORT_MODE = {"function": "fn"}


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
