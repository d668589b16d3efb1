"""segbench run: rows and schema, failing cells, resume after a kill or Ctrl-C, device choice."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segbench import results
from segbench.cli.parser import main
from segbench.measurement.device import DeviceUnavailableError, parse_spec, place, resolve
from segbench.measurement.runner import run
from segbench.measurement.sweep import PROFILES, Case, Sweep
from segbench.results.storage import KEY_COLUMNS, SCHEMA, SCHEMA_VERSION

TINY = PROFILES["tiny"]


def small_sweep(**changes):
    base = {"losses": ("categorical_crossentropy",), "formulations": ("reference",), "batches": (1,)}
    return Sweep(resolutions=((16, 16),), **{**base, **changes})


@pytest.mark.slow
def test_run_writes_one_schema_row_per_cell(tmp_path):
    sweep = small_sweep()
    out = run(TINY, sweep, out=tmp_path / "run", progress=False)
    frame = results.load(out)
    assert list(frame.columns) == list(SCHEMA)
    assert len(frame) == len(sweep.cases()) == 8
    assert (frame["status"] == "ok").all(), frame[["mode", "error"]]
    assert (frame["schema_version"] == SCHEMA_VERSION).all()
    assert frame["run_id"].nunique() == 1
    assert (frame["median_s"] > 0).all() and (frame["compile_s"] > 0).all()
    assert (frame["iqr_s"] >= 0).all()
    assert (frame["rounds"] >= TINY.budget.min_rounds).all()
    raw = frame["raw_times_s"].map(json.loads)
    assert (raw.map(len) == frame["rounds"]).all()
    assert (frame["oracle_abs_diff"] < 1e-5).all()
    assert (frame["roofline_fraction"] > 0).all() and (frame["ceiling_gb_per_s"] > 0).all()
    kernels = ["numpy sum", "xla reduce_sum", "xla max over C, then max", "xla column sums", "xla interleaved blocks"]
    assert frame["ceiling_method"].isin([*kernels, "tf eager reduce_sum", "tf.function reduce_sum"]).all()
    numpy_rows = frame[frame["mode"] == "numpy"]
    assert (numpy_rows["mem_method"] == "tracemalloc").all() and (numpy_rows["peak_mem_bytes"] > 0).all()
    tf_rows = frame[frame["mode"] != "numpy"]
    assert (tf_rows["mem_method"] == _tensorflow_cpu_method()).all()
    assert (tf_rows["peak_mem_bytes"] >= 0).all()  # tensors this small are not tracked (see device.py)
    assert frame["tensorflow_version"].notna().all() and frame["device_name"].notna().all()
    # the tables on disk say the same as the journal
    parquet = pd.read_parquet(out / "results.parquet")
    assert len(parquet) == len(frame)
    assert len(pd.read_csv(out / "results.csv")) == len(frame)
    assert json.loads((out / "run.json").read_text())["run_id"] == frame["run_id"].iloc[0]


def _tensorflow_cpu_method() -> str:
    """TensorFlow's CPU allocator keeps statistics where oneDNN is on (its default on Intel CPUs);
    on an AMD EPYC it is off and there are none: the resident set's high-water mark is used."""
    import tensorflow as tf

    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
    except ValueError:
        return "rss_hwm"
    return "tf_allocator_peak"


@pytest.mark.parametrize("mode", ["numpy", "eager", "xla"])
def test_peak_memory_counts_at_least_the_gradient(mode):
    from segbench.losses.registry import MODES
    from segbench.measurement.device import measure_peak_memory

    case = Case(1, 128, 128, 4, "float32", "categorical_crossentropy", "reference", mode, "forward+backward")
    scene, fn, cpu = case.scene(), case.build(), resolve("cpu")
    backend = MODES[mode].backend
    y_true, y_pred = (place(a, cpu, backend) for a in (scene.y_true, scene.y_pred))
    expected = "tracemalloc" if mode == "numpy" else _tensorflow_cpu_method()
    if expected != "rss_hwm":  # the resident set's high-water mark sees only memory not touched before
        fn(y_true, y_pred)
    peak, method = measure_peak_memory(lambda: fn(y_true, y_pred), cpu, backend)
    assert method == expected
    assert peak >= scene.y_pred.nbytes  # the gradient alone is that big
    if expected != "rss_hwm":  # (a first call's high-water mark also holds XLA's compilation)
        assert peak < 20 * scene.y_pred.nbytes


