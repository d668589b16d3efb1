"""``segbench report``: figures a person would rather look at than read, as PNG files and one HTML page.

- time per call, one panel per shape (batch and resolution never merged), on a log axis: a dot per
  mode for each loss and formulation at the median, its bar the quartiles [q1, q3] of the cell's
  raw per-call times (``raw_times_s``); a cell a mode does not run says why (a formulation for the
  graph modes only, a loss without a numpy implementation, the row's status and error);
- XLA's speedup over eager per shape, forward and forward+backward, on one log axis shared by the
  panels, each with its 95 % interval (segbench.verdicts.stats: by visit medians, else a bootstrap);
- a roofline: every cell's achieved bandwidth against the bytes a call moves, log-log, with the
  measured read ceiling of each shape drawn as a line.

Every figure carries the run's identity (device, TensorFlow, profile, commit) in its footer, and
its legend outside the axes. The page adds the environment, the speedup tables and the first-call
and break-even table.

Runs from different machines or software versions (segbench.measurement.environment.IDENTITY) are not drawn
in one report unless ``--across-machines``; then the page and every footer say what differs. A
table holding a cell twice is refused. A run missing shards of its sweep is marked PARTIAL.

``--out`` may hold other files: the report replaces only what it wrote itself (listed in
``.segbench-report.json`` there) and refuses to overwrite a file of the same name it did not write.
"""

from __future__ import annotations

import argparse
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from segbench.cli import options
from segbench.measurement import environment
from segbench.presentation import run_tables, tables
from segbench.verdicts import compare, stats

COLORS = {"numpy": "tab:green", "eager": "tab:blue", "function": "tab:orange", "xla": "tab:red"}
PASS_COLORS = {"forward": "tab:purple", "forward+backward": "tab:olive"}
PANEL_COLUMNS = 2


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["status"] == "ok"].copy()
    return _label(ok)


