"""``segbench ab REF_A REF_B``: two commits measured in alternation on this machine, then verdicts.

Comparing two runs made minutes apart mixes the change with whatever the machine did meanwhile
(frequency, other load, a neighbour on the host). Here both commits are measured together, as
pyperf recommends: each is checked out in a temporary git worktree (or given as a directory), a
warm worker process per side imports that commit's segbench, and for each cell the rounds of A and
B alternate (A B B A A B ...), with the same number of calls per round and the same timer. Drift
then falls on both sides alike, and the verdicts (segbench.verdicts.stats) see only the change.

Each cell is built ``--visits`` times per side (its rounds split among the builds), as ``segbench
run`` visits it: every cell once, then every cell again in a fresh worker process per side, the
cells in another (seeded) order each time. A build is the unit that varies independently (which
core and thread run it, where its memory lands), and the test is made on the builds' medians; a
process that runs 35-75 % off for all its cells (seen on tiny numpy cells) is then one build's
offset, which the interval sees, not an offset shared by every build of one side, which it cannot
(docs/statistics.md, "Builds in fresh processes").

The results are two ordinary run directories, ``OUT/A`` and ``OUT/B`` (``segbench compare OUT/A
OUT/B`` gives the same verdicts again), plus ``OUT/verdicts.csv``.

Your own repository: in a repository without segbench (yours), give the file that registers your
loss, ``segbench ab HEAD~1 HEAD --plugin my_loss.py`` (without ``--loss``, the losses it registers
are measured). Each side's checkout is then code under test: the plugin is taken from it (its path
relative to the repository's root), with the checkout's root first on the worker's ``sys.path`` so
that what the plugin imports from your repository comes from the same commit; the installed
segbench measures both sides. A ``--plugin package.module`` is imported from each checkout alike.

A REF is a directory holding ``segbench/`` (``.``) or, with ``--plugin``, any directory,
``WORKTREE`` (this repository's working tree, uncommitted changes included), or a git commit
(``HEAD~1``, a tag, a hash, ``refs/heads/NAME``).
A name that is both a directory and a branch (``docs``) is refused unless the directory holds no
segbench (then the ref is meant, and said so): write ``./docs`` or ``refs/heads/docs``. Measuring a
commit that is HEAD while the working tree has uncommitted changes warns that they are not measured.
A side that does not build is named, with its ref and the last lines of its error output.

Both sides run on this machine; their recorded identities (segbench.measurement.environment.IDENTITY) are
compared before measuring, and a difference (e.g. an older side configuring threads differently)
gives no verdict unless ``--across-machines``.

Exit status: 0 no cell slower; 1 a cell is slower; 2 bad input or a side that does not build;
3 the sides' machine identities differ (no verdict; see --across-machines).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segbench.cli import options
from segbench.losses import plugins as plugin_loader
from segbench.measurement import environment
from segbench.measurement.cells import failure_columns
from segbench.measurement.sweep import Case, Profile, Sweep, get_profile
from segbench.measurement.timing import Measurement
from segbench.measurement.worker import (
    RunInterruptedError,
    SupervisedWorker,
    Worker,
    WorkerDiedError,
    WorkerError,
    WorkerTimeoutError,
    backend_env,
    stop_on_signals,
)
from segbench.presentation import run_tables, tables, verdict_tables
from segbench.presentation.progress import Progress
from segbench.results.storage import ResultWriter, atomic_write_text
from segbench.verdicts import compare, stats

WORKTREE = "WORKTREE"
"""The REF that means this repository's working tree, uncommitted changes included."""
ERROR_TAIL_LINES = 12
SEPARATE_BACKENDS = ("jax", "torch")
"""Backends whose cells get a worker a side of their own (KERAS_BACKEND set to them, no TensorFlow)."""

DEFAULT_ROUNDS = 20
DEFAULT_VISITS = 5
DEFAULT_OUT = Path("results") / "ab"


