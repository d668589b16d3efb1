"""The options commands share, defined once: the grid (--profile, --loss, ... --dtype), what a
measuring command takes (--device, --out, --quiet, --cell-timeout), the output (--format,
--columns), the verdicts' (--threshold, --alpha, --all), --across-machines, and --timeout.

Each command's module registers its own subcommand (``register``) with these.
"""

from __future__ import annotations

import argparse

from segbench.measurement.sweep import (
    PROFILES,
    Profile,
    Sweep,
    get_profile,
    parse_ints,
    parse_names,
    parse_resolutions,
)
from segbench.presentation import tables
from segbench.verdicts import stats


def parse_time_limit(text: str | float | None) -> float | None:
    """``--cell-timeout``: seconds (> 0), or 0 / "none" for no limit; None keeps the default."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    if text.strip().lower() in ("0", "none", "off"):
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"--cell-timeout takes seconds > 0, or 0/none for no limit, got {text!r}")
    return value


GRID_OPTIONS = {  # sweep field: (option, parser)
    "losses": ("loss", parse_names),
    "formulations": ("formulation", parse_names),
    "modes": ("mode", parse_names),
    "passes": ("pass", parse_names),
    "batches": ("batch", parse_ints),
    "resolutions": ("res", lambda _, text: parse_resolutions(text)),
    "classes": ("classes", parse_ints),
    "dtypes": ("dtype", parse_names),
}


def given_grid(args: argparse.Namespace) -> dict[str, tuple]:
    """The sweep fields the grid options on the command line set, parsed (only those given)."""
    changes = {}
    for field, (option, parse) in GRID_OPTIONS.items():
        text = getattr(args, "passes" if option == "pass" else option)
        if text is not None:
            values = parse(option, text)
            _no_repeats(option, values)
            changes[field] = values
    return changes


def sweep_from_args(args: argparse.Namespace) -> tuple[Profile, Sweep]:
    """The profile and the sweep the grid options ask for; a bad value is a ValueError naming its option."""
    profile = get_profile(args.profile)
    changes = given_grid(args)
    for field, values in changes.items():
        try:
            profile.sweep.replace(**{field: values})  # validated one option at a time, to name it
        except ValueError as error:
            raise ValueError(f"--{GRID_OPTIONS[field][0]}: {error}") from None
    return profile, profile.resolved_sweep().replace(**changes)


def _no_repeats(option: str, values: tuple) -> None:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"--{option} lists {', '.join(repeated)} more than once: each cell is measured once")


def add_grid_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=list(PROFILES), help="named sweep (default: $SEGBENCH_PROFILE or default)")
    parser.add_argument("--loss", help="comma-separated losses")
    parser.add_argument("--formulation", help="comma-separated formulations")
    parser.add_argument("--mode", help="comma-separated modes")
    parser.add_argument("--pass", dest="passes", help="forward, forward+backward (comma-separated)")
    parser.add_argument("--batch", help="comma-separated batch sizes, e.g. 1,8,32")
    parser.add_argument("--res", help="comma-separated resolutions: N or HxW, e.g. 128,256,512x1024")
    parser.add_argument("--classes", help="comma-separated class counts, e.g. 4,16,32")
    parser.add_argument("--dtype", help="comma-separated dtypes: float32, float16, bfloat16, float64")


def add_measuring_options(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The options every command that measures shares (segbench run, segbench ab)."""
    parser.add_argument("--device", default="auto", help="auto (first GPU, else CPU), cpu, gpu or gpu:N")
    parser.add_argument("--out", help=out_help)
    add_output_options(parser)  # --format, --columns: the same as segbench compare's
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--cell-timeout",
        metavar="SECONDS",
        help="stop a cell's visit after this long and record it as timeout (default: from the profile's "
        "budget and the cell's size, about 90 s at the default profile's largest shape; 0 or none: no limit)",
    )


def add_machine_option(parser: argparse.ArgumentParser, what: str) -> None:
    """--across-machines, the same for compare, ab, merge and report."""
    parser.add_argument(
        "--across-machines",
        action="store_true",
        help=f"runs from different machines or software versions (segbench.measurement.environment.IDENTITY): {what}",
    )


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
    parser.add_argument(
        "--all",
        action="store_true",
        help="in a terminal, list every cell (by default: the slower, faster and inconclusive ones that fit, "
        "and a count of the rest)",
    )


def time_limit(args: argparse.Namespace, default: float) -> float | None:
    """--timeout: seconds (> 0), or 0/none for no limit; the default when not given."""
    text = getattr(args, "timeout", None)
    if text is None:
        return default
    try:
        value = parse_time_limit(text)
    except ValueError:
        raise ValueError(f"--timeout takes seconds > 0, or 0/none for no limit, got {text!r}") from None
    return value or None


def add_timeout_option(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        help=f"stop a user loss's evaluation after this long, as a failure naming it (default {default:g} s; "
        "0 or none: no limit)",
    )