def _label(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    rows["pixels"] = rows["batch"] * rows["height"] * rows["width"]
    rows["shape"] = [
        f"batch {b}, {h}x{w}" for b, h, w in zip(rows["batch"], rows["height"], rows["width"], strict=True)
    ]
    rows["case"] = [f"{tables.short_loss(l)} / {f}" for l, f in zip(rows["loss"], rows["formulation"], strict=True)]  # noqa: E741
    return rows.sort_values(["pixels", "batch"], kind="stable")


def samples(value: object) -> np.ndarray:
    """A cell's per-call times (``raw_times_s``) or visit medians, stored as a list or JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return np.array([])
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):  # None, NaN, pd.NA
        return np.array([])
    try:
        array = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return np.array([])
    return array[np.isfinite(array) & (array > 0)]


def quartiles(row: pd.Series) -> tuple[float, float, float]:
    """(q1, median, q3) of the cell's raw per-call times in seconds: the interval the time figures
    draw. Without raw samples, the median alone (NaN quartiles): no interval is drawn rather than
    one made up from the IQR's width."""
    times = samples(row.get("raw_times_s"))
    if times.size:
        q1, median, q3 = np.percentile(times, [25, 50, 75])
        return float(q1), float(median), float(q3)
    return math.nan, float(row["median_s"]), math.nan


def _values(frame: pd.DataFrame, column: str) -> str:
    values = sorted(frame[column].dropna().astype(str).unique()) if column in frame else []
    return ", ".join(values) if values else "unknown"


def identity(frame: pd.DataFrame) -> str:
    """One line naming the run: device, TensorFlow, profile, commit (marked if dirty), run id; and
    PARTIAL where shards are missing, what differs where its runs come from different machines."""
    commits = sorted(frame["git_commit"].dropna().astype(str).unique())
    dirty = frame["git_dirty"].fillna(False).astype(bool).any() if "git_dirty" in frame else False
    commit = ", ".join(c[:10] for c in commits) or "unknown commit"
    line = (
        f"{_values(frame, 'device_name')} | TensorFlow {_values(frame, 'tensorflow_version')} | "
        f"profile {_values(frame, 'profile')} | commit {commit}{' (uncommitted changes)' if dirty else ''} | "
        f"run {_values(frame, 'run_id')}"
    )
    differing = [c for c, _ in environment.identity_differences({"": frame})]
    if differing:
        line += " | ACROSS MACHINES, differing in " + ", ".join(environment.IDENTITY[c] for c in differing)
    missing = compare.missing_shards(frame)
    if missing:
        line += f" | PARTIAL: shard(s) {', '.join(missing)} missing"
    return line


def _figure(plt, panels: int, title: str, frame: pd.DataFrame, panel_height: float = 3.2, sharex: bool = False):
    cols = min(PANEL_COLUMNS, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(6.2 * cols + 2.2, panel_height * rows + 1.0),
        squeeze=False,
        layout="constrained",
        sharex=sharex,
    )
    fig.suptitle(title)
    fig.supxlabel(identity(frame), fontsize=7, color="dimgray")  # constrained layout keeps room for it
    flat = [ax for row in axes for ax in row]
    for ax in flat[panels:]:
        ax.set_visible(False)
    return fig, flat[:panels]


def _legend_outside(fig, axes) -> None:
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        fig.legend([handles[label] for label in labels], labels, loc="outside right upper", fontsize=8)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def why_not(frame: pd.DataFrame, loss: str, formulation: str, mode: str, pass_: str, shape: str | None = None) -> str:
    """Why the results hold no time for this cell (at ``shape``, "batch B, HxW", if given): its
    row's status and error, the registry's reason (a formulation for graph modes only, a loss
    without a numpy implementation), or that the run did not measure it."""
    rows = frame[
        (frame["loss"] == loss)
        & (frame["formulation"] == formulation)
        & (frame["mode"] == mode)
        & (frame["pass"] == pass_)
        & (frame["status"] != "ok")
    ]
    if shape is not None and len(rows):
        rows = rows[_label(rows)["shape"] == shape]
    if len(rows):
        row = rows.iloc[0]
        error = "" if pd.isna(row.get("error")) else str(row.get("error")).splitlines()[0]
        error = error if len(error) <= 48 else error[:47] + "…"  # the page's table of failures holds it whole
        return f"{row['status']}: {error}" if error else str(row["status"])
    from segbench.losses import registry

    if formulation in registry.FORMULATION_MODES and not registry.runs_in(formulation, mode):
        return f"{formulation}: {' and '.join(registry.FORMULATION_MODES[formulation])} modes only"
    try:
        reason = registry.unsupported(loss, formulation, mode, pass_ == "forward+backward")
    except ValueError:  # a loss registered by a plugin this process has not loaded
        reason = None
    if reason:
        return reason.replace(f"loss {loss} has ", "").split(" (")[0]
    return "not in the results"


def _reason_label(ax, y: float, text: str, color: str) -> None:
    """A note at the left of the panel, on the row of a cell that has no value."""
    from matplotlib.transforms import blended_transform_factory

    ax.text(
        0.01, y, f"{text}", transform=blended_transform_factory(ax.transAxes, ax.transData),
        fontsize=6.5, color=color, style="italic", va="center", ha="left",
    )  # fmt: skip


def _dots(
    ax, part: pd.DataFrame, cases: list[str], key: str, groups: list[str], colors: dict, reasons: dict | None = None
) -> None:
    """A dot per group (a mode, a pass) for each case, cases top down, at ``value`` with the
    interval [``low``, ``high``] as error bars; where a group has no value for a case, the reason
    (from ``reasons[(case, group)]``) is written on its row."""
    step = 0.8 / max(1, len(groups))
    for k, group in enumerate(groups):
        rows = part[part[key] == group].set_index("case").reindex(cases)
        y = np.arange(len(cases)) + (k - (len(groups) - 1) / 2) * step
        values = rows["value"].to_numpy(dtype=float)
        low, high = rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float)
        has = np.isfinite(low) & np.isfinite(high)
        color = colors.get(group, "grey")
        ax.errorbar(
            values[has], y[has], xerr=[values[has] - low[has], high[has] - values[has]],
            fmt="o", ms=4, color=color, ecolor=color, elinewidth=1.6, capsize=2, label=group,
        )  # fmt: skip
        ax.plot(values[~has], y[~has], "o", ms=4, mfc="none", color=color)  # no interval: a hollow dot
        for case, y_k, value in zip(cases, y, values, strict=True):
            if not np.isfinite(value) and reasons is not None:
                _reason_label(ax, y_k, f"{group}: {reasons.get((case, group), 'not in the results')}", color)
    ax.set_yticks(range(len(cases)), cases, fontsize=7)
    ax.set_ylim(len(cases) - 0.5, -0.5)
    for boundary in np.arange(len(cases) - 1) + 0.5:
        ax.axhline(boundary, color="0.9", lw=0.6)