@dataclass(frozen=True)
class CodeUnderTest:
    """One side of the comparison: a segbench source tree and what it is."""

    label: str  # A or B
    ref: str  # what the user gave
    root: Path
    commit: str | None
    plugins: tuple[str, ...] = ()  # this side's --plugin files (in its checkout) and modules
    installed: bool = False  # no segbench in root: the installed segbench measures the side's plugins
    from_commit: bool = False  # a temporary worktree of ``commit`` (not WORKTREE, not a directory)

    @property
    def again(self) -> str:
        """How a later command names this side: the commit that was measured (HEAD may have moved
        since), else what the user gave (WORKTREE, a directory)."""
        return self.commit[:10] if self.from_commit and self.commit else self.ref


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _commit_of(ref: str, repo: Path) -> str:
    """The commit ``ref`` names in ``repo``, or "" if it names none."""
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo) if ref else ""
    except ValueError:
        return ""


def _note(text: str) -> None:
    print(tables.wrap(f"segbench ab: {text}"), file=sys.stderr)


def _has_segbench(root: Path) -> bool:
    return (root / "segbench" / "__init__.py").is_file()


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def side_plugins(plugins: tuple[str, ...], label: str, ref: str, root: Path, top: Path | None) -> tuple[str, ...]:
    """Each ``--plugin`` as this side has it: a file inside the repository (``top``) is taken from
    the side's checkout ``root`` at the same relative path; a file outside it, or a module, as given."""
    found = []
    for spec in plugins:
        if not _is_path(spec):
            found.append(spec)  # a module: imported from the side's checkout, first on sys.path
            continue
        path = Path(spec).expanduser().resolve()
        relative = None
        if top is not None:
            with contextlib.suppress(ValueError):
                relative = path.relative_to(top)
        if relative is None:
            if not path.is_file():
                raise ValueError(f"plugin {spec!r}: file not found")
            found.append(str(path))  # outside the repository: the same file on both sides
            continue
        mine = root / relative
        if not mine.is_file():
            raise ValueError(f"{label} ({ref}) has no {relative.as_posix()} (--plugin {spec}): not in that checkout")
        found.append(str(mine))
    return tuple(found)


def _toplevel(repo: Path) -> Path | None:
    try:
        return Path(_git("rev-parse", "--show-toplevel", cwd=repo)).resolve()
    except ValueError:
        return None


@contextlib.contextmanager
def checkout(ref: str, label: str, repo: Path, scratch: Path, plugins: tuple[str, ...] = ()) -> Iterator[CodeUnderTest]:
    """A directory holding ``segbench/`` at ``ref``: the directory itself (``WORKTREE``: the
    repository's working tree), or a temporary worktree of the commit ``ref`` names. With
    ``plugins``, a checkout without segbench is measured with the installed segbench, its plugins
    taken from it (see :func:`side_plugins`)."""
    top = _toplevel(repo) if plugins else None
    where = "segbench/__init__.py" + (" (nor are you in a git repository)" if plugins and top is None else "")

    def code(root: Path, commit: str | None, plugin_top: Path | None, from_commit: bool = False) -> CodeUnderTest:
        mine = side_plugins(plugins, label, ref, root, plugin_top)
        return CodeUnderTest(label, ref, root, commit, mine, not _has_segbench(root), from_commit)

    if ref == WORKTREE:
        top = _toplevel(repo)
        if top is None:
            raise ValueError(f"{label}: {WORKTREE} needs a git repository, and {repo} is not in one")
        commit, dirty = environment.git_state(top)
        if not plugins and not _has_segbench(top):
            raise ValueError(f"{label} ({WORKTREE}): {top} holds no segbench/__init__.py")
        _note(
            f"{label} = the working tree {top} (HEAD {(commit or '?')[:10]}{' + uncommitted changes' if dirty else ''})"
        )
        yield code(top, commit, top)
        return
    path = Path(ref)
    commit = _commit_of(ref, repo) if not ref.startswith(("./", "../", "/")) else ""
    if path.is_dir():
        is_checkout = _has_segbench(path)
        if commit and is_checkout:
            raise ValueError(
                f"{label}: {ref!r} is both a directory and a git ref ({commit[:10]}): write ./{ref} for the "
                f"directory, or refs/heads/{ref} (or {commit[:10]}) for the commit"
            )
        if not commit:
            if not is_checkout and not plugins:
                raise ValueError(f"{label} ({ref}) is a directory without {where}: not a segbench checkout")
            dir_commit, _ = environment.git_state(path)
            yield code(path.resolve(), dir_commit, top)
            return
        _note(
            f"{label}: {ref!r} is a directory without segbench and a git ref; measuring the ref "
            f"({commit[:10]}); write refs/heads/{ref} to say so"
        )
    if not commit:
        raise ValueError(f"{label}: {ref!r} is neither a directory nor a commit of the repository at {repo}")
    _warn_if_dirty(ref, label, commit, repo)
    tree = scratch / label
    _git("worktree", "add", "--detach", "--force", str(tree), commit, cwd=repo)
    try:
        sweeps = (tree / "segbench" / "measurement" / "sweep.py", tree / "segbench" / "sweep.py")  # now; before folders
        if not plugins and not any(path.is_file() for path in sweeps):
            raise ValueError(
                f"{label} ({ref}) has no segbench package to measure; to measure your own loss in your "
                "repository, give the file that registers it: --plugin my_loss.py"
            )
        yield code(tree, commit, top, from_commit=True)
    finally:
        with contextlib.suppress(ValueError):
            _git("worktree", "remove", "--force", str(tree), cwd=repo)


