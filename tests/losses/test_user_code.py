"""segbench values and check survive a user's misbehaving loss and name it and its plugin
(issue 19 item 5, issue 21 item 5): a non-deterministic loss, a loss that ends the process, one
that returns a string, one whose value does not depend on y_pred."""

import textwrap

import pytest

import segbench
from segbench.cli.parser import main
from segbench.losses import plugins, registry

EDGES = ["--scenario", "edges_float32"]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGBENCH_PLUGINS", raising=False)
    before = set(segbench.LOSSES)

    def write(name: str, body: str) -> str:
        path = tmp_path / f"{name}.py"
        path.write_text(
            "import segbench\nimport tensorflow as tf\n\n"
            f"@segbench.register_loss({name!r})\ndef loss(y_true, y_pred):\n" + textwrap.indent(body, "    ")
        )
        return str(path)

    yield write
    for name in set(segbench.LOSSES) - before:
        registry.unregister_loss(name)
    plugins._loaded.clear()


# noise that no two calls can escape by chance: each call scales by one more than the last
NOISY = "loss.calls = getattr(loss, 'calls', 0) + 1\nreturn tf.reduce_sum((y_true - y_pred) ** 2, -1) * loss.calls\n"
RANDOM = "return tf.reduce_sum((y_true - y_pred) ** 2, axis=-1) * (1 + tf.random.uniform([], dtype=y_pred.dtype))\n"
EXITS = "import os\nos._exit(3)\n"
STRING = "return 'not a tensor'\n"
CONSTANT = "return tf.reduce_sum(y_true, axis=-1)\n"


@pytest.mark.slow
def test_values_reports_a_non_deterministic_loss_as_such(plugin, capsys):
    path = plugin("noisy_loss", RANDOM)
    assert main(["values", "--plugin", path, "--loss", "noisy_loss"]) == 1
    err = capsys.readouterr().err
    assert "NON-DETERMINISTIC: noisy_loss (plugin " in err and "differ by" in err
    assert "MISMATCH" not in err


@pytest.mark.slow
def test_check_reports_a_non_deterministic_loss_as_such(plugin, capsys):
    path = plugin("noisy_loss", NOISY)
    assert main(["check", "--plugin", path, "--loss", "noisy_loss", "--mode", "eager", *EDGES]) == 1
    captured = capsys.readouterr()
    assert "NON-DETERMINISTIC: noisy_loss (plugin " in captured.err
    assert "0 mismatches" in captured.out


@pytest.mark.slow
def test_values_survives_a_loss_that_ends_the_process(plugin, capsys):
    path = plugin("exiting_loss", EXITS)
    assert main(["values", "--plugin", path, "--loss", "exiting_loss,categorical_crossentropy"]) == 1
    captured = capsys.readouterr()
    assert "exiting_loss (plugin " in captured.err and "died" in captured.err
    assert "categorical_ce" in captured.out  # the other loss still has its row


@pytest.mark.slow
def test_check_survives_a_loss_that_ends_the_process(plugin, capsys):
    path = plugin("exiting_loss", EXITS)
    assert main(["check", "--plugin", path, "--loss", "exiting_loss", "--mode", "eager", *EDGES]) == 1
    assert "exiting_loss (plugin " in capsys.readouterr().err


@pytest.mark.slow
def test_a_loss_returning_a_string_is_named_with_its_plugin(plugin, capsys):
    path = plugin("string_loss", STRING)
    assert main(["check", "--plugin", path, "--loss", "string_loss", "--mode", "eager", *EDGES]) == 1
    err = capsys.readouterr().err
    assert "string_loss" in err and "plugin " in err and "Traceback" not in err
    assert main(["values", "--plugin", path, "--loss", "string_loss"]) == 1
    err = capsys.readouterr().err
    assert "string_loss" in err and "plugin " in err


@pytest.mark.slow
def test_check_does_not_crash_on_a_loss_that_ignores_y_pred(plugin, capsys):
    path = plugin("constant_loss", CONSTANT)
    assert main(["check", "--plugin", path, "--loss", "constant_loss", "--mode", "eager", *EDGES]) == 1
    err = capsys.readouterr().err
    assert "does not depend on y_pred" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_loss_without_a_numpy_reference_is_said_to_check_precision_not_logic(plugin, capsys):
    path = plugin("plain_loss", "return tf.reduce_sum((y_true - y_pred) ** 2, axis=-1)\n")
    main(["check", "--plugin", path, "--loss", "plain_loss", "--mode", "eager", *EDGES])
    assert "checks precision, not logic" in capsys.readouterr().out


HANGS = "import time\nwhile True:\n    time.sleep(1)\n"


@pytest.mark.slow
def test_values_stops_a_loss_that_never_returns_and_goes_on(plugin, capsys):
    path = plugin("hanging_loss", HANGS)
    args = ["values", "--plugin", path, "--loss", "hanging_loss,categorical_crossentropy", "--timeout", "20"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "hanging_loss (plugin " in captured.err and "past its time limit of 20 s" in captured.err
    assert "categorical_ce" in captured.out  # the other loss still has its row


@pytest.mark.slow
def test_check_stops_a_loss_that_never_returns(plugin, capsys):
    path = plugin("hanging_loss", HANGS)
    args = ["check", "--plugin", path, "--loss", "hanging_loss", "--mode", "eager", *EDGES, "--timeout", "20"]
    assert main(args) == 1
    assert "past its time limit of 20 s" in capsys.readouterr().err


def test_timeout_option_names_itself():
    with pytest.raises(SystemExit):
        main(["values", "--timeout"])
    assert main(["values", "--timeout", "soon"]) == 2
