"""segbench ab: two source trees (or commits) measured in alternation, then per-cell verdicts."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from segbench import results
from segbench.cli.parser import main
from segbench.measurement.sweep import PROFILES, Sweep
from segbench.verdicts.ab import run_ab

ROOT = Path(__file__).resolve().parents[2]
QUICK = PROFILES["quick"]
NUMPY_SWEEP = Sweep(losses=("categorical_crossentropy",), modes=("numpy",), batches=(1, 2), resolutions=((16, 16),))


@pytest.fixture(scope="module")
def slowed(tmp_path_factory) -> Path:
    """A copy of this checkout whose numpy categorical cross-entropy (fused, forward) at 2x16x16 is 1 ms slower."""
    out = tmp_path_factory.mktemp("slowed") / "tree"
    args = ["--loss", "categorical_crossentropy", "--formulation", "fused", "--mode", "numpy", "--pass", "forward"]
    args += ["--shape", "2x16x16"]
    subprocess.run(
        [sys.executable, str(ROOT / "docs" / "verdicts" / "slowed_copy.py"), str(out), *args, "--delay-ms", "1"],
        check=True,
        capture_output=True,
    )
    return out


@pytest.mark.slow
def test_the_slowed_cell_and_only_it_is_slower(tmp_path, slowed):
    table = run_ab(str(ROOT), str(slowed), QUICK, NUMPY_SWEEP, out=tmp_path / "ab", rounds=8, visits=4, progress=False)
    verdicts = table.set_index(["formulation", "pass", "batch"])["verdict"]
    assert verdicts[("fused", "forward", 2)] == "slower"
    # and nothing else, either way: with the builds of a side in one process, a cell (often the one
    # after the slowed one) was called slower or faster by 35-75 % in 4 of 12 runs (issue 18)
    assert verdicts.drop(index=[("fused", "forward", 2)]).isin(["no change", "inconclusive"]).all()
    # both sides are ordinary runs: compare gives the same verdicts again
    again = pd.read_csv(tmp_path / "ab" / "verdicts.csv")
    assert list(again["verdict"]) == list(table["verdict"])
    a, b = results.load(tmp_path / "ab" / "A"), results.load(tmp_path / "ab" / "B")
    assert len(a) == len(b) == len(NUMPY_SWEEP.cases())
    assert (
        (a["rounds"] == 8).all() and (a["visits"] == 4).all() and (a["calls_per_round"] == b["calls_per_round"]).all()
    )


def test_each_build_is_a_fresh_worker_per_side_and_later_builds_shuffle_the_cells(tmp_path, monkeypatch):
    """A build is the unit the interval sees vary: a process offset of a side (where its memory
    lands, which core it runs on) must vary with it, not fall on every build of one side alike."""
    from segbench.verdicts import ab

    started = []
    real_start = ab.Worker.start

    def start(*args, **kwargs):
        worker = real_start(*args, **kwargs)
        started.append(worker.process.pid)
        return worker

    monkeypatch.setattr(ab.Worker, "start", start)
    sweep = NUMPY_SWEEP.replace(passes=("forward",), batches=(1,))
    run_ab(str(ROOT), str(ROOT), QUICK, sweep, out=tmp_path / "ab", rounds=3, visits=3, progress=False)
    assert len(started) == len(set(started)) == 2 * 3  # two sides, three builds, a new process each
    for side in ("A", "B"):
        rows = [json.loads(line) for line in (tmp_path / "ab" / side / "cells.jsonl").read_text().splitlines()]
        assert [row["visit"] for row in rows] == [1, 1, 2, 2, 3, 3]  # every cell built, then every cell again
        for formulation in ("reference", "fused"):  # calibrated once per cell, kept in every build
            assert len({row["calls_per_round"] for row in rows if row["formulation"] == formulation}) == 1

    cases = NUMPY_SWEEP.cases()
    assert ab.build_order(cases, 1) == cases  # the sweep's order first
    later = [ab.build_order(cases, visit) for visit in (2, 3, 4)]
    assert all(sorted(order, key=cases.index) == cases for order in later)  # every cell, once
    assert len({tuple(c.short_name for c in order) for order in later}) == 3  # each build its own order
    assert ab.build_order(cases, 3) == ab.build_order(cases, 3)  # the same every run


@pytest.mark.slow
def test_a_commit_against_itself_flags_nothing_and_exits_0(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = ["ab", "HEAD", "HEAD", "--profile", "quick", "--mode", "numpy", "--batch", "1", "--res", "16"]
    assert main([*args, "--rounds", "6", "--out", str(tmp_path / "aa"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "0 slower" in captured.out  # the verdict line comes first, on stdout
    meta = json.loads((tmp_path / "aa" / "A" / "run.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert meta["git_commit"] == head and meta["source"] == "segbench ab"
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "segbench-ab-" not in worktrees  # the temporary checkouts are gone


@pytest.mark.slow
def test_jax_cells_are_measured_by_a_jax_worker_on_each_side(tmp_path, capsys, monkeypatch):
    """Each backend in its own worker a side (issue 17): numpy and jax-jit cells of one ab."""
    pytest.importorskip("jax")
    monkeypatch.chdir(ROOT)
    args = ["ab", "HEAD", "HEAD", "--profile", "quick", "--mode", "numpy,jax-jit", "--batch", "1", "--res", "16"]
    args += ["--loss", "categorical_crossentropy", "--formulation", "reference,keras", "--rounds", "6", "--quiet"]
    # what is checked here is where each cell ran; an A/A's verdicts: test_a_commit_against_itself
    code = main([*args, "--out", str(tmp_path / "aa")])
    assert code in (0, 1), capsys.readouterr()
    for side in ("A", "B"):
        rows = [json.loads(line) for line in (tmp_path / "aa" / side / "cells.jsonl").read_text().splitlines()]
        by_mode = {row["mode"]: row for row in rows}
        assert by_mode["jax-jit"]["status"] == "ok" and by_mode["jax-jit"]["backend"] == "jax"
        assert by_mode["numpy"]["status"] == "ok" and by_mode["numpy"]["backend"] == "numpy"


def test_bad_refs_name_the_side(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["ab", "no-such-ref", "HEAD", "--mode", "numpy", "--out", str(tmp_path / "x")]) == 2
    assert "A: 'no-such-ref' is neither a directory nor a commit" in capsys.readouterr().err
    assert main(["ab", "HEAD", str(tmp_path), "--mode", "numpy", "--out", str(tmp_path / "y")]) == 2
    assert "without segbench/__init__.py" in capsys.readouterr().err


def copy_with_fused_numpy(tmp_path, name: str, body: str):
    """A copy of segbench whose numpy fused cross-entropy is ``_replaced(*args, **kwargs)`` with ``body``."""
    import shutil

    tree = tmp_path / name
    shutil.copytree(ROOT / "segbench", tree / "segbench", ignore=shutil.ignore_patterns("__pycache__"))
    numpy_losses = tree / "segbench" / "losses" / "numpy_impl.py"
    numpy_losses.write_text(
        numpy_losses.read_text()
        + "\n\ndef _replaced(*args, **kwargs):\n"
        + textwrap.indent(body, "    ")
        + '\n\nIMPLEMENTATIONS[("categorical_crossentropy", "fused")] = (_replaced, _replaced)\n'
    )
    return tree


@pytest.mark.slow
def test_a_cell_that_fails_on_one_side_names_that_side(tmp_path, capsys):
    """A cell one side cannot run (an older commit without a formulation, a bug) is recorded on both
    sides as not run, and its error says which side's code raised."""
    tree = copy_with_fused_numpy(tmp_path, "broken", "raise ValueError('broken on purpose')\n")
    sweep = NUMPY_SWEEP.replace(passes=("forward",), batches=(1,))
    table = run_ab(str(ROOT), str(tree), QUICK, sweep, out=tmp_path / "ab", rounds=4, visits=1, progress=False)
    assert set(table["formulation"]) == {"reference"}  # only the cell both sides ran is compared
    for side in ("A", "B"):
        rows = results.load(tmp_path / "ab" / side).set_index("formulation")
        assert rows.loc["fused", "status"] == "error"
        assert f"side B ({tree})" in rows.loc["fused", "error"] and "broken on purpose" in rows.loc["fused", "error"]


