"""segbench choose (segbench.measurement.choice): the fastest formulation that agrees with the
oracle, measured on this machine and recorded under everything the choice depends on."""

from __future__ import annotations

import errno
import json
import textwrap

import numpy as np
import pytest

from segbench.cli.parser import main
from segbench.losses import registry
from segbench.measurement import choice

SHAPE = (2, 32, 32, 4)  # small: these tests check the choosing, not the speeds


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(choice.CACHE_ENV, str(tmp_path / "cache"))


def test_the_fastest_formulation_that_agrees_with_the_oracle_is_chosen_and_recorded():
    made = choice.choose_formulation("categorical_crossentropy", "xla", shape=SHAPE, rounds=3)
    names = {c.formulation for c in made.candidates}
    assert {"reference", "fused", "blocked"} <= names
    assert all(c.within_tolerance and len(c.times_s) == 3 for c in made.candidates)
    assert made.formulation == min(made.candidates, key=lambda c: c.median_s).formulation
    assert not made.cached and made.shape == SHAPE and made.pass_ == "forward"
    recorded = json.loads(choice.cache_path().read_text())
    (entry,) = recorded.values()
    assert entry["formulation"] == made.formulation and entry["machine"]["cpu_count"] >= 1
    assert made.loss_fn().formulation == made.formulation
    text = "\n".join(made.describe())
    assert f"chosen: {made.formulation} (measured now" in text and "within tolerance" in text


def test_a_formulation_off_the_oracle_is_never_chosen_however_fast(monkeypatch):
    build = registry.loss_fn
    scene = choice_scene()
    expected = float(build("categorical_crossentropy", "eager")(scene.y_true, scene.y_pred))

    def wrong_fused(loss, mode, *, formulation="reference", **kwargs):
        if formulation == "fused":
            return lambda y_true, y_pred: np.float32(1.01 * expected)  # instant, and 1 % off
        return build(loss, mode, formulation=formulation, **kwargs)

    monkeypatch.setattr(registry, "loss_fn", wrong_fused)
    made = choice.choose_formulation("categorical_crossentropy", "function", scene.y_true, scene.y_pred, rounds=3)
    fused = next(c for c in made.candidates if c.formulation == "fused")
    assert not fused.within_tolerance and fused.median_s < min(
        c.median_s for c in made.candidates if c.formulation != "fused"
    )
    assert made.formulation != "fused"
    assert "OFF: never chosen" in "\n".join(made.describe())


def test_the_timed_calls_get_tensors_placed_before_the_clock_starts(monkeypatch):
    # A numpy input is copied into a tensor by every call: at batch 16, 512x512 that copy took
    # longer than the loss (33 ms for every formulation, where the fastest takes 5.7 ms).
    import tensorflow as tf

    build, seen = registry.loss_fn, []

    def recording(*args, **kwargs):
        fn = build(*args, **kwargs)

        def call(y_true, y_pred):
            seen.append((type(y_true), type(y_pred)))
            return fn(y_true, y_pred)

        return call

    monkeypatch.setattr(registry, "loss_fn", recording)
    choice.choose_formulation("categorical_crossentropy", "xla", shape=SHAPE, rounds=3, record=False)
    assert seen and all(issubclass(t, tf.Tensor) and issubclass(p, tf.Tensor) for t, p in seen)


def choice_scene():
    from segbench.measurement.sweep import scene_for

    return scene_for(*SHAPE, "float32")


def test_a_recorded_choice_is_reused_on_the_same_machine_and_measured_again_when_asked(monkeypatch):
    first = choice.choose_formulation("marginal_crossentropy", "function", shape=SHAPE, rounds=3)

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(choice, "_interleaved", no_measuring)
    again = choice.choose_formulation("marginal_crossentropy", "function", shape=SHAPE, rounds=3)
    assert again.cached and again.formulation == first.formulation and again.candidates == first.candidates
    assert "recorded earlier" in "\n".join(again.describe())
    with pytest.raises(AssertionError, match="measured again"):
        choice.choose_formulation("marginal_crossentropy", "function", shape=SHAPE, rounds=3, refresh=True)
    with pytest.raises(AssertionError, match="measured again"):  # another pass is another cell
        choice.choose_formulation("marginal_crossentropy", "function", shape=SHAPE, rounds=3, gradient=True)


def test_another_machine_or_backend_version_measures_again(monkeypatch):
    choice.choose_formulation("categorical_crossentropy", "function", shape=SHAPE, rounds=3)
    identity = choice.machine_identity

    def elsewhere(backend):
        return {**identity(backend), "cpu_model": "Another CPU", "backend_version": "0.0"}

    monkeypatch.setattr(choice, "machine_identity", elsewhere)
    monkeypatch.setattr(choice, "_interleaved", lambda *a, **k: (_ for _ in ()).throw(AssertionError("measured")))
    with pytest.raises(AssertionError, match="measured"):
        choice.choose_formulation("categorical_crossentropy", "function", shape=SHAPE, rounds=3)


