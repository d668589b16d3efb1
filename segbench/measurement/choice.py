"""Which formulation of a loss is fastest on this machine, found by measuring it (``segbench choose``).

The fastest formulation depends on the CPU: at batch 16, 512x512, C=4 under XLA, ``blocked`` was
the fastest cross-entropy on the Intel Xeon and ``fused`` on the AMD EPYC Zen 5
(docs/performance.md). So segbench never picks one by the CPU's name: :func:`choose_formulation`
times every formulation the loss has in the asked mode, on the asked shape, interleaved round by
round (a disturbance of the machine touches every candidate alike), checks each one's value
against the float64 oracle (a formulation that is wrong is never chosen, however fast), and
returns the fastest as a :class:`Choice` with every candidate's times.

The choice is recorded in a JSON file (``$SEGBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/segbench``,
else ``~/.cache/segbench``: ``formulations.json``) under a key that holds everything it depends on:
the loss, mode, pass, reduction, shape and dtype, and the machine (CPU model, code-generation
flags, logical CPUs), the backend's version and segbench's version and commit. Another machine,
another TensorFlow or another commit of segbench measures again; ``refresh=True`` always does.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "SEGBENCH_CACHE_DIR"
CACHE_FILE = "formulations.json"
ROUNDS = 9  # interleaved rounds per candidate: the median of 9 is robust to two disturbed rounds
ROUND_S = 0.05  # seconds a round lasts at least (many calls of a fast loss, one of a slow one)


@dataclass(frozen=True)
class Candidate:
    """One formulation as measured: its per-call times (one per round) and its value's check."""

    formulation: str
    times_s: tuple[float, ...]
    calls_per_round: int
    value: float
    oracle_value: float
    within_tolerance: bool

    @property
    def median_s(self) -> float:
        return float(np.median(self.times_s))

    @property
    def iqr_s(self) -> float:
        q1, q3 = np.percentile(self.times_s, [25, 75])
        return float(q3 - q1)


@dataclass(frozen=True)
class Choice:
    """The fastest formulation of ``loss`` in ``mode`` for inputs of ``shape`` on this machine."""

    loss: str
    mode: str
    pass_: str
    reduction: str
    shape: tuple[int, int, int, int]
    dtype: str
    formulation: str
    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[str, str], ...]  # (formulation, why it was not measured)
    machine: dict[str, Any]
    measured_at: str
    cached: bool = False
    not_recorded: str | None = None  # why the record could not be written (the choice stands)

    def loss_fn(self, *, validate: bool = True) -> Any:
        """The chosen formulation, built as segbench.loss_fn builds it."""
        from segbench.losses.registry import loss_fn

        return loss_fn(
            self.loss,
            self.mode,
            formulation=self.formulation,
            reduction=self.reduction,
            gradient=self.pass_ == "forward+backward",
            validate=validate,
        )

    def describe(self) -> list[str]:
        """The choice as lines for a terminal: the answer, then every candidate, fastest first."""
        import pandas as pd

        from segbench.presentation import tables

        n, h, w, classes = self.shape
        reduced = ", reduction sum" if self.reduction == "sum" else ""
        head = (
            f"{self.loss}, {self.mode}, {self.pass_}, batch {n}, {h}x{w}, C={classes}, {self.dtype}{reduced}, "
            f"on {self.machine.get('cpu_model') or 'this machine'}"
        )
        chosen = next(c for c in self.candidates if c.formulation == self.formulation)  # the fastest correct one
        rows = [
            {
                "formulation": c.formulation,
                "median": tables.human_time(c.median_s),
                "IQR": tables.human_time(c.iqr_s),
                "vs fastest": f"{c.median_s / chosen.median_s:.2f}x",
                "value vs float64 oracle": "within tolerance" if c.within_tolerance else "OFF: never chosen",
            }
            for c in sorted(self.candidates, key=lambda c: (not c.within_tolerance, c.median_s))
        ]
        where = "recorded earlier" if self.cached else "measured now"
        lines = [head, f"chosen: {self.formulation} ({where}, {self.measured_at})"]
        lines.append(tables.render(pd.DataFrame(rows), "terminal"))
        close = [
            c.formulation
            for c in sorted(self.candidates, key=lambda c: c.median_s)
            if c is not chosen and c.within_tolerance and c.median_s <= chosen.median_s + chosen.iqr_s + c.iqr_s
        ]
        if close:
            lines.append(f"{', '.join(close)} within the spread of {self.formulation}: here the choice matters little")
        lines += [f"not measured: {name}: {why}" for name, why in self.skipped]
        return lines


