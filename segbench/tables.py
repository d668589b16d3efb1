"""One table style for every command: a terminal table that fits 100 columns, Markdown or CSV.

``render`` is what run, compare, values, check and ab print with. In a terminal a table wider than
:data:`WIDTH` loses columns (the least important first, as the caller ranks them) and says which,
and how to get them back: ``--columns`` picks the columns, ``--format csv`` prints them all.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

WIDTH = 100
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
    width: int = WIDTH,
    floatfmt: str = ".3g",
) -> str:
    """``table`` as ``fmt`` says. In a terminal, columns are dropped until it fits ``width``:
    those of ``drop_first`` in that order, then the rightmost; never the first column."""
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


def wrap(text: str, width: int = WIDTH) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
