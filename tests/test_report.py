import pandas as pd
import pytest

from segbench import results
from segbench.cli import main
from segbench.report import write_report


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
    from segbench import report

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
