"""``segbench run``: sweep the cases of a profile, time each cell, store one tidy row per cell.

This process supervises: it schedules the cells (in shape order, so that inputs are made once per
shape) and writes each result as soon as it arrives. Each cell is visited ``visits`` times (the
profile says how many), minutes apart and each time in a fresh worker: the sweep is run once in
full, then again for the time alone, so that a disturbance of the machine or of one process
touches one visit's samples, not a whole cell's (see docs/verdicts.md). Warm worker processes
(segbench.measurement.worker) measure them, one per backend of the run (numpy, TensorFlow, JAX, PyTorch, each
with KERAS_BACKEND set to it), each started once per visit; a backend whose library is not
installed is named in one line and its cells left out, one that fails to start gives error rows
naming it. A cell that cannot run (an out-of-memory error, an XLA compile failure) is stored with a
status and the error's message; a cell that kills its worker (a segfault, the OOM killer)
is stored as ``killed`` with how the worker died, and a fresh worker goes on with the next cell.
SIGINT and SIGTERM stop the run cleanly: finished cells are kept, ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segbench.cli import options
from segbench.losses.registry import BACKEND_LABELS, MODES
from segbench.measurement import device as devices
from segbench.measurement import environment
from segbench.measurement.sweep import (
    Case,
    Profile,
    Sweep,
    TimerBudget,
    get_profile,
    parse_shard,
    shard_cases,
)
from segbench.measurement.worker import (
    RunInterruptedError,
    SupervisedWorker,
    WorkerDiedError,
    WorkerError,
    WorkerTimeoutError,
    stop_on_signals,
)
from segbench.presentation.progress import Expected, Progress
from segbench.results.storage import KEY_COLUMNS, ResultWriter

DEFAULT_RESULTS = Path("results") / "runs"
# A cell's visit (scene, ceiling, oracle, first call, timing, memory) took at most 6 s on the Xeon
# and 9 s on the AMD EPYC in the published default runs (finished_at of consecutive journal rows):
# the default limit leaves ten times that, plus time that grows with the budget and the cell's size.
TIME_LIMIT_BASE_S = 60.0
TIME_LIMIT_PER_BUDGET_S = 20.0  # per second of the profile's timed + warm-up budget
TIME_LIMIT_PER_ELEMENT_S = 1e-6  # per element of one input (16 x 512 x 512 x 4: 17 s more)


def cell_time_limit(case: Case, budget: TimerBudget) -> float:
    """Seconds one visit of ``case`` may take before its worker is killed and the cell is stored
    as ``timeout`` (a loss that never returns must not hang the run); ``--cell-timeout`` overrides it."""
    return (
        TIME_LIMIT_BASE_S
        + TIME_LIMIT_PER_BUDGET_S * (budget.min_run_time + budget.warmup_time)
        + TIME_LIMIT_PER_ELEMENT_S * case.pixels * case.classes
    )


class CellSupervisor:
    """Sends each cell to the warm worker process of its backend (one per backend: numpy,
    tensorflow, jax, torch, each with KERAS_BACKEND set to it), and starts a fresh one when a cell
    kills it. A backend whose worker cannot start (its library fails to import, the device is
    missing for it) gives every one of its cells an error row naming the backend; the others go on."""

    def __init__(
        self,
        device: str,
        uses_tensorflow: bool,
        budget: TimerBudget,
        code: str | None = None,
        time_limit: float | None = None,
    ):
        self.device, self.uses_tensorflow, self.budget = device, uses_tensorflow, budget
        self.code = code
        self.workers: dict[str, SupervisedWorker] = {}
        self.worker = self._worker("tensorflow" if uses_tensorflow else "numpy")  # the one that says hello first
        self.visit = 1  # the visit the current workers serve
        self.time_limit = time_limit  # seconds per visit of a cell; None: cell_time_limit; 0: none
        self.failed: dict[str, str] = {}  # backend -> why its worker could not start
        self.devices: dict[str, str] = {}  # backend -> device kind its worker runs on (CPU, GPU)
        self._ceilings: dict[tuple, dict[str, Any] | None] = {}

    def _worker(self, backend: str) -> SupervisedWorker:
        if backend not in self.workers:
            self.workers[backend] = SupervisedWorker(self.code, backend=backend)
        return self.workers[backend]

    def limit_for(self, case: Case) -> float | None:
        if self.time_limit is None:
            return cell_time_limit(case, self.budget)
        return self.time_limit or None

    def _hello(self, backend: str, profile: str) -> dict[str, Any]:
        reply = self._worker(backend).request(
            "hello", device=self.device, uses_tensorflow=backend == "tensorflow", profile=profile, backend=backend
        )
        self.devices[backend] = reply["device"]["kind"]
        return reply

    def hello(self, profile: str, backends: tuple[str, ...] = ()) -> dict[str, Any]:
        """The device and the run's environment, as the first backend's worker sees them (TensorFlow's
        when the run has TensorFlow cells, else numpy's, else the first backend's); then every other
        backend of the run starts its worker, and one that cannot start is remembered in ``failed``."""
        backends = backends or (self.worker.backend,)
        first = next(b for b in ("tensorflow", "numpy", "jax", "torch") if b in backends)
        try:
            reply = self._hello(first, profile)
        except WorkerDiedError as died:
            if len(backends) == 1:
                raise WorkerDiedError(
                    f"the measuring worker could not start: {died} (its messages are above)"
                ) from None
            self.failed[first], reply = str(died), None
        except WorkerError as error:
            if len(backends) == 1 or error.kind == "DeviceUnavailableError":
                raise
            self.failed[first], reply = f"{error.kind}: {error.message}", None
        versions = {}
        for backend in backends:
            if backend == first and reply is not None:
                versions[backend] = reply.get("backend_version")
                continue
            if backend in self.failed:
                continue
            try:
                answer = self._hello(backend, profile)
                versions[backend] = answer.get("backend_version")
                reply = reply or answer
            except (WorkerError, WorkerDiedError) as error:
                self.failed[backend] = str(error)
        if reply is None:
            raise WorkerDiedError(f"no backend's worker could start: {'; '.join(self.failed.values())}")
        return {**reply, "backend_versions": versions}

    def _fields(self, case: Case) -> dict[str, Any]:
        backend = MODES[case.mode].backend
        return {
            "case": case.key(),
            "budget": dataclasses.asdict(self.budget.per_visit()),
            "device": self.device,
            "uses_tensorflow": backend == "tensorflow",
            "backend": backend,
        }

    def _request(self, op: str, case: Case, **fields: Any) -> dict[str, Any]:
        """One row from the worker; a worker that dies gives a row with status ``killed`` saying how."""
        backend = MODES[case.mode].backend
        base = {**case.key(), "backend": backend, "benchmark": "segbench run"}
        if backend in self.failed:
            label = BACKEND_LABELS[backend]
            return {**base, "status": "error", "error": f"the {label} backend could not start: {self.failed[backend]}"}
        try:
            return self._worker(backend).request(op, timeout=self.limit_for(case), **self._fields(case), **fields)[
                "row"
            ]
        except WorkerTimeoutError as late:
            error = f"{late}; --cell-timeout sets the limit"
            return {**base, "status": "timeout", "error": error}
        except WorkerDiedError as died:
            return {**base, "status": "killed", "error": f"{died} (the {BACKEND_LABELS[backend]} worker)"}

    def ceiling(self, case: Case) -> dict[str, Any] | None:
        """The fastest read of the case's inputs by any backend of the run on the cell's device kind
        (each worker measures its own backend's kernels and numpy's), once per shape and dtype."""
        backend = MODES[case.mode].backend
        kind = self.devices.get(backend)
        key = (case.shape, case.dtype, kind)
        if key not in self._ceilings:
            found = []
            for other, worker in self.workers.items():
                if other in self.failed or self.devices.get(other) != kind:
                    continue
                try:
                    found.append(worker.request("ceiling", timeout=self.limit_for(case), **self._fields(case)))
                except (WorkerError, WorkerDiedError):
                    continue  # that backend's read is missing from the ceiling; its cells say why they fail
            self._ceilings[key] = max(found, key=lambda c: c["gb_per_s"]) if found else None
        return self._ceilings[key]

    def measure(self, case: Case) -> dict[str, Any]:
        """The first visit of a cell: everything (time, compile, memory, ceiling, oracle)."""
        ceiling = self.ceiling(case) if len(self.workers) > 1 and MODES[case.mode].backend not in self.failed else None
        return self._request("cell", case, **({"ceiling": ceiling} if ceiling else {}))

    def revisit(self, case: Case, calls: int) -> dict[str, Any]:
        """A later visit: the time alone, with the first visit's calls per round."""
        return self._request("revisit", case, calls=calls, rounds=self.budget.per_visit().min_rounds)

    def restart(self) -> None:
        """Fresh worker processes for the next visit, so that visits sample processes too."""
        for worker in self.workers.values():
            worker.close()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers; ``timeout=0`` kills one that is busy measuring (on an interrupt)."""
        for worker in self.workers.values():
            worker.close(timeout)


def available_cases(cases: list[Case]) -> tuple[list[Case], list[str]]:
    """The cases whose backend (and Keras, for a keras.ops loss) is installed here, and one line per
    missing library naming the modes it makes unavailable. Looks the libraries up without importing."""
    from segbench.losses.registry import installed_backends, uses_keras

    found = installed_backends()
    keras_found = importlib.util.find_spec("keras") is not None
    kept, missing = [], {}
    for case in cases:
        backend = MODES[case.mode].backend
        if not found[backend]:
            missing.setdefault(BACKEND_LABELS[backend], set()).add(case.mode)
        elif not keras_found and uses_keras(case.loss, case.formulation, backend):
            missing.setdefault("Keras", set()).add(f"{case.formulation} in {case.mode}")
        else:
            kept.append(case)
    extra = {"TensorFlow": "", "JAX": "jax", "PyTorch": "torch", "Keras": "jax"}
    lines = [
        f"{label} is not installed: {', '.join(sorted(modes))} unavailable"
        + (f" (pip install 'segbench[{extra[label]}]')" if extra[label] else " (pip install tensorflow)")
        for label, modes in missing.items()
    ]
    return kept, lines


def run(
    profile: Profile,
    sweep: Sweep | None = None,
    *,
    device: str = "auto",
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
    time_limit: float | None = None,
    plugins: tuple[str, ...] = (),
) -> Path:
    """Run the sweep (or its ``shard`` K of N) into the directory ``out`` and return it; see the
    module docstring. ``resume`` continues ``out`` (default: the newest unfinished run), whose
    ``run.json`` records its profile, sweep and shard: a different one is refused, not mixed in.
    ``time_limit``: seconds per visit of a cell (None: :func:`cell_time_limit`; 0: no limit)."""
    sweep = sweep or profile.resolved_sweep()
    out_dir = Path(out) if out else None
    if resume and out_dir is None:
        out_dir = newest_unfinished_run(DEFAULT_RESULTS)
    if out_dir is not None and not resume and (out_dir / "cells.jsonl").exists():
        raise ValueError(f"--out {out_dir} already holds results: add --resume to continue it, or choose another --out")
    if resume:
        check_resumable(out_dir, profile, sweep, shard)
    cases = shard_cases(sweep.cases(), shard)
    if not cases:
        raise ValueError("the sweep has no runnable cases (every mode/dtype pair is unsupported)")
    devices.parse_spec(device)
    cases, unavailable = available_cases(cases)
    backends = tuple(dict.fromkeys(MODES[case.mode].backend for case in cases))
    for line in unavailable:
        print(f"segbench run: {line}", file=sys.stderr)
    if not cases:
        raise ValueError("no cell of the sweep can run here: " + "; ".join(unavailable))
    uses_tensorflow = "tensorflow" in backends

    supervisor = CellSupervisor(device, uses_tensorflow, profile.budget, time_limit=time_limit)
    try:
        with stop_on_signals(), contextlib.ExitStack() as stack:
            try:
                hello = supervisor.hello(profile.name, backends)
            except WorkerError as error:
                if error.kind == "DeviceUnavailableError":
                    raise devices.DeviceUnavailableError(error.message) from None
                raise
            target = hello["device"]
            if out_dir is not None and (out_dir / "run.json").exists():
                meta = json.loads((out_dir / "run.json").read_text())
            else:
                meta = {**hello["meta"], **plan_record(profile, sweep, shard, plugins)}
                out_dir = out_dir or DEFAULT_RESULTS / meta["run_id"]
            # per row, not per run: numpy cells run on the CPU; the plan is in run.json only
            row_meta = {k: v for k, v in meta.items() if k not in ("device", "device_name", *PLAN_FIELDS)}
            writer = stack.enter_context(ResultWriter(out_dir, row_meta, run_meta=meta))
            visits = profile.budget.visits
            first = {_key(r): r for r in writer.rows if (r.get("visit") or 1) == 1}
            todo = pending_visits(cases, visits, writer.rows)
            print(
                f"segbench run: profile {profile.name}, {len(cases)} cells x {visits} visit(s) "
                f"({visits * len(cases) - len(todo)} already done), device {target['kind']}:{target['index']} "
                f"({target['name']}); results in {out_dir}",
                file=sys.stderr,
            )
            print(
                "segbench run: backends "
                + ", ".join(
                    f"{BACKEND_LABELS[b]} {hello['backend_versions'].get(b) or ''}".strip()
                    + (f" (could not start: {supervisor.failed[b]})" if b in supervisor.failed else "")
                    for b in backends
                ),
                file=sys.stderr,
            )
            expected = [Expected((c.shape, c.dtype, c.mode, c.pass_), v, c.pixels * c.classes) for v, c in todo]
            bar = Progress(len(todo), "visit", enabled=progress, expected=expected)
            try:
                for visit, case in todo:
                    key = _key(case.key())
                    if visit == 1:
                        row = first[key] = supervisor.measure(case)
                    elif first.get(key, {}).get("status") == "ok":
                        if visit != supervisor.visit:
                            supervisor.restart()
                        row = supervisor.revisit(case, calls=int(first[key]["calls_per_round"]))
                    else:
                        bar.skip()  # a cell that failed on its first visit is not visited again
                        continue
                    supervisor.visit = visit
                    ended = {"finished_at": environment.now(), "load_avg_end": environment.load_average()}
                    writer.append({**row, "visit": visit, **ended})
                    bar.update(f"visit {visit}: {case.short_name}")
            finally:
                bar.close()
    except RunInterruptedError as stop:
        supervisor.close(timeout=0)
        stop.out_dir = out_dir
        raise
    finally:
        supervisor.close()
    return out_dir


def _key(key: dict[str, Any]) -> tuple:
    return tuple(key[k] for k in KEY_COLUMNS)


# ---------------------------------------------------------------------------------------------
# What a run was asked to do, recorded in its run.json, so that --resume continues that and only that.

SWEEP_FIELDS = ("losses", "formulations", "modes", "passes", "batches", "resolutions", "classes", "dtypes")
PLAN_FIELDS = ("sweep", "plugins", "schema_version")  # run.json keys that are not row columns


def plan_record(profile: Profile, sweep: Sweep, shard: tuple[int, int] | None, plugins: tuple[str, ...]) -> dict:
    """The run.json fields that say what the run measures: profile, sweep, shard, plugins, schema."""
    from segbench.results.storage import SCHEMA_VERSION

    return {
        "profile": profile.name,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "sweep": {
            name: [list(v) if isinstance(v, tuple) else v for v in getattr(sweep, name)] for name in SWEEP_FIELDS
        },
        "plugins": list(plugins),
        "schema_version": SCHEMA_VERSION,
    }


@dataclass(frozen=True)
class RecordedPlan:
    """A run's plan as its run.json records it (``sweep`` is None for runs of segbench < 0.2)."""

    profile: Profile
    sweep: Sweep | None
    shard: tuple[int, int] | None
    plugins: tuple[str, ...]


