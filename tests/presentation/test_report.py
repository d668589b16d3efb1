import json

import numpy as np
import pandas as pd
import pytest

from segbench import results
from segbench.cli.parser import main
from segbench.presentation.report import write_report


def synthetic_run() -> pd.DataFrame:
    rows = []
    for batch in (1, 8):
        for res in (32, 64):
            for mode, per_pixel in {"numpy": 4e-8, "eager": 3e-8, "function": 2e-8, "xla": 1e-8}.items():
                for pass_ in ("forward", "forward+backward"):
                    rows.append(
                        {
                            "run_id": "r",
                            "device_name": "test CPU",
                            "loss": "categorical_crossentropy",
                            "formulation": "reference",
                            "mode": mode,
                            "pass": pass_,
                            "batch": batch,
                            "height": res,
                            "width": res,
                            "classes": 4,
                            "dtype": "float32",
                            "status": "ok",
                            "median_s": per_pixel * batch * res * res,
                            "iqr_s": 0.1 * per_pixel * batch * res * res,
                            "compile_s": 0.05 if mode in ("function", "xla") else 1e-3,
                            "profile": "quick",
                            "git_commit": "0123456789abcdef",
                            "git_dirty": False,
                            "tensorflow_version": "2.21.0",
                            "cpu_model": "Test CPU (family 6)",
                            "roofline_fraction": 1e-8 / per_pixel,
                        }
                    )
    for row in rows:  # raw per-call times around the median, and three visits
        median = row["median_s"]
        row["raw_times_s"] = json.dumps([median * f for f in (0.9, 0.95, 1.0, 1.05, 1.1)])
        row["visit_medians_s"] = json.dumps([median * f for f in (0.98, 1.0, 1.02)])
        row["bytes_moved"] = 4 * 2 * row["batch"] * row["height"] * row["width"] * row["classes"]
        row["gb_per_s"] = row["bytes_moved"] / median / 1e9
        row["ceiling_gb_per_s"] = 20.0
    return results.conform(pd.DataFrame(rows))


def test_report_writes_figures_and_page(tmp_path):
    page = write_report(synthetic_run(), tmp_path)
    text = page.read_text()
    for name in ("time_forward.png", "time_forward_backward.png", "xla_speedup.png", "roofline.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{name}"' in text
    assert "speedup over eager" in text
    # the run's identity, the first-call / break-even table and the environment are on the page
    assert "profile quick" in text and "commit 0123456789" in text and "TensorFlow 2.21.0" in text
    assert "calls until compiling paid off" in text and "xla pays" in text
    assert "environment" in text and "Test CPU (family 6)" in text


def test_each_shape_has_its_own_panel_with_error_bars_and_the_run_identity(monkeypatch, tmp_path):
    from segbench.presentation import report

    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or path)
    report.time_per_shape(synthetic_run(), tmp_path / "t.png", "forward")
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    # batch 1 at 64x64 and batch 8 at 32x32 hold a similar number of pixels: still two panels
    assert sorted(ax.get_title().split(",")[0] + "," + ax.get_title().split(",")[1] for ax in panels) == [
        "batch 1, 32x32", "batch 1, 64x64", "batch 8, 32x32", "batch 8, 64x64",
    ]  # fmt: skip
    for ax in panels:
        assert any(type(c).__name__ == "ErrorbarContainer" for c in ax.containers)  # IQR error bars
        assert ax.get_legend() is None  # one legend, outside the panels
    assert fig.legends and "profile quick" in fig.get_supxlabel() and "0123456789" in fig.get_supxlabel()


def test_report_of_nothing_is_a_clear_error(tmp_path):
    frame = synthetic_run().assign(status="error")
    with pytest.raises(ValueError, match="no successful cell"):
        write_report(frame, tmp_path)


