"""segbench check passes on the code as it is and fails on each kind of subtle breakage."""

import numpy as np
import pandas as pd
import pytest

from segbench.cli.parser import main
from segbench.verdicts import check

EDGES = ["edges_float32"]  # small, and every edge case at once


@pytest.fixture(scope="module")
def table():
    return check.read_table(check.DEFAULT_TABLE)


def failing(report: pd.DataFrame) -> pd.DataFrame:
    return report[~report["ok"]]


def test_reference_table_is_what_the_oracle_gives(table):
    regenerated = check.reference_table()
    pd.testing.assert_frame_equal(
        regenerated.reset_index(drop=True), table, check_exact=False, rtol=1e-12, check_dtype=False
    )


@pytest.mark.slow
def test_unchanged_code_passes_every_reduction_gradient_and_dtype(table):
    scenarios = ["edges_float32", "edges_float16", "binary_nonsquare"]
    report = check.run_check(table, scenarios=scenarios, losses=["missing_annotation_crossentropy"])
    assert report["ok"].all(), failing(report)
    quantities = set(report["quantity"])
    assert {"mean", "sum", "none", "grad_mean", "grad_sum", "grad_none"} <= quantities
    assert {"none.p0", "grad_none.p3", "inputs sha256"} <= quantities
    assert set(report["dtype"]) == {"float32", "float16"}


def test_a_different_epsilon_in_one_path_fails(table, monkeypatch):
    import segbench.losses.numpy_impl

    monkeypatch.setattr(segbench.losses.numpy_impl, "EPSILON", 1e-6)  # was 1e-7
    report = check.run_check(table, modes=["numpy", "eager"], scenarios=EDGES, losses=["categorical_crossentropy"])
    assert set(failing(report)["mode"]) == {"numpy"}  # eager did not change and still agrees


@pytest.mark.slow
def test_argmax_ties_broken_the_other_way_fail(table, monkeypatch):
    import tensorflow as tf

    first_max = tf.argmax

    def last_max(x, axis=None, output_type=tf.int64, name=None):
        last = tf.cast(tf.shape(x)[axis] - 1, output_type)
        return last - first_max(tf.reverse(x, [axis]), axis=axis, output_type=output_type)

    monkeypatch.setattr(tf, "argmax", last_max)
    report = check.run_check(table, modes=["numpy", "xla"], scenarios=EDGES, losses=["missing_annotation_crossentropy"])
    assert set(failing(report)["mode"]) == {"xla"}
    assert {"mean", "none"} <= set(failing(report)["quantity"])


def test_a_wrong_gradient_for_reduction_none_fails(table, monkeypatch):
    import segbench.losses.numpy_impl

    monkeypatch.setattr(segbench.losses.numpy_impl, "grad_scale", lambda per_pixel, reduction: 1.0 / per_pixel.size)
    report = check.run_check(table, modes=["numpy"], scenarios=EDGES, losses=["categorical_crossentropy"])
    assert set(failing(report)["quantity"]) == {"grad_none", "grad_sum"}


def test_a_sign_flip_inside_one_numpy_gradient_fails(table, monkeypatch):
    import segbench.losses.numpy_impl

    original = segbench.losses.numpy_impl._ce_gradient
    monkeypatch.setattr(segbench.losses.numpy_impl, "_ce_gradient", lambda *args: -original(*args))
    report = check.run_check(table, modes=["numpy"], scenarios=EDGES, losses=["categorical_crossentropy"])
    bad = failing(report)
    assert set(bad["quantity"]) == {"grad_mean", "grad_sum", "grad_none"}
    assert set(bad["formulation"]) == {"reference"}  # the fused gradient is its own code, still right