def read_meta(out_dir: Path) -> dict[str, Any]:
    """A run's run.json; a ValueError names the folder when there is none or it is not JSON."""
    path = out_dir / "run.json"
    if not path.exists():
        raise ValueError(f"--resume: {out_dir} is not a segbench run (no run.json)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"--resume: {path} is damaged ({error.msg}, line {error.lineno})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"--resume: {path} is damaged (not a JSON object)")
    return meta


def recorded_plan(out_dir: Path) -> RecordedPlan:
    """What the run in ``out_dir`` was started to measure; refuses a run of a newer schema."""
    from segbench.results.storage import JOURNAL, SCHEMA_VERSION, read_journal

    meta = read_meta(out_dir)
    versions = [meta.get("schema_version")] + [r.get("schema_version") for r in read_journal(out_dir / JOURNAL)]
    newest = max((int(v) for v in versions if isinstance(v, (int, float))), default=None)
    if newest is not None and newest > SCHEMA_VERSION:
        raise ValueError(
            f"--resume: {out_dir} was written by a newer segbench (schema version {newest}; this one writes "
            f"{SCHEMA_VERSION}): resume it with that version, or start a new run with another --out"
        )
    profile = get_profile(meta.get("profile") or "default")
    shard = parse_shard(meta["shard"]) if meta.get("shard") else None
    plugins = tuple(meta.get("plugins") or ())
    recorded = meta.get("sweep")
    if not isinstance(recorded, dict):
        return RecordedPlan(profile, None, shard, plugins)
    fields = {name: tuple(tuple(v) if isinstance(v, list) else v for v in recorded[name]) for name in SWEEP_FIELDS}
    try:
        sweep = Sweep(**fields)
    except ValueError as error:
        hint = f" (the run loaded the plugins {', '.join(plugins)}: pass them with --plugin)" if plugins else ""
        raise ValueError(f"--resume: {out_dir} cannot be continued here: {error}{hint}") from None
    return RecordedPlan(profile, sweep, shard, plugins)