def test_a_side_that_does_not_build_is_named_with_the_end_of_its_error(tmp_path, capsys):
    """Issue 19 item 6: not just "the worker exited with code 1"."""
    import shutil

    tree = tmp_path / "broken"
    shutil.copytree(ROOT / "segbench", tree / "segbench", ignore=shutil.ignore_patterns("__pycache__"))
    init = tree / "segbench" / "__init__.py"
    init.write_text(init.read_text() + "\ndef broken_on_purpose(:\n")
    args = ["ab", str(tree), str(ROOT), "--mode", "numpy", "--batch", "1", "--res", "16", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "ab")]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("segbench ab: error:"))
    assert f"side A ({tree}) does not build: the worker exited with code 1" in line
    assert "SyntaxError" in err.split(line)[1] and "broken_on_purpose" in err.split(line)[1]


def git_repo(path: Path) -> Path:
    """A small git repository holding a copy of segbench, one commit, a branch named docs and a
    directory named docs."""
    import shutil

    shutil.copytree(ROOT / "segbench", path / "segbench", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "docs").mkdir()
    (path / "docs" / "notes.md").write_text("notes\n")
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "."], [*env, "commit", "-q", "-m", "one"], ["branch", "docs"]):
        subprocess.run(["git", *command], cwd=path, check=True, capture_output=True)
    return path