def load_quietly(code: CodeUnderTest) -> tuple[str, ...]:
    """Register a side's plugins in this process (the grid may name their losses), its checkout
    first on sys.path for what they import; what they print while importing (TensorFlow's
    start-up lines) is kept from the terminal unless $SEGBENCH_VERBOSE is set. Returns the names
    of the losses they registered."""
    from segbench.losses.registry import LOSSES
    from segbench.measurement.backends import VERBOSE_ENV

    before = set(LOSSES)

    sys.path.insert(0, str(code.root))
    saved = None
    if os.environ.get(VERBOSE_ENV, "") in ("", "0"):
        sys.stderr.flush()
        saved, sink = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(sink, 2)
        os.close(sink)
    try:
        plugin_loader.load_all(code.plugins, export=False)
    except plugin_loader.PluginError as error:
        raise plugin_loader.PluginError(f"{code.label} ({code.ref}): {error}") from None
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(code.root))
    from segbench.losses.registry import LOSSES

    return tuple(name for name in LOSSES if name not in before)


def _warn_if_dirty(ref: str, label: str, commit: str, repo: Path) -> None:
    """Measuring the commit HEAD points at while the working tree has uncommitted changes: say that
    they are not measured, and how to measure them."""
    head = _commit_of("HEAD", repo)
    _, dirty = environment.git_state(repo)
    if dirty and commit == head:
        _note(
            f"warning: {label} = {ref} measures commit {commit[:10]} WITHOUT the uncommitted changes in "
            f"the working tree; give {WORKTREE} (or the directory) as a side to measure them"
        )


class SideBuildError(ValueError):
    """A side whose code does not start (an import error, a syntax error): named, with its error's end."""


class _ErrorTail:
    """A worker's error output passed on to ours as it comes, its last lines kept."""

    def __init__(self, stream: Any):
        self.lines: collections.deque[str] = collections.deque(maxlen=ERROR_TAIL_LINES)
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            for raw in stream:  # the worker's pipes are bytes
                line = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
                self.lines.append(line.rstrip("\n"))
                sys.stderr.write(line)

    def text(self) -> str:
        self.thread.join(timeout=2)
        return "\n".join(f"    {line}" for line in self.lines)


