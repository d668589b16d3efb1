"""segbench run's end-of-run summary over several dtypes (issue 21, item 5)."""

import pandas as pd

from segbench import results
from segbench.verdicts import compare


def cells(dtype: str, scale: float) -> pd.DataFrame:
    base = {
        "loss": "categorical_crossentropy",
        "formulation": "fused",
        "batch": 1,
        "height": 32,
        "width": 32,
        "classes": 4,
        "dtype": dtype,
        "status": "ok",
        "run_id": "a",
        "device_name": "test CPU",
        "roofline_fraction": 0.5,
    }
    return pd.DataFrame(
        [
            {**base, "mode": mode, "pass": pass_, "median_s": t * scale, "iqr_s": 0.0, "compile_s": t * scale}
            for mode, t in (("eager", 2e-3), ("xla", 1e-3))
            for pass_ in ("forward", "forward+backward")
        ]
    )


def test_the_brief_summary_of_a_run_over_two_dtypes_has_a_row_per_dtype():
    frame = results.conform(pd.concat([cells("float32", 1.0), cells("float16", 2.0)], ignore_index=True))
    text = compare.brief(frame)  # raised "The truth value of a Series is ambiguous" before
    assert "float32" in text and "float16" in text
    assert len([line for line in text.splitlines() if line.startswith("categorical_ce")]) == 2