def test_report_cli(tmp_path, capsys):
    path = tmp_path / "run.csv"
    synthetic_run().to_csv(path, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 0
    assert "wrote" in capsys.readouterr().out


@pytest.mark.slow
def test_report_replaces_only_the_files_it_wrote(tmp_path, capsys):
    """Issue 19 item 2: a report into a folder holding other PNG files keeps them."""
    out = tmp_path / "shared"
    out.mkdir()
    (out / "holiday.png").write_bytes(b"\x89PNG mine")
    (out / "notes.txt").write_text("mine")
    write_report(synthetic_run(), out)
    assert (out / "holiday.png").read_bytes() == b"\x89PNG mine" and (out / "notes.txt").exists()
    assert (out / "xla_speedup.png").exists()
    # a second report without XLA cells: its own old figure goes, the user's files stay
    write_report(synthetic_run().query("mode != 'xla'"), out)
    assert not (out / "xla_speedup.png").exists() and (out / "holiday.png").read_bytes() == b"\x89PNG mine"
    # a file of a name segbench writes, that it did not write: refused, untouched
    other = tmp_path / "other"
    other.mkdir()
    (other / "roofline.png").write_bytes(b"theirs")
    path = tmp_path / "run.csv"
    synthetic_run().to_csv(path, index=False)
    assert main(["report", str(path), "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert "holds roofline.png, which segbench did not write" in err and len(err.strip().splitlines()) == 1
    assert (other / "roofline.png").read_bytes() == b"theirs" and not (other / "index.html").exists()


def test_report_refuses_duplicate_cells_in_one_line(tmp_path, capsys):
    """Issue 19 item 8: duplicates gave a pandas error (cannot reindex on an axis with duplicate labels)."""
    path = tmp_path / "doubled.csv"
    frame = synthetic_run()
    pd.concat([frame, frame.iloc[:2]]).to_csv(path, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "2 cell(s) appear more than once" in err and "categorical_crossentropy/reference/numpy" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_report_of_two_machines_needs_across_machines_and_says_what_differs(tmp_path, capsys):
    xeon, epyc = tmp_path / "xeon.csv", tmp_path / "epyc.csv"
    synthetic_run().assign(run_id="x", batch=lambda f: f["batch"] + 100).to_csv(xeon, index=False)
    synthetic_run().assign(run_id="e", cpu_model="AMD EPYC", device_name="AMD EPYC").to_csv(epyc, index=False)
    assert main(["report", str(xeon), str(epyc), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "come from different machines" in err and "CPU model" in err
    assert main(["report", str(xeon), str(epyc), "--out", str(tmp_path / "r"), "--across-machines"]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "ACROSS MACHINES" in page and "CPU model" in page


def _figure_of(monkeypatch, draw, *args):
    from segbench.presentation import report

    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or path)
    draw(*args)
    (fig,) = figures
    return fig, [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]


def _intervals(ax):
    """(x, low, high, y) of every error bar drawn in ``ax``."""
    out = []
    for container in ax.containers:
        if type(container).__name__ != "ErrorbarContainer":
            continue
        line, _, (bars,) = container.lines
        for x, y, segment in zip(line.get_xdata(), line.get_ydata(), bars.get_segments(), strict=True):
            out.append((x, segment[0][0], segment[1][0], y))
    return out


def test_time_error_bars_are_the_quartiles_of_the_raw_times_on_a_log_axis(monkeypatch, tmp_path):
    """Issue 18 item 9: a skewed cell (one call 50 times slower) drew median +- IQR/2, clipped, and
    stretched its axis down to 0.005 ms; the bar must be [q1, q3] of the per-call times."""
    from segbench.presentation import report

    frame = synthetic_run()
    skewed = [1e-3, 1.01e-3, 1.02e-3, 1.03e-3, 5e-2, 5e-2]
    frame.loc[0, ["median_s", "iqr_s", "raw_times_s"]] = [np.median(skewed), 0.0245, json.dumps(skewed)]
    _, panels = _figure_of(monkeypatch, report.time_per_shape, frame, tmp_path / "t.png", "forward")
    assert len(panels) == 4
    for ax in panels:
        assert ax.get_xscale() == "log"
        assert not ax.patches  # dots and intervals, no bars
    ok = frame[(frame["pass"] == "forward") & (frame["status"] == "ok")]
    expected = sorted(tuple(np.percentile(json.loads(r), [50, 25, 75]) * 1e3) for r in ok["raw_times_s"])
    drawn = sorted((x, low, high) for ax in panels for x, low, high, _ in _intervals(ax))
    np.testing.assert_allclose(drawn, expected, rtol=1e-9)
    first = frame.iloc[0]
    q1, q3 = np.percentile(skewed, [25, 75]) * 1e3
    assert any(np.isclose(low, q1) and np.isclose(high, q3) for ax in panels for _, low, high, _ in _intervals(ax))
    assert first["pass"] == "forward" and q1 > 0.5 * first["median_s"] * 1e3  # no interval reaches toward zero


@pytest.mark.slow
def test_a_cell_a_mode_cannot_run_says_why(monkeypatch, tmp_path):
    from segbench.presentation import report

    frame = synthetic_run()
    blocked = frame[frame["mode"].isin(["function", "xla"])].assign(formulation="blocked")
    failed = frame.iloc[[0]].assign(formulation="fused", status="error", error="ValueError: broken on purpose")
    fused = frame[(frame["mode"] != "numpy")].assign(formulation="fused")
    frame = results.conform(pd.concat([frame, blocked, fused, failed], ignore_index=True))
    _, panels = _figure_of(monkeypatch, report.time_per_shape, frame, tmp_path / "t.png", "forward")
    texts = [t.get_text() for t in panels[0].texts]
    assert "numpy: blocked: function and xla modes only" in texts
    assert "eager: blocked: function and xla modes only" in texts
    assert "numpy: error: ValueError: broken on purpose" in texts  # the row's status and error
    others = [t.get_text() for ax in panels[1:] for t in ax.texts]  # it failed at batch 1, 32x32 only
    assert "numpy: not in the results" in others and not any("broken" in text for text in others)
    _, panels = _figure_of(monkeypatch, report.xla_speedup, frame, tmp_path / "s.png")
    assert "forward: no eager: blocked: function and xla modes only" in [t.get_text() for t in panels[0].texts]
    monkeypatch.undo()
    page = write_report(frame, tmp_path / "r").read_text()
    assert "cells that did not run (1)" in page and "ValueError: broken on purpose" in page


def test_speedups_on_one_shared_log_axis_with_intervals(monkeypatch, tmp_path):
    from segbench.presentation import report
    from segbench.verdicts import stats

    frame = synthetic_run()
    _, panels = _figure_of(monkeypatch, report.xla_speedup, frame, tmp_path / "s.png")
    assert len(panels) == 4 and all(ax.get_xscale() == "log" for ax in panels)
    assert all(ax.get_shared_x_axes().joined(panels[0], ax) for ax in panels)
    drawn = sorted(round(x, 9) for ax in panels for x, *_ in _intervals(ax))
    assert len(drawn) == 8 and all(low < x < high for ax in panels for x, low, high, _ in _intervals(ax))
    cell = frame[(frame["batch"] == 1) & (frame["height"] == 32) & (frame["pass"] == "forward")].set_index("mode")
    verdict = stats.decide(
        json.loads(cell.at["xla", "raw_times_s"]), json.loads(cell.at["eager", "raw_times_s"]),
        old_visits=json.loads(cell.at["xla", "visit_medians_s"]),
        new_visits=json.loads(cell.at["eager", "visit_medians_s"]),
    )  # fmt: skip
    assert any(
        np.isclose(x, verdict.ratio) and np.isclose(low, verdict.low) and np.isclose(high, verdict.high)
        for x, low, high, _ in _intervals(panels[0])
    )


def test_roofline_is_bandwidth_against_bytes_with_the_ceiling_drawn(monkeypatch, tmp_path):
    from segbench.presentation import report

    fig, panels = _figure_of(monkeypatch, report.roofline, synthetic_run(), tmp_path / "r.png")
    assert [ax.get_title() for ax in panels] == ["forward", "forward+backward"]
    for ax in panels:
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert "bytes moved" in ax.get_xlabel() and "GB/s" in ax.get_ylabel()
        (ceiling,) = [line for line in ax.lines if line.get_color() == "k"]
        assert list(ceiling.get_ydata()) == [20.0] * 4  # the ceiling of each of the 4 shapes
        assert sum(len(c.get_offsets()) for c in ax.collections) == 16  # every cell of the pass
    assert "roofline" in fig._suptitle.get_text() and "measured read ceiling" in fig._suptitle.get_text()
