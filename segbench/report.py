"""``segbench report``: figures a person would rather look at than read, as PNG files and one HTML page.

- time per call against pixels per batch (log-log), one line per mode and formulation;
- XLA's speedup over eager against pixels;
- each mode's fraction of the memory-read ceiling at the largest shape measured.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import pandas as pd

from segbench import compare

STYLES = {"reference": "-", "fused": "--"}
COLORS = {"numpy": "tab:green", "eager": "tab:blue", "function": "tab:orange", "xla": "tab:red"}


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["status"] == "ok"].copy()
    ok["pixels"] = ok["batch"] * ok["height"] * ok["width"]
    return ok


def _grid(plt, rows: list[str], cols: list[str], title: str):
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(4.2 * len(cols), 3.4 * len(rows)), squeeze=False, constrained_layout=True
    )
    fig.suptitle(title)
    return fig, axes


def time_vs_pixels(frame: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ok = _ok(frame)
    passes, losses = sorted(ok["pass"].unique()), sorted(ok["loss"].unique())
    fig, axes = _grid(plt, passes, losses, "time per call vs pixels per batch (log-log)")
    for r, pass_ in enumerate(passes):
        for c, loss in enumerate(losses):
            ax = axes[r][c]
            cell = ok[(ok["pass"] == pass_) & (ok["loss"] == loss)]
            for (mode, formulation), line in cell.groupby(["mode", "formulation"]):
                line = line.groupby("pixels")["median_s"].median()
                ax.loglog(
                    line.index,
                    line.values * 1e3,
                    STYLES.get(formulation, ":"),
                    color=COLORS.get(mode),
                    marker="o",
                    ms=3,
                    label=f"{mode} ({formulation})",
                )
            ax.set_title(f"{loss}\n{pass_}", fontsize=9)
            ax.set_xlabel("pixels per batch")
            ax.set_ylabel("ms per call")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def xla_speedup(frame: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ok = _ok(frame)
    keys = ["loss", "formulation", "pass", "batch", "height", "width", "classes", "dtype", "pixels"]
    wide = ok.pivot_table(index=keys, columns="mode", values="median_s", aggfunc="first").reset_index()
    fig, axes = _grid(plt, ["all"], sorted(ok["pass"].unique()), "XLA speedup over eager (>1: XLA is faster)")
    for c, pass_ in enumerate(sorted(ok["pass"].unique())):
        ax = axes[0][c]
        if {"xla", "eager"} <= set(wide.columns):
            part = wide[wide["pass"] == pass_]
            for (loss, formulation), line in part.groupby(["loss", "formulation"]):
                line = line.groupby("pixels").apply(lambda g: (g["eager"] / g["xla"]).median(), include_groups=False)
                ax.semilogx(
                    line.index,
                    line.values,
                    STYLES.get(formulation, ":"),
                    marker="o",
                    ms=3,
                    label=f"{loss} ({formulation})",
                )
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels on a short log axis overlap
        ax.set_title(pass_, fontsize=9)
        ax.set_xlabel("pixels per batch")
        ax.set_ylabel("eager time / XLA time")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roofline(frame: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ok = _ok(frame).dropna(subset=["roofline_fraction"])
    largest = ok[ok["pixels"] * ok["classes"] == (ok["pixels"] * ok["classes"]).max()]
    passes = sorted(largest["pass"].unique()) or ["forward"]
    fig, axes = plt.subplots(
        len(passes), 1, figsize=(9, 0.4 + 3.2 * len(passes)), squeeze=False, constrained_layout=True
    )
    fig.suptitle("fraction of the memory-read ceiling (reading both inputs once), largest shape")
    for r, pass_ in enumerate(passes):
        ax = axes[r][0]
        part = largest[largest["pass"] == pass_].assign(case=lambda f: f["loss"] + " / " + f["formulation"])
        table = part.pivot_table(index="case", columns="mode", values="roofline_fraction")
        table = table[[m for m in COLORS if m in table] + [m for m in table if m not in COLORS]]
        (table * 100).plot.barh(ax=ax, width=0.8, color=[COLORS.get(m, "grey") for m in table.columns])
        ax.set_xlabel("% of ceiling")
        ax.set_ylabel("")
        shape = part.iloc[0]
        ax.set_title(f"{pass_}: {shape['batch']}x{shape['height']}x{shape['width']}, C={shape['classes']}", fontsize=9)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.grid(True, axis="x", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(frame: pd.DataFrame, out_dir: Path) -> Path:
    """Write the PNG figures and index.html into ``out_dir``; return the page's path."""
    import matplotlib

    matplotlib.use("Agg")  # files, not windows: works without a display
    if not (frame["status"] == "ok").any():
        raise ValueError("the results have no successful cell to plot")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [
        time_vs_pixels(frame, out_dir / "time_vs_pixels.png"),
        xla_speedup(frame, out_dir / "xla_speedup.png"),
        roofline(frame, out_dir / "roofline.png"),
    ]
    run_ids = ", ".join(sorted(frame["run_id"].dropna().astype(str).unique()))
    tables = []
    for pass_ in ("forward", "forward+backward"):
        table = compare.speedup_table(frame, pass_)
        if len(table):
            tables.append(
                f"<h2>{html.escape(pass_)}: speedup over eager</h2>" + table.to_html(index=False, float_format="%.3g")
            )
    page = out_dir / "index.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>segbench report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style>"
        f"<h1>segbench report</h1><p>runs: {html.escape(run_ids)}; devices: "
        f"{html.escape(', '.join(sorted(frame['device_name'].dropna().astype(str).unique())))}</p>"
        + "".join(f'<p><img src="{f.name}" alt="{f.stem}"></p>' for f in figures)
        + "".join(tables)
    )
    return page


def _command(args: argparse.Namespace) -> int:
    from segbench import results

    frame = results.load(*args.results)
    page = write_report(frame, Path(args.out))
    print(f"wrote {page} and {len(list(Path(args.out).glob('*.png')))} figures")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="PNG figures and an HTML page from results", description=__doc__)
    parser.add_argument("results", nargs="+", help="run directories, .parquet, .csv or .jsonl")
    parser.add_argument("--out", default="results/report", help="directory for the PNGs and index.html")
    parser.set_defaults(handler=_command)