def _shown(values: tuple) -> str:
    return ",".join("x".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values)


def plan_differences(
    plan: RecordedPlan, profile: Profile | None, sweep: dict[str, tuple] | Sweep, shard: tuple[int, int] | None
) -> list[str]:
    """How a requested profile, sweep (all its fields, or only those the user gave) and shard
    differ from a run's recorded plan, one phrase each; [] when they agree."""
    given = {name: getattr(sweep, name) for name in SWEEP_FIELDS} if isinstance(sweep, Sweep) else sweep
    differences = []
    if profile is not None and profile.name != plan.profile.name:
        differences.append(f"profile {profile.name} (the run's: {plan.profile.name})")
    if plan.sweep is not None:
        for name, values in given.items():
            if tuple(values) != getattr(plan.sweep, name):
                differences.append(f"{name} {_shown(tuple(values))} (the run's: {_shown(getattr(plan.sweep, name))})")
    if shard is not None and shard != plan.shard:
        recorded = f"{plan.shard[0]}/{plan.shard[1]}" if plan.shard else "none"
        differences.append(f"shard {shard[0]}/{shard[1]} (the run's: {recorded})")
    return differences


def check_resumable(out_dir: Path, profile: Profile, sweep: Sweep, shard: tuple[int, int] | None) -> None:
    """Refuse to resume ``out_dir`` with another profile, sweep or shard than it was started with."""
    plan = recorded_plan(out_dir)
    if plan.sweep is None:  # a run of segbench < 0.2 records no plan: nothing to contradict
        return
    differences = plan_differences(plan, profile, sweep, shard)
    if plan.shard is not None and shard is None:
        differences.append(f"no shard (the run's: {plan.shard[0]}/{plan.shard[1]})")
    if differences:
        raise ValueError(
            f"--resume: {out_dir} was started with another plan; asked for {'; '.join(differences)}. "
            "Resume it with no grid options (its plan is in its run.json), or start a new run with another --out"
        )