def _log_axis(ax, axis: str = "x") -> None:
    """A log axis labelled at 1, 2 and 5 times a power of ten, as plain numbers (no overlapping
    minor labels when the data span less than a decade)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(NullFormatter())


def _modes(modes: set) -> list[str]:
    return [m for m in COLORS if m in modes] + sorted(modes - set(COLORS))


def _reasons(
    frame: pd.DataFrame, labelled: pd.DataFrame, cases: list[str], modes: list[str], pass_: str, shape: str
) -> dict:
    """(case, mode) -> why that cell has no time at ``shape``, for every pair the results lack."""
    names = labelled.drop_duplicates("case").set_index("case")[["loss", "formulation"]]
    have = set(
        zip(
            *(labelled.loc[(labelled["shape"] == shape) & (labelled["status"] == "ok"), c] for c in ("case", "mode")),
            strict=True,
        )
    )
    return {
        (case, mode): why_not(frame, names.at[case, "loss"], names.at[case, "formulation"], mode, pass_, shape)
        for case in cases
        for mode in modes
        if case in names.index and (case, mode) not in have
    }


def time_per_shape(frame: pd.DataFrame, path: Path, pass_: str) -> Path | None:
    """One panel per shape, a log time axis: a dot per mode for each loss and formulation at the
    median, its interval the quartiles [q1, q3] of the raw per-call times; a cell a mode does not
    run says why."""
    import matplotlib.pyplot as plt

    every = _label(frame[frame["pass"] == pass_])
    ok = every[every["status"] == "ok"]
    if ok.empty:
        return None
    shapes = list(dict.fromkeys(ok["shape"]))
    cases = list(dict.fromkeys(every["case"]))
    modes = _modes(set(every["mode"]))
    fig, axes = _figure(
        plt, len(shapes),
        f"{pass_}: time per call, log scale (dot: median; bar: quartiles q1-q3 of the per-call times)", ok,
        panel_height=0.3 * len(cases) * max(1, len(modes) / 3) + 1.2,
    )  # fmt: skip
    for ax, shape in zip(axes, shapes, strict=True):
        part = ok[ok["shape"] == shape]
        q = np.array([quartiles(row) for _, row in part.iterrows()]).reshape(-1, 3) * 1e3
        part = part.assign(low=q[:, 0], value=q[:, 1], high=q[:, 2])
        _dots(ax, part, cases, "mode", modes, COLORS, _reasons(frame, every, cases, modes, pass_, shape))
        _log_axis(ax)
        low, high = np.nanmin(part[["low", "value"]].to_numpy()), np.nanmax(part[["high", "value"]].to_numpy())
        ax.set_xlim(low / 3, high * 1.3)  # room at the left for the reasons
        ax.set_title(f"{shape}, C={part['classes'].iloc[0]}, {part['dtype'].iloc[0]}", fontsize=9)
        ax.set_xlabel("ms per call (log scale)")
        ax.grid(True, axis="x", which="both", alpha=0.3)
    _legend_outside(fig, axes)
    return _save(fig, path)


def speedup_interval(fast: pd.Series, base: pd.Series) -> tuple[float, float, float]:
    """(speedup, low, high): base's time over fast's, with its 95 % interval as segbench.verdicts.stats
    gives one for a comparison of two cells (by visit medians where both have two or more, else a
    bootstrap of the per-call times); NaN bounds with too few samples."""
    visits = samples(fast.get("visit_medians_s")), samples(base.get("visit_medians_s"))
    raw = samples(fast.get("raw_times_s")), samples(base.get("raw_times_s"))
    if raw[0].size == 0 or raw[1].size == 0:
        ratio = float(base["median_s"] / fast["median_s"])
        return ratio, math.nan, math.nan
    verdict = stats.decide(raw[0], raw[1], old_visits=visits[0], new_visits=visits[1])
    return verdict.ratio, verdict.low, verdict.high


def xla_speedup(frame: pd.DataFrame, path: Path) -> Path | None:
    """XLA's speedup over eager, one panel per shape on one shared log axis, forward and
    forward+backward side by side, each with its 95 % interval."""
    import matplotlib.pyplot as plt

    every = _label(frame)
    ok = every[every["status"] == "ok"]
    if not {"xla", "eager"} <= set(ok["mode"]):
        return None
    keys = ["case", "shape", "pass"]
    by_mode = {mode: ok[ok["mode"] == mode].set_index(keys) for mode in ("xla", "eager")}
    both = by_mode["xla"].index.intersection(by_mode["eager"].index)
    rows = []
    for key in both:
        speedup, low, high = speedup_interval(by_mode["xla"].loc[key], by_mode["eager"].loc[key])
        rows.append(dict(zip(keys, key, strict=True), value=speedup, low=low, high=high))
    wide = pd.DataFrame(rows, columns=[*keys, "value", "low", "high"])
    if wide.empty:
        return None
    shapes = [s for s in dict.fromkeys(ok["shape"]) if s in set(wide["shape"])]
    cases = list(dict.fromkeys(every["case"]))
    passes = [p for p in ("forward", "forward+backward") if p in set(every["pass"])]
    names = every.drop_duplicates("case").set_index("case")
    done = set(zip(ok["case"], ok["pass"], ok["mode"], ok["shape"], strict=True))
    reasons: dict[str, dict] = {shape: {} for shape in shapes}
    for shape in shapes:
        for case in cases:
            for pass_ in passes:
                missing = [m for m in ("eager", "xla") if (case, pass_, m, shape) not in done]
                if missing:
                    loss, formulation = names.at[case, "loss"], names.at[case, "formulation"]
                    why = why_not(frame, loss, formulation, missing[0], pass_, shape)
                    reasons[shape][(case, pass_)] = f"no {missing[0]}: {why}"
    fig, axes = _figure(
        plt, len(shapes),
        "XLA's speedup over eager, log scale (eager time / XLA time, 95 % interval; right of 1: XLA faster)", ok,
        panel_height=0.3 * len(cases) + 1.2, sharex=True,
    )  # fmt: skip
    for ax, shape in zip(axes, shapes, strict=True):
        part = wide[wide["shape"] == shape]
        _dots(ax, part, cases, "pass", passes, PASS_COLORS, reasons[shape])
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_title(shape, fontsize=9)
        ax.set_xlabel("x faster than eager (log scale)")
        ax.tick_params(labelbottom=True)
        ax.grid(True, axis="x", which="both", alpha=0.3)
    _log_axis(axes[0])
    values = wide[["value", "low", "high"]].to_numpy(dtype=float)
    low, high = np.nanmin(values), np.nanmax(values)
    axes[0].set_xlim(min(low, 1.0) / 4, max(high, 1.0) * 1.3)  # shared: room at the left for the reasons
    _legend_outside(fig, axes)
    return _save(fig, path)


def _bytes(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value:g} B"


MARKERS = {"reference": "o", "fused": "s", "blocked": "^"}


def roofline(frame: pd.DataFrame, path: Path) -> Path | None:
    """A roofline for a memory-bound loss: achieved bandwidth (bytes moved per second) against the
    bytes a call moves, every cell, with the measured read ceiling of each shape drawn as a line."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator

    ok = _ok(frame).dropna(subset=["gb_per_s", "bytes_moved"])
    ok = ok[(ok["gb_per_s"] > 0) & (ok["bytes_moved"] > 0)]
    ok = ok.assign(
        label=[tables.shape_label(*shape) for shape in zip(ok["batch"], ok["height"], ok["width"], strict=True)]
    )
    if ok.empty:
        return None
    passes = [p for p in ("forward", "forward+backward") if p in set(ok["pass"])]
    fig, axes = _figure(
        plt, len(passes),
        "roofline: achieved bandwidth against bytes moved per call, log-log (line: the measured read ceiling)", ok,
        panel_height=4.6,
    )  # fmt: skip
    modes = _modes(set(ok["mode"]))
    for ax, pass_ in zip(axes, passes, strict=True):
        part = ok[ok["pass"] == pass_]
        # each shape's ceiling (the fastest read of both inputs), where this pass's calls of that shape are
        ceilings = part.dropna(subset=["ceiling_gb_per_s"]).groupby("bytes_moved")
        ceiling = ceilings["ceiling_gb_per_s"].max()
        shapes = ceilings["label"].agg(lambda names: " / ".join(dict.fromkeys(names)))
        for (mode, formulation), cells in part.groupby(["mode", "formulation"], sort=False):
            ax.scatter(
                cells["bytes_moved"], cells["gb_per_s"], s=22, color=COLORS.get(mode, "grey"),
                marker=MARKERS.get(formulation, "D"), alpha=0.8, linewidths=0,
            )  # fmt: skip
        if len(ceiling):
            ax.plot(ceiling.index, ceiling.to_numpy(), "k-", lw=1.5, marker="o", ms=3)
            for x, y in ceiling.items():
                ax.annotate(f"{shapes[x]}: {y:.3g} GB/s", (x, y), textcoords="offset points", xytext=(0, -6),
                            fontsize=6.5, ha="center", va="top")  # fmt: skip
        _log_axis(ax)
        _log_axis(ax, "y")
        ax.xaxis.set_major_locator(LogLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _bytes(value)))
        ax.set_ylim(top=ax.get_ylim()[1] * 1.4)
        span = part["bytes_moved"]
        ax.set_xlim(span.min() / 2.5, span.max() * 2.5)  # room for the ceiling's labels
        ax.set_title(pass_, fontsize=9)
        ax.set_xlabel("bytes moved per call (inputs read once; + the gradient written)")
        ax.set_ylabel("achieved GB/s (bytes moved / median time)")
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color="k", lw=1.5, label="measured read ceiling")]
    handles += [Line2D([], [], ls="", marker="o", color=COLORS.get(m, "grey"), label=m) for m in modes]
    handles += [
        Line2D([], [], ls="", marker=MARKERS.get(f, "D"), color="dimgray", label=f)
        for f in dict.fromkeys(ok["formulation"])
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    return _save(fig, path)


ENVIRONMENT_COLUMNS = [
    "profile", "git_commit", "git_dirty", "started_at", "host", "device", "device_name", "cpu_model", "cpu_flags",
    "cpu_count", "blas", "blas_threads", "onednn", "intra_op_threads", "inter_op_threads", "tensorflow_version",
    "numpy_version", "python_version", "segbench_version", "tensorflow_build", "gpu_driver", "load_avg_start",
    "environment",
]  # fmt: skip


def environment_table(frame: pd.DataFrame) -> pd.DataFrame:
    """What the run ran on, one row per run: the columns that make its numbers reproducible."""
    columns = [c for c in ENVIRONMENT_COLUMNS if c in frame]
    runs = frame.drop_duplicates("run_id")
    table = pd.DataFrame({"": columns})
    for _, run in runs.iterrows():
        table[f"run {run['run_id']}"] = ["not recorded" if pd.isna(run[c]) else str(run[c]) for c in columns]
    return table


MANIFEST = ".segbench-report.json"
"""In the --out directory: the files the report wrote there, the only ones it may replace or delete."""
FIGURES = ("time_forward.png", "time_forward_backward.png", "xla_speedup.png", "roofline.png")
PAGE = "index.html"
CAPTIONS = {
    "time_forward.png": "Forward pass. Dot: median time per call; bar: the quartiles q1-q3 of the per-call times. "
    "Log scale; a cell a mode does not run says why on its row.",
    "time_forward_backward.png": "Forward and backward pass (the gradient with respect to y_pred), drawn as above.",
    "xla_speedup.png": "Eager's time over XLA's, one log axis for all panels, with the 95 % interval of the ratio "
    "(by visit medians where both cells have two or more visits, else a bootstrap of the per-call times).",
    "roofline.png": "Achieved bandwidth (bytes moved / median time) against the bytes a call moves; the line is "
    "the read ceiling measured for each shape (the fastest read of both inputs found). A memory-bound loss can "
    "at best reach the line.",
}
_PAGE_START = "<!doctype html><meta charset=utf-8><title>segbench report</title>"


def _written_before(out_dir: Path) -> set[str]:
    """The files an earlier report wrote into ``out_dir``: its manifest, or for a report of a
    segbench without one, the known names next to its page."""
    manifest = out_dir / MANIFEST
    if manifest.exists():
        try:
            names = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"--out {out_dir}: {MANIFEST} is damaged; choose another --out") from None
        return {Path(name).name for name in names}
    page = out_dir / PAGE
    if page.is_file() and page.read_text(errors="replace").startswith(_PAGE_START):
        return {PAGE, *FIGURES}
    return set()