def test_float64_inputs_computed_in_float32_in_one_path_fail(table, monkeypatch):
    import segbench.losses.numpy_impl

    key = ("marginal_crossentropy", "fused")
    value, value_and_grad = segbench.losses.numpy_impl.IMPLEMENTATIONS[key]

    def in_float32(y_true, y_pred, reduction):
        result = value(y_true.astype(np.float32), y_pred.astype(np.float32), reduction)
        return np.asarray(result).astype(y_pred.dtype)

    monkeypatch.setitem(segbench.losses.numpy_impl.IMPLEMENTATIONS, key, (in_float32, value_and_grad))
    report = check.run_check(table, modes=["numpy"], scenarios=["edges_float64"], losses=[key[0]])
    bad = failing(report)
    assert set(bad["formulation"]) == {"fused"} and set(bad["pass"]) == {"forward"}


def test_class_presence_over_the_batch_instead_of_per_image_fails(table, monkeypatch):
    import tensorflow as tf

    import segbench.losses.tf_impl

    def over_batch(y_true):
        present = tf.reduce_any(y_true > 0, axis=[0, 1, 2])
        return tf.broadcast_to(present[None, :], [tf.shape(y_true)[0], tf.shape(y_true)[-1]])

    monkeypatch.setattr(segbench.losses.tf_impl, "present_classes", over_batch)
    report = check.run_check(
        table, modes=["numpy", "eager"], formulations=["reference"], scenarios=EDGES, losses=["marginal_crossentropy"]
    )
    assert set(failing(report)["mode"]) == {"eager"}


def test_a_perturbed_oracle_fails(table, monkeypatch):
    import segbench.losses.oracle

    monkeypatch.setattr(segbench.losses.oracle, "EPSILON", 1e-6)
    report = check.run_check(table, modes=["numpy"], scenarios=EDGES, losses=["categorical_crossentropy"])
    assert not report[report["mode"] == "oracle"]["ok"].all()


def test_changed_inputs_are_reported_as_such(table):
    changed = table.copy()
    changed.loc[changed["quantity"] == "inputs", "sha256"] = "0" * 64
    report = check.run_check(changed, modes=["numpy"], scenarios=EDGES, losses=["categorical_crossentropy"])
    assert not report[report["quantity"] == "inputs sha256"]["ok"].any()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.drop(index=[3, 40]), "lacks 2 of its"),
        (lambda t: t[t["scenario"] != "seed"], "lacks"),
        (lambda t: pd.concat([t, t.iloc[[5]]]), "duplicated row"),
        (lambda t: t.iloc[:0], "only a header"),
        (lambda t: pd.concat([t, t.iloc[[5]].assign(scenario="made_up")]), "no scenario produces"),
        (lambda t: t.drop(columns="sha256"), "lacks the columns sha256"),
    ],
)
def test_an_incomplete_table_fails_with_a_clear_message(table, tmp_path, capsys, edit, message):
    path = tmp_path / "ref.csv"
    edit(table).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message):
        check.read_table(path)
    assert main(["check", "--table", str(path), "--mode", "numpy"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


@pytest.mark.slow
def test_cli_exit_status(table, tmp_path, capsys):
    args = ["check", "--mode", "numpy", "--scenario", "edges_float32", "--loss", "marginal_crossentropy"]
    assert main(args) == 0
    assert "0 mismatches" in capsys.readouterr().out
    path = tmp_path / "ref.csv"
    broken = table.copy()
    broken.loc[(broken["loss"] == "marginal_crossentropy") & (broken["quantity"] == "mean"), "value"] *= 1.01
    broken.to_csv(path, index=False)
    assert main([*args, "--table", str(path)]) == 1
    assert main(["check", "--table", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*args, "--scenario", "nope"]) == 2
    assert "--scenario: unknown scenario 'nope'" in capsys.readouterr().err


def test_check_shows_progress_on_stderr(table, capsys):
    """segbench check printed nothing for minutes (issue 18 item 8): it says how far it is."""
    check.run_check(
        table, modes=["numpy"], scenarios=["seed", "complete"], losses=["categorical_crossentropy"], progress=True
    )
    err = capsys.readouterr().err
    assert "2/2 scenario-loss pairs" in err and "left" in err
    check.run_check(table, modes=["numpy"], scenarios=["seed"], losses=["categorical_crossentropy"], progress=False)
    assert "scenario-loss pair" not in capsys.readouterr().err