def pending_visits(cases: list[Case], visits: int, rows: list[dict[str, Any]]) -> list[tuple[int, Case]]:
    """The (visit, case) pairs still to measure, in the order a run measures them: every first
    visit, then the later ones; a cell whose first visit failed gets no later visit."""
    done = {(_key(r), r.get("visit") or 1) for r in rows}
    failed = {_key(r) for r in rows if (r.get("visit") or 1) == 1 and r.get("status") != "ok"}
    return [
        (v, case)
        for v in range(1, visits + 1)
        for case in cases
        if (_key(case.key()), v) not in done and not (v > 1 and _key(case.key()) in failed)
    ]


def unfinished_visits(out_dir: Path) -> tuple[int, int] | None:
    """(visits still to measure, visits in all) of a run, from its plan and journal; None when the
    run records no plan (segbench < 0.2) or cannot be read."""
    from segbench.results.storage import JOURNAL, read_journal

    try:
        plan = recorded_plan(out_dir)
        rows = read_journal(out_dir / JOURNAL)
    except (ValueError, OSError):
        return None
    if plan.sweep is None:
        return None
    cases = shard_cases(plan.sweep.cases(), plan.shard)
    visits = plan.profile.budget.visits
    return len(pending_visits(cases, visits, rows)), len(cases) * visits


