"""``segbench report``: figures a person would rather look at than read, as PNG files and one HTML page.

- time per call, one panel per shape (batch and resolution never merged), a bar per mode for each
  loss and formulation, error bars from the stored interquartile range;
- XLA's speedup over eager per shape, forward and forward+backward;
- each mode's fraction of the memory-read ceiling at the largest shape measured.

Every figure carries the run's identity (device, TensorFlow, profile, commit) in its footer, and
its legend outside the axes. The page adds the environment, the speedup tables and the first-call
and break-even table.

Runs from different machines or software versions (segbench.environment.IDENTITY) are not drawn
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

from segbench import compare, environment, tables

COLORS = {"numpy": "tab:green", "eager": "tab:blue", "function": "tab:orange", "xla": "tab:red"}
PASS_COLORS = {"forward": "tab:purple", "forward+backward": "tab:olive"}
PANEL_COLUMNS = 2


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["status"] == "ok"].copy()
    ok["pixels"] = ok["batch"] * ok["height"] * ok["width"]
    ok["shape"] = [f"batch {b}, {h}x{w}" for b, h, w in zip(ok["batch"], ok["height"], ok["width"], strict=True)]
    ok["case"] = [f"{tables.short_loss(l)} / {f}" for l, f in zip(ok["loss"], ok["formulation"], strict=True)]  # noqa: E741
    return ok.sort_values(["pixels", "batch"], kind="stable")


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


def _figure(plt, panels: int, title: str, frame: pd.DataFrame, panel_height: float = 3.2):
    cols = min(PANEL_COLUMNS, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(6.2 * cols + 2.2, panel_height * rows + 1.0), squeeze=False, layout="constrained"
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


def _bars(ax, part: pd.DataFrame, cases: list[str], key: str, groups: list[str], value: str, colors: dict) -> None:
    """A horizontal bar per group (a mode, a pass) for each case, side by side, cases top down;
    where ``part`` has an ``iqr`` column, the interquartile range as error bars."""
    height = 0.8 / max(1, len(groups))
    for k, group in enumerate(groups):
        rows = part[part[key] == group].set_index("case").reindex(cases)
        y = np.arange(len(cases)) + (k - (len(groups) - 1) / 2) * height
        values = rows[value].to_numpy(dtype=float)
        ax.barh(y, values, height=height, color=colors.get(group, "grey"), label=group)
        if "iqr" in rows:
            half = np.nan_to_num(rows["iqr"].to_numpy(dtype=float) / 2)
            below = np.minimum(half, values * 0.999)  # a log axis has no room below zero
            ax.errorbar(values, y, xerr=[below, half], fmt="none", ecolor="black", elinewidth=0.7)
    ax.set_yticks(range(len(cases)), cases, fontsize=7)
    ax.invert_yaxis()


def _log_axis(ax) -> None:
    """A log x axis labelled at 1, 2 and 5 times a power of ten, as plain numbers (no overlapping
    minor labels when the data span less than a decade)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def time_per_shape(frame: pd.DataFrame, path: Path, pass_: str) -> Path | None:
    """One panel per shape: a bar per mode for each loss and formulation, IQR as error bars."""
    import matplotlib.pyplot as plt

    ok = _ok(frame)
    ok = ok[ok["pass"] == pass_]
    if ok.empty:
        return None
    shapes = list(dict.fromkeys(ok["shape"]))
    cases = list(dict.fromkeys(ok["case"]))
    modes = [m for m in COLORS if m in set(ok["mode"])] + sorted(set(ok["mode"]) - set(COLORS))
    fig, axes = _figure(
        plt, len(shapes), f"{pass_}: time per call (bars: median; error bars: interquartile range)", ok,
        panel_height=0.32 * len(cases) * max(1, len(modes) / 3) + 1.2,
    )  # fmt: skip
    for ax, shape in zip(axes, shapes, strict=True):
        part = ok[ok["shape"] == shape].assign(ms=lambda f: f["median_s"] * 1e3, iqr=lambda f: f["iqr_s"] * 1e3)
        _bars(ax, part, cases, "mode", modes, "ms", COLORS)
        _log_axis(ax)
        ax.set_title(f"{shape}, C={part['classes'].iloc[0]}, {part['dtype'].iloc[0]}", fontsize=9)
        ax.set_xlabel("ms per call (log)")
        ax.grid(True, axis="x", which="both", alpha=0.3)
    _legend_outside(fig, axes)
    return _save(fig, path)