class Side(SupervisedWorker):
    """The warm worker of one side (restarted if a cell kills it), and which code it measures."""

    def __init__(self, code: CodeUnderTest, uses_tensorflow: bool = True, backend: str | None = None):
        super().__init__(code.root, backend=backend)
        self.tested, self.label = code, code.label
        self.tail: _ErrorTail | None = None
        self.timeout: float | None = None  # seconds a request for the current cell may take
        self.uses_tensorflow = uses_tensorflow
        # this side's plugins (after those of $SEGBENCH_PLUGINS), loaded by its worker from its checkout
        inherited = [p for p in os.environ.get(plugin_loader.ENV, "").split(os.pathsep) if p]
        self.env = {plugin_loader.ENV: os.pathsep.join([*inherited, *code.plugins])} if code.plugins else {}
        self.env.update(backend_env(backend))  # JAX and PyTorch cells: a worker per backend, as in segbench run

    @property
    def name(self) -> str:
        commit = f", {self.tested.commit[:10]}" if self.tested.commit and self.tested.commit != self.tested.ref else ""
        return f"side {self.label} ({self.tested.ref}{commit})"

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """As SupervisedWorker's, with the side named in an error: a failure is recorded on both
        sides of the cell, and its message says which side's code raised (e.g. an older commit
        that lacks a formulation the newer one has); a worker that dies says so with the last
        lines of its error output."""
        if self.worker is None or self.worker.process.poll() is not None:
            self.worker = Worker.start(self.code, env=self.env, stderr=subprocess.PIPE)
            self.tail = _ErrorTail(self.worker.process.stderr)
        try:
            return self.worker.request(op, timeout=None if op == "hello" else self.timeout, **fields)
        except WorkerError as error:
            raise WorkerError(f"{self.name}: {error.message}", error.kind, error.trace) from error
        except WorkerTimeoutError as late:  # a loss that never returns: its worker is killed, a fresh one follows
            self.worker = None
            late.args = (f"{self.name}: {late}",)
            raise
        except WorkerDiedError as died:
            self.worker = None
            tail = self.tail.text() if self.tail else ""
            raise WorkerDiedError(
                f"{self.name}: {died}" + (f"; the last lines of its error output:\n{tail}" if tail else "")
            ) from died

    def build(self, device: str, profile: str) -> dict[str, Any]:
        """The first request: the side's environment. A side whose code does not start is a
        SideBuildError naming it, its ref and the end of its error."""
        try:
            # the installed segbench (this one) knows uses_tensorflow; an old commit's may not
            extra = {"uses_tensorflow": False} if self.tested.installed and not self.uses_tensorflow else {}
            if self.backend is not None:
                extra["backend"] = self.backend
            return self.request("hello", device=device, profile=profile, **extra)["meta"]
        except WorkerDiedError as died:
            raise SideBuildError(f"{self.name} does not build: {str(died).removeprefix(self.name + ': ')}") from None
        except WorkerError as error:
            detail = error.message.removeprefix(self.name + ": ")
            trace = "\n".join(f"    {line}" for line in error.trace.strip().splitlines()[-ERROR_TAIL_LINES:])
            raise SideBuildError(
                f"{self.name} does not build: {error.kind + ': ' if error.kind else ''}{detail}"
                + (f"; the last lines of its traceback:\n{trace}" if trace else "")
            ) from None


