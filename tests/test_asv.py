"""asv over commits, end to end: a temporary clone with two commits, `asv run` over both with the
tiny profile, results for both commits (timings and tracked values), then `asv compare`,
`asv publish` and `asv check`. Marked slow: building asv's environment installs TensorFlow once."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from segbench.losses import oracle
from segbench.losses.scenes import SEED_SCENARIO
from segbench.results.importers import from_asv

ROOT = Path(__file__).resolve().parents[1]


def asv(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "asv", *args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def read_conf() -> dict:
    text = (ROOT / "asv.conf.json").read_text()
    return json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE))


def test_asv_pins_match_constraints():
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    for package, versions in read_conf()["matrix"]["req"].items():
        assert versions == [pins[package]], f"asv.conf.json pins {package} {versions}, constraints.txt {pins[package]}"


def test_asv_build_and_install_commands_avoid_the_known_pitfalls():
    conf = read_conf()
    assert "--no-deps" in conf["build_command"][0]  # else "Found multiple wheels"
    assert "--no-deps" in conf["install_command"][0]  # else TensorFlow is reinstalled per commit
    assert conf["launch_method"] == "forkserver"


def only_supported(rows):
    """The rows of cells that can run; the others must be asv's skips of what the registry refuses
    (e.g. the blocked formulation outside the graph modes) or of a Keras backend other than the
    benchmark process's (Keras runs on one backend a process)."""
    from segbench.losses.registry import not_here, unsupported

    for _, row in rows[rows["status"] != "ok"].iterrows():
        assert row["status"] == "skipped", row["status"]
        cell = (row["loss"], row["formulation"], row["mode"])
        assert unsupported(*cell, row["pass"] == "forward+backward") or not_here(*cell)
    return rows[rows["status"] == "ok"]


def user_machine_file() -> bytes | None:
    path = Path.home() / ".asv-machine.json"
    return path.read_bytes() if path.exists() else None


@pytest.mark.slow
def test_asv_run_over_two_commits(tmp_path):
    """Also: the user's home is not touched (asv keeps its machine file in ~/.asv-machine.json)."""
    before = user_machine_file()
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    (repo / "NOTE.txt").write_text("a second commit for asv to measure\n")
    subprocess.run([*git, "add", "NOTE.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "second commit"], cwd=repo, check=True)
    commits = subprocess.run(
        ["git", "rev-list", "-2", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()

    home = tmp_path / "home"  # asv's machine file goes here, not into the user's home
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),  # pip's cache stays
        "SEGBENCH_PROFILE": "tiny",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    # --yes with --machine records the name alone; without it asv detects the CPU, cores, RAM, OS
    asv("machine", "--yes", cwd=repo, env=env)
    machines = json.loads((home / ".asv-machine.json").read_text())
    machine = next(name for name in machines if name != "version")
    benchmarks = ["-b", "TimeLoss", "-b", "TrackLossValue"]
    # a git range: HEAD~2..HEAD is the two newest commits
    asv("run", "HEAD~2..HEAD", "--record-samples", "--machine", machine, *benchmarks, cwd=repo, env=env)

    frame = from_asv(repo / ".asv" / "results")
    assert set(frame["git_commit"]) == set(commits)
    for commit in commits:
        rows = frame[frame["git_commit"] == commit]
        times = only_supported(rows[rows["benchmark"] == "losses.TimeLoss.time_loss"])
        assert len(times) and (times["status"] == "ok").all()
        assert (times["median_s"] > 0).all() and times["raw_times_s"].notna().all()  # --record-samples
        assert times["profile"].eq("tiny").all()  # every asv result says which sweep it belongs to
        assert times["cpu_model"].notna().all() and (times["cpu_count"] >= 1).all()
        values = only_supported(rows[rows["benchmark"] == "tracking.TrackLossValue.track_loss_value"])
        assert len(values) and (values["status"] == "ok").all()
        scene = SEED_SCENARIO.scene()
        for _, row in values.iterrows():
            expected = oracle.loss_value(row["loss"], scene.y_true, scene.y_pred)
            assert row["loss_value"] == pytest.approx(expected, rel=1e-5)

    compared = asv("compare", commits[1], commits[0], "--machine", machine, cwd=repo, env=env)
    assert "time_loss" in compared.stdout
    asv("publish", cwd=repo, env=env)
    assert (repo / ".asv" / "html" / "index.html").exists()
    asv("check", "--python=same", cwd=repo, env=env)
    shutil.rmtree(repo / ".asv" / "env", ignore_errors=True)  # the environment is large
    assert (home / ".asv-machine.json").exists()
    assert user_machine_file() == before