def cache_path() -> Path:
    """Where choices are recorded (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / CACHE_FILE
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "segbench" / CACHE_FILE


def machine_identity(backend: str) -> dict[str, Any]:
    """What a choice depends on beyond the cell: the CPU, the backend's version, segbench's code."""
    from importlib import metadata

    from segbench.measurement import environment
    from segbench.measurement.cells import backend_version

    cpu = environment.cpu()
    commit, dirty = environment.git_state()
    try:  # the installed distribution's version (importing segbench here would import this module back)
        version = metadata.version("segbench")
    except metadata.PackageNotFoundError:  # a plain checkout on PYTHONPATH: the commit says it
        version = None
    return {
        "cpu_model": cpu["cpu_model"],
        "cpu_flags": cpu["cpu_flags"],
        "cpu_count": cpu["cpu_count"],
        "backend": backend,
        "backend_version": backend_version(backend),
        "segbench_version": version,
        "git_commit": commit,
        "git_dirty": dirty,
        "environment": environment.variables(),
    }


def _key(cell: dict[str, Any], machine: dict[str, Any], source: str | None) -> str:
    return json.dumps(cell | {"machine": machine, "loss_source": source}, sort_keys=True)


def loss_source(loss: str) -> str | None:
    """For a user's loss, a hash of the files that define its functions: editing the loss measures
    again (what those files import is not followed). None for segbench's own losses (the commit
    in the machine's identity covers them)."""
    from segbench.losses.registry import get_loss

    user = get_loss(loss).user
    if user is None:
        return None
    files = set()
    for function in (user.tensorflow, user.numpy, user.numpy_gradient, user.keras, user.jax, user.torch):
        if function is None:
            continue
        try:
            files.add(inspect.getsourcefile(getattr(function, "__wrapped__", function)) or "")
        except TypeError:  # a builtin or a Keras Loss object: its class's file
            with contextlib.suppress(TypeError):
                files.add(inspect.getsourcefile(type(function)) or "")
    digest = hashlib.sha256()
    for name in sorted(f for f in files if f):
        with contextlib.suppress(OSError):
            digest.update(name.encode() + b"\0" + Path(name).read_bytes())
    return digest.hexdigest()[:16]


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable or damaged: measure again (and rewrite it whole)
        return {}
    return data if isinstance(data, dict) else {}