def interleave(
    sides: tuple[Side, Side],
    case: Case,
    visit: int,
    rounds: int,
    round_s: float,
    device: str,
    calls: int | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """One build of a cell per side: the first call's seconds and the per-call times of its rounds,
    and the calls per round.

    The build makes the cell afresh on both sides (its first call timed), runs one untimed round
    on each, then the rounds of A and B alternate (A B B A ..., B first in even builds). The calls
    per round are calibrated once, on A, in the cell's first build (``calls`` is None), and used
    for both sides and every later build, so that both are timed the same way.
    """
    key = case.key()
    first = {side.label: side.request("prepare", case=key, device=device)["first_call_s"] for side in sides}
    if calls is None:
        calls = sides[0].request("calibrate", case=key, round_s=round_s)["calls"]
    # One untimed round a side first: the side prepared first waited, its inputs idle, while the
    # other built its cell, and its first round after that ran up to 8x slower (numpy at b16
    # 512x512 on the AMD EPYC VM: 117-299 ms against 30, in 8 of 10 builds, on A only).
    for side in sides:
        side.request("rounds", case=key, calls=calls, rounds=1)
    times: dict[str, list[float]] = {side.label: [] for side in sides}
    for turn in range(rounds):
        order = sides if (turn + visit) % 2 == 1 else sides[::-1]
        for side in order:
            times[side.label] += side.request("rounds", case=key, calls=calls, rounds=1)["times"]
    records = {
        label: {"first_call_s": first[label], "times": samples, "calls": calls} for label, samples in times.items()
    }
    return records, calls


def build_order(cases: list[Case], visit: int) -> list[Case]:
    """The order of the cells in build ``visit`` (1, 2, ...): the sweep's for the first, then a
    shuffle seeded by the build's number (the same every run), so that no cell always follows the
    same one in its worker: what one cell leaves in a process (a much slower cell before it) then
    falls on different cells in different builds instead of on one cell in all of them."""
    if visit == 1:
        return list(cases)
    import random

    order = list(cases)
    random.Random(visit).shuffle(order)
    return order


def run_ab(
    ref_a: str,
    ref_b: str,
    profile: Profile,
    sweep: Sweep | Callable[[tuple[str, ...]], Sweep],
    *,
    out: Path,
    plugins: tuple[str, ...] = (),
    rounds: int = DEFAULT_ROUNDS,
    visits: int = DEFAULT_VISITS,
    threshold: float = stats.DEFAULT_THRESHOLD,
    alpha: float = stats.DEFAULT_ALPHA,
    device: str = "auto",
    repo: Path | None = None,
    progress: bool = True,
    across_machines: bool = False,
    time_limit: float | None = None,
) -> Any:
    """Measure every cell of ``sweep`` on both sides in alternation; returns compare_runs' table.
    ``time_limit``: seconds one request of a cell may take (None: runner.cell_time_limit; 0: none).
    ``plugins``: files (paths as the user gave them) or modules registering losses, taken from each
    side's checkout; ``sweep`` may then be a function of the losses B's plugins registered, called
    once they are registered here (the grid may name them)."""
    from segbench.measurement.runner import cell_time_limit

    if not isinstance(rounds, int) or rounds < stats.MIN_SAMPLES:
        raise ValueError(f"--rounds must be an integer >= {stats.MIN_SAMPLES}, got {rounds!r}")
    if not isinstance(visits, int) or not 1 <= visits <= rounds:
        raise ValueError(f"--visits must be an integer from 1 to --rounds ({rounds}), got {visits!r}")
    if (out / "A").exists() or (out / "B").exists():
        raise ValueError(f"--out {out} already holds an A/B comparison: choose another --out")
    if not callable(sweep) and not sweep.cases():  # said before anything is checked out
        raise ValueError("the sweep has no runnable cases (every mode/dtype pair is unsupported)")
    repo = repo or Path.cwd()
    round_s = profile.budget.min_run_time / profile.budget.min_rounds
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="segbench-ab-")))
        codes = [
            stack.enter_context(checkout(ref, label, repo, scratch, tuple(plugins)))
            for ref, label in ((ref_a, "A"), (ref_b, "B"))
        ]
        registered: tuple[str, ...] = ()
        if plugins:  # the grid's losses as B has them; each worker loads its own side's
            registered = load_quietly(codes[1])
        if callable(sweep):
            sweep = sweep(registered)
        cases = sweep.cases()
        if not cases:
            raise ValueError("the sweep has no runnable cases (every mode/dtype pair is unsupported)")
        from segbench.losses.registry import MODES

        # numpy and TensorFlow cells share one worker a side (any commit's segbench serves them);
        # JAX and PyTorch cells get a worker a side for their backend, as segbench run gives them
        backends = dict.fromkeys(MODES[case.mode].backend for case in cases)
        uses_tensorflow = "tensorflow" in backends
        pairs: dict[str | None, tuple[Side, Side]] = {}
        if any(backend not in SEPARATE_BACKENDS for backend in backends):
            pairs[None] = (Side(codes[0], uses_tensorflow), Side(codes[1], uses_tensorflow))
        for backend in (b for b in backends if b in SEPARATE_BACKENDS):
            pairs[backend] = (Side(codes[0], False, backend), Side(codes[1], False, backend))
        sides = next(iter(pairs.values()))  # the pair whose environment the results record
        every_side = [side for pair in pairs.values() for side in pair]
        writers: dict[str, ResultWriter] = {}
        try:
            with stop_on_signals():
                metas = {}
                for side in every_side:  # each worker starts, or its side is named as not building
                    meta = side.build(device, profile.name)
                    if side.label in metas:
                        continue
                    meta.update(source="segbench ab", git_commit=side.tested.commit or meta.get("git_commit"))
                    metas[side.label] = {k: v for k, v in meta.items() if k not in ("device", "device_name")}
                import pandas as pd

                compare.machine_check(  # before anything is measured
                    {label: pd.DataFrame([meta]) for label, meta in metas.items()},
                    across_machines=across_machines,
                    what="no verdict would be given (pass --across-machines to measure anyway)",
                )
                for side in sides:
                    writers[side.label] = stack.enter_context(ResultWriter(out / side.label, metas[side.label]))
                print(
                    f"segbench ab: A = {ref_a} ({(codes[0].commit or 'directory')[:10]}), "
                    f"B = {ref_b} ({(codes[1].commit or 'directory')[:10]}); {len(cases)} cells x {rounds} "
                    f"rounds in {visits} builds per side, alternating; results in {out}",
                    file=sys.stderr,
                )
                # A build is a fresh worker process per side, as a visit of segbench run is: what a
                # process brings (where its memory lands, which core it runs on) then varies between
                # the builds, where the interval sees it, instead of offsetting all of one side's.
                calls: dict[tuple, int] = {}  # per cell, from its first build
                failed: set[tuple] = set()  # cells that did not run: not built again
                per_visit = math.ceil(rounds / visits)
                bar = Progress(len(cases) * visits, "build", enabled=progress)
                for visit in range(1, visits + 1):
                    if visit > 1:
                        for side in every_side:
                            side.close()  # started again by the next request
                    for case in build_order(cases, visit):
                        key = tuple(case.key().values())
                        if key in failed:
                            bar.skip()
                            continue
                        backend = MODES[case.mode].backend
                        cell_sides = pairs[backend if backend in SEPARATE_BACKENDS else None]
                        for side in cell_sides:
                            side.timeout = (
                                cell_time_limit(case, profile.budget) if time_limit is None else time_limit or None
                            )
                        rows, calls[key] = _measure_build(
                            cell_sides, case, visit, per_visit, round_s, device, calls.get(key)
                        )
                        for label, row in rows.items():
                            if row["status"] != "ok":
                                failed.add(key)
                            writers[label].append(
                                {**row, "finished_at": environment.now(), "load_avg_end": environment.load_average()}
                            )
                        bar.update(f"build {visit}: {case.short_name}")
                bar.close()
        except RunInterruptedError as stop:
            for side in every_side:
                side.close(timeout=0)
            stop.out_dir = out
            raise
        finally:
            for side in every_side:
                side.close()
    table = compare.compare_runs(
        writers["A"].frame(), writers["B"].frame(), threshold, alpha, across_machines=across_machines, names=("A", "B")
    )
    table.attrs["refs"] = [code.again for code in codes]  # not the working tree's HEAD for WORKTREE
    atomic_write_text(out / "verdicts.csv", table.to_csv(index=False))
    return table


