"""``segbench compare``: XLA and tf.function against eager (and numpy) in one run; or two runs.

One run: per pass, a row per loss x formulation x shape with eager's time, each mode's speedup
over eager and over numpy, the best mode and its fraction of the memory-read ceiling; then compile
times and the break-even number of calls after which a compiled mode has paid for compiling.

Two runs (OLD NEW): each cell present in both gets a verdict from its raw samples: slower, faster,
no change (its interval inside the threshold band) or inconclusive (a statistical test *and* the
threshold; see segbench.verdicts.stats), with the change NEW/OLD - 1 in percent and its interval; a change
must also exceed the noise floor of the comparison (five robust standard deviations of the
log-ratios of its mode's cells for separate runs, three for the two sides of one ``segbench ab``);
for two commits measured in alternation on one machine, see
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
import importlib
import json
import math
import sys

import numpy as np
import pandas as pd

from segbench.cli import options
from segbench.measurement import environment
from segbench.presentation.run_tables import formulation_table, render, section_heading, selected_columns, summary
from segbench.presentation.tables import cell_label
from segbench.presentation.verdict_tables import print_verdicts
from segbench.results.schema import KEY_COLUMNS, latest_successful
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
    joined = latest_successful(old)[columns].merge(
        latest_successful(new)[columns], on=list(KEY_COLUMNS), suffixes=("_old", "_new")
    )
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
    sigmas = NOISE_FLOOR_SIGMAS if interleaved(old, new) else SEPARATE_RUNS_NOISE_FLOOR_SIGMAS
    table = _hold_to_the_noise_floor(table, sigmas)
    table["reason"] = _reasons(table, threshold)
    table = table.drop(columns="held_by_floor")
    table = table.sort_values("ratio", ascending=False).reset_index(drop=True)
    table.attrs["machines"] = header + ([unknown] if unknown else [])
    table.attrs["runs"] = {side: _run_context(frame) for side, frame in zip(("old", "new"), (old, new), strict=True)}
    return table


def _reasons(table: pd.DataFrame, threshold: float) -> list[str]:
    """Why each inconclusive cell is inconclusive ("" for the others)."""
    reasons = []
    for _, row in table.iterrows():
        if row["verdict"] != stats.INCONCLUSIVE:
            reasons.append("")
        elif pd.isna(row["ratio_low"]):
            reasons.append(stats.NO_INTERVAL)
        elif stats.within_band(row["ratio"], row["ratio"], threshold):
            reasons.append(stats.BEYOND_THE_BAND)
        elif row.get("held_by_floor", False):
            reasons.append(stats.UNDER_THE_FLOOR)
        else:
            reasons.append(stats.NOT_RESOLVED)
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
    for _, row in latest_successful(frame).iterrows() if len(frame) else []:
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
"""The floor of two runs measured interleaved (``segbench ab``): they share the machine's drift."""
SEPARATE_RUNS_NOISE_FLOOR_SIGMAS = 5.0
"""The floor of two separate runs. Their cells' log-ratios have heavier tails than a normal
distribution: 21 A/A pairs of quick runs on a quiet 2-core AMD EPYC Zen 5 (8 runs in a row,
docs/statistics.md) flagged 15 cells in 8 pairs at 3 robust sd, 3 in 2 pairs at 4, none at 4.5 or
5; the runs that sat next to each other in time agreed at 3, the ones minutes apart did not."""
MIN_CELLS_FOR_A_FLOOR = 8


def interleaved(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    """Whether the two runs were measured in alternation: both written by ``segbench ab``, their
    measuring times overlapping (two sides of one ``ab``, not two ``ab`` runs of different days)."""
    spans = []
    for frame in (old, new):
        if "source" not in frame or set(frame["source"].dropna().astype(str)) != {"segbench ab"}:
            return False
        start = pd.to_datetime(frame.get("started_at"), errors="coerce", utc=True)
        end = pd.to_datetime(frame.get("finished_at"), errors="coerce", utc=True)
        if start is None or end is None or start.isna().all() or end.isna().all():
            return False
        spans.append((start.min(), end.max()))
    (a_start, a_end), (b_start, b_end) = spans
    return bool(a_start <= b_end and b_start <= a_end)


def _hold_to_the_noise_floor(table: pd.DataFrame, sigmas: float = NOISE_FLOOR_SIGMAS) -> pd.DataFrame:
    """A slower or faster cell must also stand out from how much every cell of its mode moved.

    Two runs differ in every cell a little (the machine drifts between them); the spread of the
    cells' log-ratios within a mode, as a robust standard deviation (1.4826 x the median absolute
    deviation around their median), measures that. A change under ``sigmas`` of them (3 for runs
    measured interleaved, 5 for separate runs) is ``inconclusive``. A change of the code that moves
    every cell of a mode alike moves their median, not their spread, so it is still found.
    """
    table = table.copy()
    log_ratio = np.log(table["ratio"])
    spread = pd.Series(np.nan, index=table.index)
    for _, cells in log_ratio.groupby(table["mode"]):
        if len(cells) >= MIN_CELLS_FOR_A_FLOOR:
            spread[cells.index] = 1.4826 * (cells - cells.median()).abs().median()
    if len(log_ratio) >= MIN_CELLS_FOR_A_FLOOR:  # modes with too few cells: the whole run's spread
        spread = spread.fillna(1.4826 * (log_ratio - log_ratio.median()).abs().median())
    table["noise_floor"] = np.exp(sigmas * spread)
    within = log_ratio.abs() < sigmas * spread
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
                print(section_heading(f"{pass_}, {table.attrs['shape']}: formulations side by side", args.format))
                print(render(table, args.format, selected_columns(table, args.columns)))
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


# Names that lived here before the tables moved to segbench.presentation (code written against
# segbench.compare keeps working; new code imports them from where they are now).
_MOVED = {
    **dict.fromkeys(
        (
            "CEILING_SLACK",
            "DROP_FIRST",
            "SHAPE_COLUMNS",
            "break_even_calls",
            "brief",
            "ceiling_table",
            "ceiling_warning",
            "compile_table",
            "failures",
            "readable_compile_table",
            "speedup_table",
        ),
        "segbench.presentation.run_tables",
    ),
    **dict.fromkeys(
        ("SHORT_MODE", "compact_cell_label", "human_calls", "human_time", "short_cell_label"),
        "segbench.presentation.tables",
    ),
    **dict.fromkeys(("BEYOND_THE_BAND", "NOT_RESOLVED", "NO_INTERVAL", "UNDER_THE_FLOOR"), "segbench.verdicts.stats"),
    **dict.fromkeys(
        (
            "CHANGE",
            "DISPLAY_ORDER",
            "INCONCLUSIVE_ADVICE_SHARE",
            "LINES_WITHOUT_SLOWER",
            "MIN_ROWS",
            "OPTION",
            "by_verdict",
            "change_text",
            "inconclusive_advice",
            "next_commands",
            "percent",
            "verdict_counts",
            "verdict_line",
            "verdict_table",
            "widest_line",
        ),
        "segbench.presentation.verdict_tables",
    ),
}


def __getattr__(name: str) -> object:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