def xla_speedup(frame: pd.DataFrame, path: Path) -> Path | None:
    """XLA's speedup over eager, one panel per shape, forward and forward+backward side by side."""
    import matplotlib.pyplot as plt

    ok = _ok(frame)
    keys = ["case", "shape", "pixels", "batch", "pass"]
    wide = ok.pivot_table(index=keys, columns="mode", values="median_s", aggfunc="first").reset_index()
    if not {"xla", "eager"} <= set(wide.columns):
        return None
    wide["speedup"] = wide["eager"] / wide["xla"]
    wide = wide.dropna(subset=["speedup"]).sort_values(["pixels", "batch"], kind="stable")
    shapes = list(dict.fromkeys(wide["shape"]))
    cases = list(dict.fromkeys(ok["case"]))
    passes = [p for p in ("forward", "forward+backward") if p in set(wide["pass"])]
    fig, axes = _figure(
        plt, len(shapes), "XLA's speedup over eager (eager time / XLA time; right of the line: XLA faster)", ok,
        panel_height=0.3 * len(cases) + 1.2,
    )  # fmt: skip
    for ax, shape in zip(axes, shapes, strict=True):
        _bars(ax, wide[wide["shape"] == shape], cases, "pass", passes, "speedup", PASS_COLORS)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_title(shape, fontsize=9)
        ax.set_xlabel("x faster than eager")
        ax.grid(True, axis="x", alpha=0.3)
    _legend_outside(fig, axes)
    return _save(fig, path)


def roofline(frame: pd.DataFrame, path: Path) -> Path | None:
    """Each mode's fraction of the read ceiling at the largest shape, per pass."""
    import matplotlib.pyplot as plt

    ok = _ok(frame).dropna(subset=["roofline_fraction"])
    if ok.empty:
        return None
    size = ok["pixels"] * ok["classes"]
    largest = ok[size == size.max()]
    passes = [p for p in ("forward", "forward+backward") if p in set(largest["pass"])]
    cases = list(dict.fromkeys(largest["case"]))
    shape = largest.iloc[0]
    fig, axes = _figure(
        plt, len(passes),
        f"share of the memory-read ceiling (reading both inputs once) at {shape['shape']}, C={shape['classes']}",
        largest, panel_height=0.3 * len(cases) + 1.2,
    )  # fmt: skip
    modes = [m for m in COLORS if m in set(largest["mode"])]
    # above the slack the ceiling is wrong (segbench.compare): no bar rather than a false one
    largest = largest.assign(
        share=lambda f: 100 * f["roofline_fraction"].where(f["roofline_fraction"] <= compare.CEILING_SLACK)
    )
    for ax, pass_ in zip(axes, passes, strict=True):
        _bars(ax, largest[largest["pass"] == pass_], cases, "mode", modes, "share", COLORS)
        ax.set_xlim(0, 100)
        ax.set_title(pass_, fontsize=9)
        ax.set_xlabel("% of the read ceiling")
        ax.grid(True, axis="x", alpha=0.3)
    _legend_outside(fig, axes)
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
    sections = [f'<p><img src="{name}" alt="{Path(name).stem}"></p>' for name in written]
    notes = [line for line in (*header, compare.partial_note(frame)) if line]
    if notes:
        sections.insert(0, "<pre class=warn>" + html.escape("\n".join(notes)) + "</pre>")
    for pass_ in ("forward", "forward+backward"):
        table = compare.speedup_table(frame, pass_)
        if len(table):
            sections.append(f"<h2>{html.escape(pass_)}: speedup over eager, best mode</h2>" + _html(table))
    first = compare.compile_table(frame)
    if len(first):
        sections.append(
            "<h2>first call (trace + compile) and calls until compiling paid off against eager</h2>"
            + _html(compare.readable_compile_table(first))
        )
    ceilings = compare.ceiling_table(frame)
    if len(ceilings):
        sections.append("<h2>read ceiling: the fastest read of both inputs found</h2>" + _html(ceilings))
    sections.append("<h2>environment</h2>" + _html(environment_table(frame)))
    page = out_dir / PAGE
    page.write_text(
        _PAGE_START + "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
        "p.id{color:#555}</style>"
        f"<h1>segbench report</h1><p class=id>{html.escape(identity(frame))}</p>" + "".join(sections)
    )
    from segbench.results import atomic_write_text

    atomic_write_text(out_dir / MANIFEST, json.dumps({"files": [PAGE, *written]}, indent=1))
    return page


def _html(table: pd.DataFrame) -> str:
    return table.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-")


def _command(args: argparse.Namespace) -> int:
    from segbench import results

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
    compare.add_machine_option(parser, "draw them in one report anyway, saying what differs")
    parser.set_defaults(handler=_command)
