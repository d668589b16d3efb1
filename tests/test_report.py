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
                            "roofline_fraction": 1e-8 / per_pixel,
                        }
                    )
    return results.conform(pd.DataFrame(rows))


def test_report_writes_figures_and_page(tmp_path):
    page = write_report(synthetic_run(), tmp_path)
    text = page.read_text()
    for name in ("time_vs_pixels.png", "xla_speedup.png", "roofline.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{name}"' in text
    assert "speedup over eager" in text


def test_report_of_nothing_is_a_clear_error(tmp_path):
    frame = synthetic_run().assign(status="error")
    with pytest.raises(ValueError, match="no successful cell"):
        write_report(frame, tmp_path)


def test_report_cli(tmp_path, capsys):
    path = tmp_path / "run.csv"
    synthetic_run().to_csv(path, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 0
    assert "wrote" in capsys.readouterr().out