def test_numpy_only_run_does_not_import_tensorflow(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        from segbench.measurement.runner import run
        from segbench.measurement.sweep import PROFILES, Sweep
        sweep = Sweep(modes=("numpy",), batches=(1,), resolutions=((8, 8),))
        run(PROFILES["tiny"], sweep, out={str(tmp_path / "np")!r}, progress=False)
        print("tensorflow" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def plugin(tmp_path: Path, body: str) -> str:
    """A file that the worker imports before measuring (how a test changes what a worker does)."""
    path = tmp_path / f"plugin_{abs(hash(body)):x}.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


FAILING_BUILD = """
from segbench.measurement.sweep import Case
original = Case.build
def build(self):
    if self.mode == "function":
        raise RuntimeError("cannot compile this shape\\nsecond line")
    return original(self)
Case.build = build
"""


@pytest.mark.slow
def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_PLUGINS", plugin(tmp_path, FAILING_BUILD))
    frame = results.load(run(TINY, small_sweep(), out=tmp_path / "r", progress=False))
    failed = frame[frame["mode"] == "function"]
    assert (failed["status"] == "error").all()
    assert (failed["error"] == "RuntimeError: cannot compile this shape").all()
    assert (frame[frame["mode"] != "function"]["status"] == "ok").all()
    assert len(frame) == 8


def test_out_of_memory_is_a_status(tmp_path, monkeypatch):
    body = """
    from segbench.measurement.sweep import Case
    def build(self):
        raise MemoryError("Unable to allocate 64.0 GiB")
    Case.build = build
    """
    monkeypatch.setenv("SEGBENCH_PLUGINS", plugin(tmp_path, body))
    frame = results.load(run(TINY, small_sweep(modes=("numpy",)), out=tmp_path / "r", progress=False))
    assert (frame["status"] == "oom").all()


KILLING_BUILD = """
import os, signal
from segbench.measurement.sweep import Case
original = Case.build
def build(self):
    if self.mode == "function" and self.pass_ == "forward":
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self)
Case.build = build
"""


@pytest.mark.slow
def test_a_cell_that_kills_its_worker_is_recorded_and_a_fresh_worker_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_PLUGINS", plugin(tmp_path, KILLING_BUILD))
    frame = results.load(run(TINY, small_sweep(), out=tmp_path / "r", progress=False))
    assert len(frame) == 8  # no --resume needed
    killed = frame[frame["status"] == "killed"]
    assert list(killed["mode"]) == ["function"] and list(killed["pass"]) == ["forward"]
    assert "killed by signal SIGKILL" in killed["error"].iloc[0]
    assert (frame[frame["status"] != "killed"]["status"] == "ok").all()


def test_existing_out_needs_resume(tmp_path):
    sweep = small_sweep(modes=("numpy",))
    out = run(TINY, sweep, out=tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="already holds results: add --resume"):
        run(TINY, sweep, out=out, progress=False)
    before = results.load(out)
    run(TINY, sweep, out=out, resume=True, progress=False)  # nothing left to do
    assert len(results.load(out)) == len(before)


SLOW_CELLS = """
import time
from segbench.measurement import cells
measure_cell = cells.Runner.measure_cell
def slow(self, case, **kwargs):
    row = measure_cell(self, case, **kwargs)
    time.sleep(0.4)
    return row
cells.Runner.measure_cell = slow
"""


SLOW_RUN_ARGS = ["run", "--profile", "tiny", "--mode", "numpy", "--batch", "1,2", "--quiet"]
SLOW_RUN_CELLS = len(TINY.sweep.replace(modes=("numpy",), batches=(1, 2)).cases())


def start_slow_run(out: Path) -> subprocess.Popen:
    args = [*SLOW_RUN_ARGS, "--out", str(out)]
    env = {**os.environ, "SEGBENCH_PLUGINS": plugin(out.parent, SLOW_CELLS)}
    code = "import sys; from segbench.cli.parser import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def wait_for_cells(out: Path, count: int, process: subprocess.Popen, timeout: float = 60) -> None:
    journal = out / "cells.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("the run produced no cells in time")


@pytest.mark.slow
def test_kill_mid_sweep_then_resume_loses_nothing(tmp_path):
    out = tmp_path / "killed"
    process = start_slow_run(out)
    wait_for_cells(out, 3, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = results.load(out)
    assert 3 <= len(before) < SLOW_RUN_CELLS
    assert main([*SLOW_RUN_ARGS, "--out", str(out), "--resume"]) == 0
    after = results.load(out)
    assert len(after) == SLOW_RUN_CELLS
    assert not after.duplicated(list(KEY_COLUMNS)).any()
    assert (after["status"] == "ok").all()
    assert after["run_id"].nunique() == 1
    # the cells measured before the kill are kept as they were, not redone
    kept = after.set_index(list(KEY_COLUMNS)).loc[before.set_index(list(KEY_COLUMNS)).index]
    assert (kept["finished_at"].values == before.set_index(list(KEY_COLUMNS))["finished_at"].values).all()


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_keeping_finished_cells_and_says_how_to_resume(tmp_path, sig, code):
    out = tmp_path / "interrupted"
    process = start_slow_run(out)
    wait_for_cells(out, 2, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    assert f"stopped by {sig.name}".encode() in stderr
    assert b"Continue with: segbench run --resume --out" in stderr
    assert b"Traceback" not in stderr
    frame = results.load(out)
    assert len(frame) >= 2 and (frame["status"] == "ok").all()  # a signal never marks a cell killed
    assert main([*SLOW_RUN_ARGS, "--out", str(out), "--resume"]) == 0
    assert len(results.load(out)) == SLOW_RUN_CELLS


def test_device_spec_parsing():
    assert parse_spec("auto") == ("auto", None)
    assert parse_spec("GPU:1") == ("gpu", 1)
    with pytest.raises(ValueError, match="--device must be auto, cpu, gpu or gpu:N"):
        parse_spec("tpu")
    with pytest.raises(ValueError, match="--device"):
        parse_spec("cpu:1")
    assert resolve("cpu").kind == "CPU"


def test_asking_for_a_missing_gpu_is_a_clear_error():
    tf = pytest.importorskip("tensorflow")
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailableError, match="--device gpu:0: TensorFlow sees 0 GPU"):
        resolve("gpu:0")
    assert resolve("auto").kind == "CPU"


@pytest.mark.gpu
def test_gpu_run(tmp_path):
    tf = pytest.importorskip("tensorflow")
    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("no GPU visible to TensorFlow on this machine")
    frame = results.load(run(TINY, small_sweep(), device="gpu", out=tmp_path / "gpu", progress=False))
    tf_rows = frame[frame["mode"] != "numpy"]
    assert (tf_rows["device"] == "GPU:0").all() and (tf_rows["status"] == "ok").all()
    assert (tf_rows["mem_method"] == "tf_allocator_peak").all() and (tf_rows["peak_mem_bytes"] > 0).all()


@pytest.mark.slow
def test_cli_run_prints_the_comparison_and_bad_options_name_themselves(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            ["run", "--profile", "tiny", "--loss", "marginal_crossentropy", "--res", "16", "--out", str(out), "--quiet"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "XLA x" in printed and "marginal_ce/ref" in printed and "segbench compare RUN" in printed
    # the end of a run fits a terminal (but for the line naming the run directory, as long as its path)
    assert max(len(line) for line in printed.splitlines() if str(out) not in line) <= 100
    assert main(["run", "--batch", "1,x", "--out", str(tmp_path / "bad")]) == 2
    assert "--batch takes comma-separated integers" in capsys.readouterr().err
    assert main(["run", "--mode", "jaxx", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown mode 'jaxx'; expected one of: numpy, eager, function, xla, jax, jax-jit" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "bad")


@pytest.mark.slow
def test_each_cell_is_visited_as_often_as_the_profile_says_and_pooled(tmp_path):
    from segbench.measurement.sweep import Profile, TimerBudget

    budget = TimerBudget(min_run_time=0.02, min_rounds=4, max_rounds=20, warmup_time=0.0, visits=2)
    sweep = small_sweep(modes=("numpy", "xla"), passes=("forward",), batches=(1, 2))
    out = run(Profile("two-visits", "test", sweep, budget), out=tmp_path / "v", progress=False)
    journal = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert sorted(r["visit"] for r in journal) == [1] * 4 + [2] * 4
    assert [r["visit"] for r in journal[:4]] == [1] * 4  # the whole sweep once, then again
    frame = results.load(out)
    assert len(frame) == 4 and (frame["visits"] == 2).all()
    for _, row in frame.iterrows():
        visits = [r for r in journal if r["mode"] == row["mode"] and r["batch"] == row["batch"]]
        pooled = [t for r in visits for t in json.loads(r["raw_times_s"])]
        assert json.loads(row["raw_times_s"]) == pooled and row["rounds"] == len(pooled) >= 4
        assert visits[1]["calls_per_round"] == visits[0]["calls_per_round"]
        assert row["median_s"] == pytest.approx(float(np.median(pooled)))
        # every visit builds the cell afresh: compile_s is the median of the visits' first calls
        assert all(r["compile_s"] > 0 for r in visits)
        assert row["compile_s"] == pytest.approx(float(np.median([r["compile_s"] for r in visits])))
    assert len(pd.read_parquet(out / "results.parquet")) == 4  # the table pools visits too


def test_a_later_visit_that_fails_keeps_the_cell_and_says_so():
    base = {"run_id": "r", "loss": "l", "formulation": "f", "mode": "m", "pass": "forward", "batch": 1}
    base |= {"height": 8, "width": 8, "classes": 4, "dtype": "float32"}
    rows = [
        {**base, "visit": 1, "status": "ok", "raw_times_s": "[1.0, 2.0]", "compile_s": 0.5, "median_s": 1.5},
        {**base, "visit": 2, "status": "killed", "error": "the worker was killed by signal SIGKILL"},
    ]
    (row,) = results.aggregate_visits(pd.DataFrame(rows)).to_dict("records")
    assert row["status"] == "ok" and row["visits"] == 1 and "visit 2: the worker was killed" in row["error"]


# --- resume continues the run it names, with the plan in its run.json, and nothing else ----------

NUMPY_ARGS = ["run", "--profile", "tiny", "--mode", "numpy", "--loss", "categorical_crossentropy", "--quiet"]


def drop_last_rows(out: Path, count: int) -> None:
    journal = out / "cells.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-count]))


def test_resume_takes_profile_grid_and_shard_from_run_json(tmp_path):
    out = tmp_path / "sharded"
    assert main([*NUMPY_ARGS, "--batch", "1,2", "--shard", "2/2", "--out", str(out)]) == 0
    complete = results.load(out)
    plan = json.loads((out / "run.json").read_text())
    assert plan["profile"] == "tiny" and plan["shard"] == "2/2"
    assert plan["sweep"]["batches"] == [1, 2] and plan["sweep"]["modes"] == ["numpy"]
    drop_last_rows(out, 2)
    # no options: the run's own plan (not the default profile, not the whole sweep)
    assert main(["run", "--resume", "--out", str(out), "--quiet"]) == 0
    resumed = results.load(out)
    assert len(resumed) == len(complete)
    assert set(resumed["batch"]) == set(complete["batch"]) and set(resumed["profile"]) == {"tiny"}
    assert json.loads((out / "run.json").read_text()) == plan


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--batch", "4"], "batches 4 (the run's: 1)"),
        (["--profile", "quick"], "profile quick (the run's: tiny)"),
        (["--shard", "1/2"], "shard 1/2 (the run's: none)"),
        (["--mode", "numpy,eager"], "modes numpy,eager (the run's: numpy)"),
    ],
)
def test_resume_refuses_options_that_contradict_the_run(tmp_path, capsys, options, named):
    out = tmp_path / "r"
    assert main([*NUMPY_ARGS, "--batch", "1", "--out", str(out)]) == 0
    drop_last_rows(out, 1)
    before = (out / "cells.jsonl").read_text()
    capsys.readouterr()
    assert main(["run", "--resume", "--out", str(out), *options]) == 2
    error = capsys.readouterr().err
    assert named in error and "another plan" in error
    assert (out / "cells.jsonl").read_text() == before  # nothing measured into it
    with pytest.raises(ValueError, match="another plan"):  # the API refuses too
        run(TINY, small_sweep(modes=("numpy",), batches=(2,)), out=out, resume=True, progress=False)


def test_resume_refuses_a_run_of_a_newer_schema(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*NUMPY_ARGS, "--batch", "1", "--out", str(out)]) == 0
    drop_last_rows(out, 1)
    meta = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**meta, "schema_version": SCHEMA_VERSION + 1}))
    before = (out / "cells.jsonl").read_text()
    assert main(["run", "--resume", "--out", str(out)]) == 2
    assert f"newer segbench (schema version {SCHEMA_VERSION + 1}" in capsys.readouterr().err
    assert (out / "cells.jsonl").read_text() == before


@pytest.mark.slow
def test_resume_without_out_picks_the_newest_unfinished_run_and_says_which(tmp_path, monkeypatch, capsys):
    from segbench.measurement import runner

    monkeypatch.setattr(runner, "DEFAULT_RESULTS", tmp_path)
    older = tmp_path / "zzz-older-unfinished"  # sorts last by name, but started first
    assert main([*NUMPY_ARGS, "--batch", "1", "--out", str(older)]) == 0
    drop_last_rows(older, 1)
    newer = tmp_path / "aaa-newer-unfinished"
    assert main([*NUMPY_ARGS, "--batch", "2", "--out", str(newer)]) == 0
    drop_last_rows(newer, 1)
    finished = tmp_path / "mmm-newest-finished"
    assert main([*NUMPY_ARGS, "--batch", "1", "--out", str(finished)]) == 0
    capsys.readouterr()
    assert main(["run", "--resume", "--quiet"]) == 0
    assert f"resuming {newer}" in capsys.readouterr().out
    assert len(results.load(newer)) == len(results.load(finished))
    assert set(results.load(newer)["batch"]) == {2}
    assert main(["run", "--resume", "--quiet"]) == 0  # then the older one
    assert f"resuming {older}" in capsys.readouterr().out
    assert main(["run", "--resume"]) == 2  # nothing left
    assert "no unfinished run" in capsys.readouterr().err


# --- a loss that never returns ----------------------------------------------------------------

HANGING_CELLS = """
import time
from segbench.measurement import cells
measure_cell = cells.Runner.measure_cell
def hang(self, case, **kwargs):
    if case.batch == 2:
        while True:
            time.sleep(1)
    return measure_cell(self, case, **kwargs)
cells.Runner.measure_cell = hang
"""


@pytest.mark.slow
def test_a_cell_that_never_returns_is_stored_as_timeout_and_the_sweep_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_PLUGINS", plugin(tmp_path, HANGING_CELLS))
    sweep = small_sweep(modes=("numpy",), batches=(1, 2, 3))
    started = time.monotonic()
    out = run(TINY, sweep, out=tmp_path / "r", progress=False, time_limit=3)
    assert time.monotonic() - started < 60
    frame = results.load(out).set_index("batch")
    assert frame.loc[2, "status"].tolist() == ["timeout", "timeout"]
    assert "past its time limit of 3 s" in frame.loc[2, "error"].iloc[0]
    assert (frame.loc[[1, 3], "status"] == "ok").all()  # a fresh worker went on
    before = (out / "cells.jsonl").read_text()
    run(TINY, sweep, out=out, resume=True, progress=False, time_limit=3)  # not walked into again
    assert (out / "cells.jsonl").read_text() == before


def test_cell_time_limit_grows_with_budget_and_size_and_parses():
    from segbench.cli.options import parse_time_limit
    from segbench.measurement.runner import cell_time_limit

    small = Case(1, 64, 64, 4, "float32", "categorical_crossentropy", "reference", "xla", "forward")
    large = Case(16, 512, 512, 4, "float32", "categorical_crossentropy", "reference", "xla", "forward")
    default = PROFILES["default"].budget
    assert 60 <= cell_time_limit(small, default) < cell_time_limit(large, default) < 120
    assert cell_time_limit(small, PROFILES["full"].budget) > cell_time_limit(small, default)
    assert parse_time_limit("2.5") == 2.5 and parse_time_limit("none") == 0.0 and parse_time_limit(None) is None
    for bad in ("-1", "abc", "inf", "nan"):
        with pytest.raises(ValueError, match="--cell-timeout takes seconds"):
            parse_time_limit(bad)