def test_a_damaged_record_is_measured_again_and_rewritten():
    path = choice.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    made = choice.choose_formulation("categorical_crossentropy", "function", shape=SHAPE, rounds=3)
    assert not made.cached and len(json.loads(path.read_text())) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "nope"}, "unknown loss 'nope'"),
        ({"mode": "fast"}, "unknown mode 'fast'"),
        ({"reduction": "none"}, "reduction must be mean or sum"),
        ({"rounds": 2}, "rounds must be an integer >= 3"),
        ({"shape": (2, 32, 32, 1)}, "shape must be"),
        ({"shape": None}, "give y_true and y_pred, or shape"),
        ({"dtype": "int8"}, "unknown dtype 'int8'"),
        ({"formulations": ("fused", "quick")}, "has no quick"),
        ({"mode": "numpy", "dtype": "bfloat16"}, "mode numpy does not support bfloat16"),
    ],
)
def test_bad_arguments_say_what_was_expected(kwargs, message):
    arguments = {"loss": "categorical_crossentropy", "mode": "function", "shape": SHAPE, **kwargs}
    with pytest.raises(ValueError, match=message):
        choice.choose_formulation(arguments.pop("loss"), arguments.pop("mode"), **arguments)


def test_inputs_are_validated_like_a_loss_call():
    scene = choice_scene()
    with pytest.raises(ValueError, match="y_true must be one-hot"):
        choice.choose_formulation("categorical_crossentropy", "function", scene.y_true * 0.5, scene.y_pred)
    with pytest.raises(ValueError, match="give both y_true and y_pred"):
        choice.choose_formulation("categorical_crossentropy", "function", scene.y_true)


def test_the_command_prints_every_candidate_and_where_the_choice_is_recorded(capsys):
    argv = ["choose", "missing_annotation_crossentropy", "--mode", "function", "--batch", "2", "--res", "32"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "missing_annotation_crossentropy, function, forward, batch 2, 32x32, C=4, float32" in out
    assert all(name in out for name in ("reference", "fused", "blocked"))
    assert "chosen: " in out and f"recorded in {choice.cache_path()}" in out
    assert main([*argv, "--no-record", "--refresh"]) == 0
    assert "recorded in" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--res", "32,64"], "--res takes one resolution"),
        (["--batch", "0"], "--batch must be an integer >= 1"),
        (["--classes", "1"], "--classes must be an integer >= 2"),
        (["--pass", "backward"], "--pass must be forward or forward+backward"),
        (["--res", "0x32"], "--res must be at least 1x1"),
    ],
)
def test_the_command_names_a_bad_option(capsys, extra, message):
    assert main(["choose", "categorical_crossentropy", *extra]) == 2
    assert message in capsys.readouterr().err


def _measuring_raises(monkeypatch):
    def measured(*args, **kwargs):
        raise AssertionError("measured")

    monkeypatch.setattr(choice, "_interleaved", measured)


@pytest.mark.parametrize(
    "damage",
    [
        {"formulation": "bogus"},
        {"candidates": []},
        {"machine": None},
        {"shape": [1, 2]},
        {"loss": "marginal_crossentropy"},
        {"candidates[0].times_s": []},
        {"candidates[*].within_tolerance": False},
    ],
    ids=lambda damage: next(iter(damage)),
)
def test_a_damaged_recorded_entry_is_measured_again_not_trusted(monkeypatch, damage):
    choice.choose_formulation("categorical_crossentropy", "function", shape=SHAPE, rounds=3)
    path = choice.cache_path()
    data = json.loads(path.read_text())
    (key,) = data
    (field, value) = next(iter(damage.items()))
    if field == "candidates[0].times_s":
        data[key]["candidates"][0]["times_s"] = value
    elif field == "candidates[*].within_tolerance":
        for candidate in data[key]["candidates"]:
            candidate["within_tolerance"] = value
    else:
        data[key][field] = value
    path.write_text(json.dumps(data))
    _measuring_raises(monkeypatch)
    with pytest.raises(AssertionError, match="measured"):
        choice.choose_formulation("categorical_crossentropy", "function", shape=SHAPE, rounds=3)


def test_a_cache_that_cannot_be_written_keeps_the_choice_and_says_so(monkeypatch, capsys):
    def read_only(path, key, made):
        raise OSError(errno.EROFS, "Read-only file system", str(path) + ".lock")

    monkeypatch.setattr(choice, "_record", read_only)
    made = choice.choose_formulation("categorical_crossentropy", "function", shape=SHAPE, rounds=3)
    assert made.formulation and "Read-only file system" in made.not_recorded
    argv = ["choose", "categorical_crossentropy", "--mode", "function", "--batch", "2", "--res", "32"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "chosen: " in captured.out and "recorded in" not in captured.out
    assert "not recorded (" in captured.err and "Read-only file system" in captured.err


def test_a_sum_is_named_in_the_answer():
    made = choice.choose_formulation("categorical_crossentropy", "function", shape=SHAPE, rounds=3, reduction="sum")
    assert ", float32, reduction sum, on " in made.describe()[0]


def test_editing_a_users_loss_measures_it_again(tmp_path, monkeypatch):
    from segbench.losses import plugins

    path = tmp_path / "edited_loss.py"
    body = textwrap.dedent(
        """
        import segbench
        import tensorflow as tf

        @segbench.register_loss("edited_crossentropy")
        def edited(y_true, y_pred):
            return -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)), axis=-1)
        """
    )
    path.write_text(body)
    try:
        plugins.load_all([str(path)], export=False)
        choice.choose_formulation("edited_crossentropy", "eager", shape=SHAPE, rounds=3)
        _measuring_raises(monkeypatch)
        assert choice.choose_formulation("edited_crossentropy", "eager", shape=SHAPE, rounds=3).cached
        path.write_text(body + "# edited: another smoothing\n")
        with pytest.raises(AssertionError, match="measured"):
            choice.choose_formulation("edited_crossentropy", "eager", shape=SHAPE, rounds=3)
    finally:
        registry.unregister_loss("edited_crossentropy")
        plugins._loaded.clear()