def _record(path: Path, key: str, choice: Choice) -> None:
    """Add ``choice`` to the file under a lock (two processes choosing at once keep both choices)."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        data = _load(path)
        entry = asdict(choice)
        entry.pop("cached")
        entry.pop("not_recorded")
        data[key] = entry
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temporary, path)  # a reader never sees half a file


def _from_entry(entry: dict[str, Any], cell: dict[str, Any]) -> Choice:
    """The recorded choice, if it is whole and of this cell; a ValueError (then it is measured
    again) for anything else: a file edited by hand or written by another version."""
    candidates = tuple(
        Candidate(
            str(c["formulation"]),
            tuple(float(t) for t in c["times_s"]),
            int(c["calls_per_round"]),
            float(c["value"]),
            float(c["oracle_value"]),
            bool(c["within_tolerance"]),
        )
        for c in entry["candidates"]
    )
    skipped = tuple((str(name), str(why)) for name, why in entry["skipped"])
    choice = Choice(
        str(entry["loss"]),
        str(entry["mode"]),
        str(entry["pass_"]),
        str(entry["reduction"]),
        tuple(int(d) for d in entry["shape"]),
        str(entry["dtype"]),
        str(entry["formulation"]),
        candidates,
        skipped,
        dict(entry["machine"]),
        str(entry["measured_at"]),
        cached=True,
    )
    recorded = {
        "loss": choice.loss,
        "mode": choice.mode,
        "pass": choice.pass_,
        "reduction": choice.reduction,
        "shape": list(choice.shape),
        "dtype": choice.dtype,
    }
    chosen = [c for c in candidates if c.formulation == choice.formulation]
    if (
        recorded != cell
        or len(chosen) != 1
        or not chosen[0].within_tolerance
        or any(not c.times_s or min(c.times_s) <= 0 for c in candidates)
        or any(c.within_tolerance and c.median_s < chosen[0].median_s for c in candidates)
    ):
        raise ValueError("a recorded choice that does not hold together")
    return choice


def _interleaved(calls: dict[str, Callable[[], Any]], sync: Callable[[Any], Any], rounds: int) -> dict:
    """Per-call seconds of ``rounds`` rounds of each call, the candidates taking turns (the order
    rotating each round), so that a slow minute of the machine falls on all of them."""
    from segbench.measurement.timing import calls_for, time_rounds

    counts = {name: calls_for(call, sync, ROUND_S) for name, call in calls.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name] += time_rounds(calls[name], sync, counts[name], 1)
    return {name: (tuple(times[name]), counts[name]) for name in names}


def _built_candidates(
    loss: str,
    mode: str,
    names: tuple[str, ...],
    gradient: bool,
    reduction: str,
    y_true: Any,
    y_pred: Any,
    sync: Callable[[Any], Any],
) -> tuple[dict, dict, list]:
    """Each formulation built and called once (trace and compile, outside the timing): the calls to
    time, their values, and the formulations skipped with why."""
    from segbench.losses.registry import loss_fn, unsupported

    calls, values, skipped = {}, {}, []
    for name in names:
        reason = unsupported(loss, name, mode, gradient)
        if reason is None:
            try:
                fn = loss_fn(loss, mode, formulation=name, reduction=reduction, gradient=gradient, validate=False)
            except (ValueError, RuntimeError) as error:  # a Keras formulation under another backend
                reason = str(error)
        if reason is not None:
            skipped.append((name, reason))
            continue
        result = sync(fn(y_true, y_pred))  # the first call: traces and compiles, outside the timing
        values[name] = float(result)
        calls[name] = lambda fn=fn: fn(y_true, y_pred)
    return calls, values, skipped


def choose_formulation(
    loss: str,
    mode: str,
    y_true: Any = None,
    y_pred: Any = None,
    *,
    shape: tuple[int, int, int, int] | None = None,
    dtype: str = "float32",
    gradient: bool = False,
    reduction: str = "mean",
    formulations: tuple[str, ...] | None = None,
    refresh: bool = False,
    record: bool = True,
    rounds: int = ROUNDS,
) -> Choice:
    """Measure every formulation of ``loss`` that runs in ``mode`` and return the fastest whose
    value agrees with the float64 oracle, recorded for this machine (see the module docstring).

    The inputs are ``y_true`` and ``y_pred`` (one-hot and probabilities, as segbench.validate_inputs
    checks), or, given ``shape`` (N, H, W, C) instead, the benchmark's own seeded scene of that shape.
    A recorded choice for the same cell and machine is returned without measuring unless ``refresh``.
    """
    from segbench.losses import oracle, tolerances
    from segbench.losses.registry import get_loss, get_mode
    from segbench.measurement.sweep import DTYPES

    spec = get_loss(loss)
    backend = get_mode(mode).backend
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of: {', '.join(DTYPES)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be mean or sum (a map has no single time to compare), got {reduction!r}")
    if not isinstance(rounds, int) or rounds < 3:
        raise ValueError(f"rounds must be an integer >= 3 (a median and its spread), got {rounds!r}")
    if (y_true is None) != (y_pred is None):
        raise ValueError("give both y_true and y_pred, or neither (and a shape)")
    if y_true is None:
        if shape is None:
            raise ValueError("give y_true and y_pred, or shape=(N, H, W, C) for the benchmark's scene")
        if len(shape) != 4 or not all(isinstance(s, int) and s >= 1 for s in shape) or shape[3] < 2:
            raise ValueError(f"shape must be (N, H, W, C) of integers >= 1 with C >= 2, got {shape!r}")
        from segbench.measurement.sweep import scene_for

        scene = scene_for(shape[0], shape[1], shape[2], shape[3], dtype)
        y_true, y_pred = scene.y_true, scene.y_pred
    else:
        from segbench.losses.validation import as_numpy, validate_inputs

        validate_inputs(y_true, y_pred)
        y_true, y_pred = as_numpy(y_true), as_numpy(y_pred)
        dtype = y_pred.dtype.name
    if dtype not in get_mode(mode).dtypes:
        raise ValueError(f"mode {mode} does not support {dtype} (it runs {', '.join(get_mode(mode).dtypes)})")
    shape = tuple(int(s) for s in y_pred.shape)
    pass_ = "forward+backward" if gradient else "forward"
    names = tuple(formulations) if formulations is not None else tuple(spec.formulations)
    unknown = [name for name in names if name not in spec.formulations]
    if unknown:
        raise ValueError(
            f"formulations: loss {loss} has no {', '.join(unknown)} (it has: {', '.join(spec.formulations)})"
        )

    machine = machine_identity(backend)
    cell = {"loss": loss, "mode": mode, "pass": pass_, "reduction": reduction, "shape": list(shape), "dtype": dtype}
    key = _key(cell, machine, loss_source(loss))
    path = cache_path()
    if record and not refresh:
        entry = _load(path).get(key)
        if entry is not None:
            try:
                return _from_entry(entry, cell)
            except (KeyError, TypeError, ValueError, AttributeError):
                pass  # damaged, edited by hand, or of another layout: measure again

    from segbench.measurement import device as devices

    device = devices.resolve("auto", uses_tensorflow=backend == "tensorflow", backend=backend)
    sync = devices.synchronizer(device, backend)
    # On the device before the clock starts, as segbench run places them: a numpy input would be
    # copied into a tensor by every call (at batch 16, 512x512 that copy took longer than the loss).
    placed_true, placed_pred = devices.place(y_true, device, backend), devices.place(y_pred, device, backend)
    with devices.on(device, backend):
        calls, values, skipped = _built_candidates(
            loss, mode, names, gradient, reduction, placed_true, placed_pred, sync
        )
        if not calls:
            raise ValueError(f"no formulation of {loss} runs in mode {mode} ({'; '.join(r for _, r in skipped)})")
        measured = _interleaved(calls, sync, rounds)

    expected = float(oracle.loss_value(loss, y_true, y_pred, reduction))
    n, h, w, c = shape
    pixels = n * h * w
    candidates = []
    for name, (times, count) in measured.items():
        tol = tolerances.for_mean(dtype, mode, loss, pixels, c, formulation=name, reduction=reduction)
        within = tolerances.within(values[name], expected, tol)
        candidates.append(Candidate(name, times, count, values[name], expected, within))
    correct = [c for c in candidates if c.within_tolerance]
    if not correct:
        raise ValueError(
            f"no formulation of {loss} in mode {mode} agrees with the float64 oracle ({expected:.9g}): "
            + ", ".join(f"{c.formulation} {c.value:.9g}" for c in candidates)
        )
    chosen = min(correct, key=lambda c: c.median_s)
    choice = Choice(
        loss,
        mode,
        pass_,
        reduction,
        shape,
        dtype,
        chosen.formulation,
        tuple(candidates),
        tuple(skipped),
        machine,
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    if record:
        try:
            _record(path, key, choice)
        except OSError as error:  # a read-only or full disk: the measurement is still the answer
            where = error.filename or path
            choice = dataclasses.replace(choice, not_recorded=f"{where}: {error.strerror or error}")
    return choice


def _command(args: argparse.Namespace) -> int:
    from segbench.measurement.sweep import parse_resolutions

    resolution = parse_resolutions(args.res)
    if len(resolution) != 1:
        raise ValueError(f"--res takes one resolution (N or HxW), got {args.res!r}")
    ((h, w),) = resolution
    if h < 1 or w < 1:
        raise ValueError(f"--res must be at least 1x1, got {args.res!r}")
    for option in ("batch", "classes"):
        value = getattr(args, option)
        if value < (2 if option == "classes" else 1):
            raise ValueError(f"--{option} must be an integer >= {2 if option == 'classes' else 1}, got {value}")
    if args.pass_ not in ("forward", "forward+backward"):
        raise ValueError(f"--pass must be forward or forward+backward, got {args.pass_!r}")
    choice = choose_formulation(
        args.loss,
        args.mode,
        shape=(args.batch, h, w, args.classes),
        dtype=args.dtype,
        gradient=args.pass_ == "forward+backward",
        reduction=args.reduction,
        refresh=args.refresh,
        record=not args.no_record,
    )
    print("\n".join(choice.describe()))
    if choice.not_recorded:
        print(f"segbench choose: not recorded ({choice.not_recorded}); --no-record skips the record", file=sys.stderr)
    elif not args.no_record:
        print(f"recorded in {cache_path()} (for this machine, this backend's version and this commit)")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "choose",
        help="measure every formulation of a loss on this machine and choose the fastest correct one",
        description=__doc__,
    )
    parser.add_argument("loss", help="the loss (segbench's, or a plugin's with --plugin)")
    parser.add_argument("--mode", default="xla", help="execution mode (default: xla)")
    parser.add_argument("--pass", dest="pass_", default="forward", help="forward (default) or forward+backward")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default: 16)")
    parser.add_argument("--res", default="512", help="resolution: N or HxW (default: 512)")
    parser.add_argument("--classes", type=int, default=4, help="classes C (default: 4)")
    parser.add_argument("--dtype", default="float32", help="float32 (default), float16, bfloat16 or float64")
    parser.add_argument("--reduction", default="mean", choices=("mean", "sum"))
    parser.add_argument("--refresh", action="store_true", help="measure again even if a choice is recorded")
    parser.add_argument("--no-record", action="store_true", help="measure, and record nothing")
    parser.set_defaults(handler=_command)