def test_a_dirty_working_tree_measured_as_head_warns_and_worktree_measures_it(tmp_path, capsys):
    from segbench.verdicts.ab import checkout

    repo = git_repo(tmp_path / "repo")
    with checkout("HEAD", "A", repo, tmp_path) as code:
        assert code.root != repo
    assert "WITHOUT the uncommitted" not in capsys.readouterr().err  # clean: nothing to say
    sweep = repo / "segbench" / "measurement" / "sweep.py"
    sweep.write_text(sweep.read_text() + "\n# changed\n")
    with checkout("HEAD", "A", repo, tmp_path) as code:
        pass
    err = capsys.readouterr().err
    assert "warning: A = HEAD measures commit" in err and "WITHOUT the uncommitted changes" in err
    assert "give WORKTREE" in err
    with checkout("WORKTREE", "B", repo, tmp_path) as code:
        assert code.root == repo.resolve() and (
            code.root / "segbench" / "measurement" / "sweep.py"
        ).read_text().endswith("# changed\n")
    assert "B = the working tree" in capsys.readouterr().err


def test_a_branch_that_is_also_a_directory_says_which_is_meant(tmp_path, capsys, monkeypatch):
    from segbench.verdicts.ab import checkout

    repo = git_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    # docs/ holds no segbench: the branch is meant, and the user is told so
    with checkout("docs", "A", repo, tmp_path / "s1") as code:
        assert code.commit == head
    assert "'docs' is a directory without segbench and a git ref; measuring the ref" in capsys.readouterr().err
    # a directory that is a segbench checkout and a branch: refused, with both ways out
    (repo / "docs" / "segbench").mkdir()
    (repo / "docs" / "segbench" / "__init__.py").write_text("")
    with (
        pytest.raises(ValueError, match=r"'docs' is both a directory and a git ref .* refs/heads/docs"),
        checkout("docs", "A", repo, tmp_path / "s2"),
    ):
        pass
    with checkout("refs/heads/docs", "A", repo, tmp_path / "s3") as code:
        assert code.commit == head
    with checkout("./docs", "A", repo, tmp_path / "s4") as code:
        assert code.root == (repo / "docs").resolve()


@pytest.mark.slow
def test_a_loss_that_never_returns_is_a_timeout_on_both_sides_and_ab_goes_on(tmp_path):
    tree = copy_with_fused_numpy(tmp_path, "hanging", "import time\nwhile True:\n    time.sleep(1)\n")
    sweep = NUMPY_SWEEP.replace(passes=("forward",), batches=(1,))
    table = run_ab(
        str(ROOT), str(tree), QUICK, sweep, out=tmp_path / "ab", rounds=4, visits=1, progress=False, time_limit=3
    )
    assert set(table["formulation"]) == {"reference"}  # the other cell was measured after the hang
    for side in ("A", "B"):
        rows = results.load(tmp_path / "ab" / side).set_index("formulation")
        assert rows.loc["fused", "status"] == "timeout"
        assert (
            f"side B ({tree})" in rows.loc["fused", "error"]
            and "past its time limit of 3 s" in rows.loc["fused", "error"]
        )