def _claim(out_dir: Path) -> set[str]:
    """Check that the report may write into ``out_dir``; return the names an earlier one wrote."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a directory")
    ours = _written_before(out_dir) if out_dir.is_dir() else set()
    theirs = [name for name in (*FIGURES, PAGE) if (out_dir / name).exists() and name not in ours]
    if theirs:
        raise ValueError(
            f"--out {out_dir} holds {', '.join(theirs)}, which segbench did not write: choose another --out "
            "(a report replaces only files it wrote)"
        )
    return ours


def write_report(
    frame: pd.DataFrame, out_dir: Path, *, across_machines: bool = False, origin: str = "the results"
) -> Path:
    """Write the PNG figures and index.html into ``out_dir``; return the page's path.

    Only files an earlier report wrote there (its manifest) are replaced or removed."""
    import matplotlib

    matplotlib.use("Agg")  # files, not windows: works without a display
    by_run = {str(run): part for run, part in frame.groupby(frame["run_id"].fillna("?"), sort=False)}
    header = compare.machine_check(  # first: a report across machines is refused before anything else
        by_run if len(by_run) > 1 else {"the run": frame},
        across_machines=across_machines,
        what="one report of them would mix machines (pass --across-machines to draw it anyway)",
    )
    compare.check_duplicates(frame, origin)
    if not (frame["status"] == "ok").any():
        raise ValueError("the results have no successful cell to plot")
    out_dir = Path(out_dir)
    earlier = _claim(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in earlier:  # figures of an earlier report that this one may not redraw
        if name != PAGE:
            (out_dir / name).unlink(missing_ok=True)
    figures = [
        time_per_shape(frame, out_dir / "time_forward.png", "forward"),
        time_per_shape(frame, out_dir / "time_forward_backward.png", "forward+backward"),
        xla_speedup(frame, out_dir / "xla_speedup.png"),
        roofline(frame, out_dir / "roofline.png"),
    ]
    written = [f.name for f in figures if f is not None]
    sections = [
        f'<p><img src="{name}" alt="{Path(name).stem}"><br><small>{html.escape(CAPTIONS[name])}</small></p>'
        for name in written
    ]
    notes = [line for line in (*header, compare.partial_note(frame)) if line]
    if notes:
        sections.insert(0, "<pre class=warn>" + html.escape("\n".join(notes)) + "</pre>")
    for pass_ in ("forward", "forward+backward"):
        table = run_tables.speedup_table(frame, pass_)
        if len(table):
            sections.append(f"<h2>{html.escape(pass_)}: speedup over eager, best mode</h2>" + _html(table))
    first = run_tables.compile_table(frame)
    if len(first):
        sections.append(
            "<h2>first call (trace + compile) and calls until compiling paid off against eager</h2>"
            + _html(run_tables.readable_compile_table(first))
        )
    ceilings = run_tables.ceiling_table(frame)
    if len(ceilings):
        sections.append("<h2>read ceiling: the fastest read of both inputs found</h2>" + _html(ceilings))
    failed = run_tables.failures(frame)
    if len(failed):
        sections.append(f"<h2>cells that did not run ({len(failed)})</h2>" + _html(failed))
    sections.append("<h2>environment</h2>" + _html(environment_table(frame)))
    page = out_dir / PAGE
    page.write_text(
        _PAGE_START + "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
        "p.id{color:#555}</style>"
        f"<h1>segbench report</h1><p class=id>{html.escape(identity(frame))}</p>" + "".join(sections)
    )
    from segbench.results.storage import atomic_write_text

    atomic_write_text(out_dir / MANIFEST, json.dumps({"files": [PAGE, *written]}, indent=1))
    return page


def _html(table: pd.DataFrame) -> str:
    return table.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-")


def _command(args: argparse.Namespace) -> int:
    from segbench.results import storage as results

    frame = results.load(*args.results)
    page = write_report(frame, Path(args.out), across_machines=args.across_machines, origin=" + ".join(args.results))
    figures = len(json.loads((page.parent / MANIFEST).read_text())["files"]) - 1
    print(f"wrote {page} and {figures} figures")
    note = compare.partial_note(frame)
    if note:
        print(note)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="PNG figures and an HTML page from results", description=__doc__)
    parser.add_argument("results", nargs="+", help="run directories, .parquet, .csv or .jsonl")
    parser.add_argument(
        "--out",
        default="results/report",
        help="directory for the PNGs and index.html (other files there are left alone; a file of the same "
        "name that an earlier report did not write is refused)",
    )
    options.add_machine_option(parser, "draw them in one report anyway, saying what differs")
    parser.set_defaults(handler=_command)