def _measure_build(
    sides: tuple[Side, Side], case: Case, visit: int, rounds: int, round_s: float, device: str, calls: int | None
) -> tuple[dict[str, dict[str, Any]], int | None]:
    """Per side, the journal row of one build of a cell, and the calls per round it used; a failure
    is recorded on both sides."""
    from segbench.losses.registry import MODES

    base = {**case.key(), "backend": MODES[case.mode].backend, "benchmark": "segbench ab", "visit": visit}
    try:
        records, calls = interleave(sides, case, visit, rounds, round_s, device, calls)
    except WorkerTimeoutError as late:
        error = f"{late}; --cell-timeout sets the limit"
        return {s.label: {**base, "status": "timeout", "error": error} for s in sides}, calls
    except WorkerDiedError as died:
        return {s.label: {**base, "status": "killed", "error": str(died)} for s in sides}, calls
    except WorkerError as error:
        failure = failure_columns(error.kind, error.message)
        return {s.label: {**base, **failure} for s in sides}, calls
    rows = {}
    for label, record in records.items():
        timing = Measurement(tuple(record["times"]), record["calls"], record["first_call_s"], 0)
        rows[label] = {**base, "status": "ok", **timing.columns(), "pixels_per_s": case.pixels / timing.median}
    return rows, calls