MY_LIB = """import numpy as np

EPS = 1e-7


def per_pixel(y_true, y_pred):
    out = -(y_true * np.log(np.clip(y_pred, EPS, 1 - EPS))).sum(axis=-1)
    return out
"""
MY_LOSS = """{imports}import segbench
from mylib import per_pixel


def my_numpy(y_true, y_pred):
    return per_pixel(y_true, y_pred)


@segbench.register_loss("my_ce", numpy=my_numpy)
def my_tf(y_true, y_pred):
    import tensorflow as tf

    return -tf.reduce_sum(y_true * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)), axis=-1)
"""
SLOWER_AT_BATCH_2 = """    for _ in range(3 if y_pred.shape[0] == 2 else 0):  # the change: computed 4 times at batch 2
        out = out + 0 * -(y_true * np.log(np.clip(y_pred, EPS, 1 - EPS))).sum(axis=-1)
"""


def user_repo(path: Path, imports: str = "") -> Path:
    """A user's repository, no segbench in it: a plugin my_loss.py that imports mylib.py from the
    repository; the second commit makes mylib slower at batch 2 only."""
    path.mkdir()
    (path / "mylib.py").write_text(MY_LIB)
    (path / "my_loss.py").write_text(MY_LOSS.format(imports=imports))
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "."], [*env, "commit", "-q", "-m", "one"]):
        subprocess.run(["git", *command], cwd=path, check=True, capture_output=True)
    (path / "mylib.py").write_text(MY_LIB.replace("    return out\n", SLOWER_AT_BATCH_2 + "    return out\n"))
    subprocess.run(["git", *env, "commit", "-q", "-am", "two"], cwd=path, check=True, capture_output=True)
    return path


@pytest.fixture
def fresh_registry(monkeypatch):
    """The test's plugin (and the mylib it imports) registered and imported only for this test."""
    from segbench.losses import plugins, registry

    monkeypatch.setattr(registry, "LOSSES", dict(registry.LOSSES))
    monkeypatch.setattr(plugins, "_loaded", {})
    monkeypatch.delenv(plugins.ENV, raising=False)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name == "mylib" or name.startswith("segbench_plugin_my_loss"):
            del sys.modules[name]


@pytest.mark.slow
def test_ab_in_a_users_repository_measures_each_commits_plugin_with_the_installed_segbench(
    tmp_path, capsys, monkeypatch, fresh_registry
):
    """Issue 18 item 11: "did my change to my loss make it slower?", asked in the user's repository."""
    repo = user_repo(tmp_path / "mine")
    monkeypatch.chdir(repo)
    grid = ["--mode", "numpy", "--batch", "1,2", "--res", "64", "--profile", "quick"]  # no --loss: the plugin's
    args = ["ab", "HEAD~1", "HEAD", "--plugin", "my_loss.py", *grid, "--rounds", "20", "--visits", "5", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "ab")]) == 1
    table = pd.read_csv(tmp_path / "ab" / "verdicts.csv").set_index("batch")
    assert table.loc[2, "verdict"] == "slower" and table.loc[1, "verdict"] != "slower"
    assert set(table["loss"]) == {"my_ce"}
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True).stdout
    assert "segbench-ab-" not in worktrees
    # without --plugin: what to do; a plugin one side lacks: named
    capsys.readouterr()
    assert main(["ab", "HEAD~1", "HEAD", "--mode", "numpy", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "A (HEAD~1) has no segbench package to measure" in err and "--plugin my_loss.py" in err
    (repo / "other.py").write_text("")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "other.py"], cwd=repo, check=True)
    assert main(["ab", "HEAD", "WORKTREE", "--plugin", "other.py", *grid, "--out", str(tmp_path / "y")]) == 2
    assert "A (HEAD) has no other.py (--plugin other.py)" in capsys.readouterr().err


@pytest.mark.slow
def test_ab_error_paths_print_no_tensorflow_start_up_lines(tmp_path):
    """Its plugin imports TensorFlow at the top: an error after it is loaded is still one line."""
    repo = user_repo(tmp_path / "mine", imports="import tensorflow  # noqa: F401\n")
    for grid in (["--loss", "nope"], []):
        repo_args = ["HEAD~1", "HEAD", "--mode", "numpy", "--out", str(tmp_path / "ab"), *grid]
        if grid:
            repo_args += ["--plugin", "my_loss.py"]
        done = subprocess.run(
            [sys.executable, "-m", "segbench.cli", "ab", *repo_args],
            cwd=repo,
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert ("unknown loss 'nope'" if grid else "has no segbench package to measure") in done.stderr