def newest_unfinished_run(root: Path) -> Path:
    """The most recently started run under ``root`` that has cells left to measure (said on stderr)."""
    candidates = []
    for path in root.glob("*/run.json") if root.exists() else []:
        with contextlib.suppress(ValueError, OSError):
            started = str(read_meta(path.parent).get("started_at") or "")
            candidates.append((started, path.stat().st_mtime, path.parent))
    for _, _, out_dir in sorted(candidates, reverse=True):
        left = unfinished_visits(out_dir)
        if left and left[0]:
            print(f"segbench run: resuming {out_dir}, the newest unfinished run ({left[0]} of {left[1]} visits left)")
            return out_dir
    raise FileNotFoundError(f"--resume: no unfinished run under {root} ({len(candidates)} finished); pass --out DIR")


def latest_run(root: Path) -> Path:
    """Deprecated name of :func:`newest_unfinished_run`."""
    return newest_unfinished_run(root)


def resume_plan(args: argparse.Namespace) -> tuple[Path, Profile, Sweep, tuple[int, int] | None]:
    """``segbench run --resume``: the run to continue and its recorded plan; options that contradict
    the plan are refused (a run of segbench < 0.2 records none: the options say what it was)."""
    out_dir = Path(args.out) if args.out else newest_unfinished_run(DEFAULT_RESULTS)
    plan = recorded_plan(out_dir)
    shard = parse_shard(args.shard) if args.shard else None
    if plan.sweep is None:
        profile, sweep = options.sweep_from_args(args)
        return out_dir, profile, sweep, shard or plan.shard
    profile = get_profile(args.profile) if args.profile else None
    differences = plan_differences(plan, profile, options.given_grid(args), shard)
    if differences:
        raise ValueError(
            f"--resume: {out_dir} was started with another plan; asked for {'; '.join(differences)}. "
            "Resume it with no grid options (its plan is in its run.json), or start a new run with another --out"
        )
    return out_dir, plan.profile, plan.sweep, plan.shard