def _command(args: argparse.Namespace) -> int:

    plugins = tuple(getattr(args, "plugin", None) or ())
    if plugins:  # the grid is read once B's plugins are registered (it may name their losses)
        profile = get_profile(args.profile)

        def sweep(registered: tuple[str, ...]) -> Sweep:
            """Without --loss, the plugins' own losses (the question is about them)."""
            if args.loss or not registered:
                return options.sweep_from_args(args)[1]
            return options.sweep_from_args(argparse.Namespace(**{**vars(args), "loss": ",".join(registered)}))[1]
    else:
        profile, sweep = options.sweep_from_args(args)
    out = Path(args.out) if args.out else DEFAULT_OUT / environment.new_run_id()
    try:
        table = run_ab(
            args.ref_a,
            args.ref_b,
            profile,
            sweep,
            out=out,
            plugins=plugins,
            rounds=args.rounds,
            visits=args.visits,
            threshold=args.threshold,
            alpha=args.alpha,
            device=args.device,
            progress=not args.quiet,
            across_machines=args.across_machines,
            time_limit=options.parse_time_limit(args.cell_timeout),
        )
    except compare.DifferentMachinesError as error:
        print("\n".join([f"segbench ab: {error.message}", *error.lines]), file=sys.stderr)
        return compare.NOT_COMPARABLE
    except RunInterruptedError as stop:
        print(f"\nsegbench ab: stopped by {stop}; the cells measured so far are in {out}", file=sys.stderr)
        return stop.exit_code
    from segbench.results import storage as results

    failed = run_tables.failures(results.load(out / "A"))
    if table.empty and len(failed):
        raise ValueError(
            f"no cell ran on both sides ({len(failed)} did not run; results in {out}), e.g. {failed['error'].iloc[0]}"
        )
    status = verdict_tables.print_verdicts(
        table, args.format, args.threshold, args.alpha, args.columns, show_all=args.all
    )
    if len(failed):  # not compared: say so, with the first reason (its side named in the error)
        print(
            tables.wrap(f"{len(failed)} cell(s) did not run and were not compared, e.g. {failed['error'].iloc[0]}"),
            file=sys.stderr,
        )
    print(f"A/B results in {out}/ (A/, B/, verdicts.csv)", file=sys.stderr)
    return status


def register(commands: argparse._SubParsersAction) -> None:

    parser = commands.add_parser(
        "ab",
        help="measure two commits (or source trees) in alternation and give per-cell verdicts (exit 1 if slower)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "ref_a",
        metavar="REF_A",
        help="the baseline: a commit (HEAD~1, a tag, a hash, refs/heads/NAME), a directory, or WORKTREE",
    )
    parser.add_argument(
        "ref_b",
        metavar="REF_B",
        help="the candidate: a commit, a directory, or WORKTREE (the working tree, uncommitted changes included)",
    )
    options.add_grid_options(parser)
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"timed rounds per side and cell (default {DEFAULT_ROUNDS})"
    )
    parser.add_argument(
        "--visits",
        type=int,
        default=DEFAULT_VISITS,
        help=f"fresh builds of each cell per side, the rounds split among them (default {DEFAULT_VISITS})",
    )
    options.add_verdict_options(parser)
    options.add_machine_option(parser, "measure and give verdicts anyway, each row naming what differs")
    options.add_measuring_options(parser, out_help="output directory (default: results/ab/<run id>)")
    parser.set_defaults(handler=_command)
