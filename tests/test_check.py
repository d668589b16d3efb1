"""segbench check passes on the code as it is and fails when a loss (or the oracle) is changed."""

import pandas as pd
import pytest

from segbench import check
from segbench.cli import main

SMALL = ["binary_nonsquare"]  # the smallest reference scenario keeps these tests fast


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(check.DEFAULT_TABLE)


def test_reference_table_is_what_the_oracle_gives(table):
    regenerated = check.reference_table()
    pd.testing.assert_frame_equal(regenerated.reset_index(drop=True), table, check_exact=False, rtol=1e-12)


def test_unchanged_code_passes(table):
    report = check.run_check(table, scenarios=SMALL)
    assert report["ok"].all(), report[~report["ok"]]
    # inputs + per loss: oracle + formulations x modes x (forward value, f+b value, f+b grad norm)
    import segbench

    per_loss = 1 + len(segbench.FORMULATIONS) * len(segbench.MODES) * 3
    assert len(report) == 1 + len(segbench.LOSSES) * per_loss


def test_a_perturbed_epsilon_in_one_implementation_fails(table, monkeypatch):
    import segbench.losses_numpy

    monkeypatch.setattr(segbench.losses_numpy, "EPSILON", 1e-2)
    report = check.run_check(table, modes=["numpy", "eager"], scenarios=SMALL)
    bad = report[~report["ok"]]
    assert not bad.empty
    assert set(bad["mode"]) == {"numpy"}  # eager did not change and still agrees


def test_a_perturbed_oracle_fails(table, monkeypatch):
    import segbench.oracle

    monkeypatch.setattr(segbench.oracle, "EPSILON", 1e-3)
    report = check.run_check(table, modes=["numpy"], scenarios=SMALL)
    assert not report[(report["mode"] == "oracle")]["ok"].all()


def test_changed_inputs_are_reported_as_such(table):
    changed = table.assign(inputs_sha256="0" * 64)
    report = check.run_check(changed, modes=["numpy"], scenarios=SMALL)
    inputs = report[report["loss"] == "inputs"]
    assert not inputs["ok"].any()


def test_cli_exit_status(tmp_path, capsys):
    path = tmp_path / "ref.csv"
    table = pd.read_csv(check.DEFAULT_TABLE)
    table[table["scenario"].isin(SMALL)].to_csv(path, index=False)
    assert main(["check", "--table", str(path), "--mode", "numpy"]) == 0
    assert "0 mismatches" in capsys.readouterr().out
    broken = pd.read_csv(path)
    broken.loc[broken["loss"] == "marginal_crossentropy", "value"] *= 1.01
    broken.to_csv(path, index=False)
    assert main(["check", "--table", str(path), "--mode", "numpy"]) == 1
    assert main(["check", "--table", str(tmp_path / "missing.csv")]) == 2