def _command(args: argparse.Namespace) -> int:
    time_limit = options.parse_time_limit(args.cell_timeout)
    if args.resume and not args.list:
        out, profile, sweep, shard = resume_plan(args)
    else:
        profile, sweep = options.sweep_from_args(args)
        out, shard = args.out, parse_shard(args.shard) if args.shard else None
    if args.list:
        for case in shard_cases(sweep.cases(), shard):
            print(case.name)
        return 0
    plugins = tuple(getattr(args, "plugin", None) or ())
    try:
        out_dir = run(
            profile,
            sweep,
            device=args.device,
            out=out,
            resume=args.resume,
            progress=not args.quiet,
            shard=shard,
            time_limit=time_limit,
            plugins=plugins,
        )
    except devices.DeviceUnavailableError as error:
        print(f"segbench run: error: {error}", file=sys.stderr)
        return 2
    except RunInterruptedError as stop:
        where = getattr(stop, "out_dir", None) or out
        again = ["segbench run --resume"] + [f"--plugin {p}" for p in plugins]
        if where:
            again.append(f"--out {where}")
        if args.cell_timeout is not None:
            again.append(f"--cell-timeout {args.cell_timeout}")
        print(
            f"\nsegbench run: stopped by {stop}; every finished cell is saved. Continue with: {' '.join(again)}"
            " (it takes the profile, grid and shard from the run's run.json)",
            file=sys.stderr,
        )
        return stop.exit_code
    from segbench.presentation import run_tables
    from segbench.results import storage as results

    frame = results.load(out_dir)
    if args.format == "terminal" and not args.columns:
        print(run_tables.brief(frame))
    else:
        print(run_tables.summary(frame, fmt=args.format, columns=args.columns))
    print(f"\nSaved {len(frame)} cells (cells.jsonl, results.parquet, results.csv, run.json) to {out_dir}/")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="sweep losses x modes x shapes, time every cell, save a tidy table, print the comparison",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_grid_options(parser)
    options.add_measuring_options(parser, out_help="run directory (default: results/runs/<run id>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue --out (default: the newest unfinished run) with the profile, grid and shard in its run.json",
    )
    parser.add_argument("--shard", help="K/N: run only the K-th of N parts of the sweep (combine with segbench merge)")
    parser.add_argument("--list", action="store_true", help="print the cells of the sweep and exit")
    parser.set_defaults(handler=_command)
