"""Results rows of one cell per mode, for the tests of compare and of the run tables."""

import pandas as pd

from segbench import results


def rows(times: dict[str, float], iqr: float = 0.0, run_id: str = "a", compile_s: dict | None = None):
    base = {
        "loss": "categorical_crossentropy",
        "formulation": "reference",
        "pass": "forward",
        "batch": 8,
        "height": 64,
        "width": 64,
        "classes": 4,
        "dtype": "float32",
        "status": "ok",
        "run_id": run_id,
        "device_name": "test CPU",
    }
    compile_s = compile_s or {}
    return results.conform(
        pd.DataFrame(
            [
                {
                    **base,
                    "mode": m,
                    "median_s": t,
                    "iqr_s": iqr,
                    "compile_s": compile_s.get(m, t),
                    "roofline_fraction": 0.5,
                }
                for m, t in times.items()
            ]
        )
    )
