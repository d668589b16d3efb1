"""segbench run computes the float64 oracle of every shape it times (issue 21 item 3)."""

import pytest

from segbench.measurement import cells
from segbench.measurement.sweep import Case


def test_every_shape_gets_an_oracle_and_a_verdict(monkeypatch):
    # The old runner skipped shapes above ORACLE_MAX_ELEMENTS (batch 16 at 512x512 and C=32): no
    # within_tolerance for exactly the bandwidth-bound cells. Now the oracle works in chunks.
    monkeypatch.setattr(cells, "ORACLE_MAX_ELEMENTS", 10)
    case = Case(2, 16, 16, 4, "float32", "categorical_crossentropy", "fused", "xla", "forward")
    scene = case.scene()
    run = cells.Runner.__new__(cells.Runner)
    run._oracle = {}
    expected = run.oracle(case, scene)
    assert expected is not None and expected > 0
    columns = cells.oracle_columns(expected * (1 + 1e-7), expected, case)
    assert columns["within_tolerance"] is True
    assert cells.oracle_columns(expected * (1 + 1e-3), expected, case)["within_tolerance"] is False
    assert columns["oracle_rtol"] == pytest.approx(5.96e-8 * (1.5 + 3 * 512**0.5), rel=1e-2)  # XLA: sequential
