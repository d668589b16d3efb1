"""Warm worker processes that measure cells, and the supervisor's handle on them.

One design serves ``segbench run`` (cell isolation), ``segbench ab`` (two commits measured in
alternation) and shards: the supervising process schedules cells and writes results; a worker is
a child process that imports TensorFlow once and measures whatever it is sent. A cell that kills
its worker (a segfault, the out-of-memory killer, a signal) kills only that worker: the
supervisor records how it died and starts a fresh one.

The worker runs as a script, ``python segbench/measurement/worker.py [--code ROOT]``: with ``--code`` the
package ``segbench`` (the code under test: losses, scenes, the runner) is imported from ROOT, a
checkout of another commit, while the timer is always this file's sibling ``timing.py``, so that
both sides of an A/B comparison are measured by the same instrument.

Protocol: one JSON object per line on the worker's stdin (requests) and on a private copy of its
stdout (replies); anything else the worker or TensorFlow prints goes to stderr.

Backends: a worker serves one backend (numpy, tensorflow, jax or torch), named by ``$SEGBENCH_BACKEND``
(:func:`backend_env`); ``KERAS_BACKEND`` is set to it before anything imports Keras, so that a
keras.ops loss runs on that backend, and a JAX or PyTorch worker never imports TensorFlow. The
supervisor starts one worker per backend of the run (``segbench run``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent


def _load_sibling(name: str) -> Any:
    """This file's sibling ``name``.py, loaded by path under a private name: the harness's own
    copy whatever ``--code`` is (a worker imports segbench itself only from the code under test)."""
    module_name = f"_segbench_harness_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[module_name]


if __package__:  # imported as segbench.measurement.worker, by a supervising process
    from segbench.measurement.backends import (
        BACKEND_ENV,
        PLUGINS_ENV,
        VERBOSE_ENV,
        backend_env,
        import_tensorflow_quietly,
    )
else:  # the worker script: segbench is imported later, from the code under test
    _backends = _load_sibling("backends")
    BACKEND_ENV, PLUGINS_ENV, VERBOSE_ENV = _backends.BACKEND_ENV, _backends.PLUGINS_ENV, _backends.VERBOSE_ENV
    backend_env, import_tensorflow_quietly = _backends.backend_env, _backends.import_tensorflow_quietly


class WorkerDiedError(RuntimeError):
    """The worker process ended while measuring: how it died is in the message."""


class WorkerTimeoutError(WorkerDiedError):
    """The worker ran past its time limit on one request and was killed (a loss that never returns)."""

    def __init__(self, limit_s: float, elapsed_s: float):
        super().__init__(f"ran {elapsed_s:.1f} s, past its time limit of {limit_s:g} s; its worker was killed")
        self.limit_s, self.elapsed_s = limit_s, elapsed_s


# ---------------------------------------------------------------------------------------------
# The supervisor's side.


def _cgroup_oom_kills() -> int | None:
    """The cgroup's count of out-of-memory kills (cgroup v2), to tell an OOM kill from a signal."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/sys/fs/cgroup/memory.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    return None


def describe_exit(returncode: int | None, oom_kills_before: int | None = None) -> str:
    """How a worker died, in words: the signal or exit code, and out-of-memory where the system says so."""
    if returncode is None:
        return "the worker stopped answering"
    if returncode < 0:
        try:
            name: str | int = signal.Signals(-returncode).name
        except ValueError:
            name = -returncode
        text = f"the worker was killed by signal {name}"
        after = _cgroup_oom_kills()
        if returncode == -signal.SIGKILL and oom_kills_before is not None and after and after > oom_kills_before:
            text += " from the out-of-memory killer (cgroup memory.events oom_kill)"
        return text
    return f"the worker exited with code {returncode}"


class RunInterruptedError(Exception):
    """SIGINT or SIGTERM reached the supervisor: stop after saving what is measured."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum
        self.out_dir: Path | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`RunInterruptedError` inside the block (main thread only)."""

    def handler(signum: int, frame: Any) -> None:
        raise RunInterruptedError(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class Worker:
    """A running worker process and the pipe to it."""

    process: subprocess.Popen
    code: Path | None

    @classmethod
    def start(
        cls, code: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None, stderr: Any = None
    ) -> Worker:
        """Start a worker; ``code`` is the root of a segbench checkout to measure (default: this one);
        ``stderr``: where its error output goes (default: this process's)."""
        args = [sys.executable, "-u", str(HERE / "worker.py")]
        if code is not None:
            args += ["--code", str(Path(code).resolve())]
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **(env or {})},
            # Its own session: Ctrl-C in a terminal goes to the supervisor, which stops the workers.
            start_new_session=True,
        )
        return cls(process, Path(code) if code else None)

    _pending: bytes = b""  # what was read from the worker past the last reply's newline (nothing, normally)

    def _read_reply(self, timeout: float | None) -> bytes:
        """One reply line, or b"" if the worker ended; WorkerTimeoutError after ``timeout`` seconds
        (the worker's whole process group is killed first, so nothing it started keeps running)."""
        import select

        fd = self.process.stdout.fileno()
        start = time.monotonic()
        buffer = self._pending
        while b"\n" not in buffer:
            remaining = None if timeout is None else timeout - (time.monotonic() - start)
            if remaining is not None and remaining <= 0:
                self.kill()
                raise WorkerTimeoutError(timeout, time.monotonic() - start)
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            buffer += chunk
        line, _, self._pending = buffer.partition(b"\n")
        return line

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; WorkerDiedError if the process ends meanwhile,
        WorkerTimeoutError (and a killed worker) if no reply comes within ``timeout`` seconds."""
        oom_before = _cgroup_oom_kills()
        try:
            self.process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
            self.process.stdin.flush()
            line = self._read_reply(timeout)
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            returncode = self.process.wait()
            raise WorkerDiedError(describe_exit(returncode, oom_before))
        reply = json.loads(line)
        if "exception" in reply:
            raise WorkerError(reply["exception"], reply.get("kind", ""), reply.get("traceback", ""))
        return reply

    def kill(self) -> None:
        """SIGKILL the worker and every process it started (it leads its own session)."""
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """End the worker: it exits when its stdin closes; SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError, ValueError):
            self.process.stdout.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SupervisedWorker:
    """A warm worker, started on first use and again after one dies (the caller records how)."""

    def __init__(self, code: str | os.PathLike[str] | None = None, backend: str | None = None):
        self.code = code
        self.backend = backend  # the backend this worker serves (None: the worker's default, as before backends)
        self.worker: Worker | None = None
        self.starts = 0  # how many worker processes were started (start-up is paid once per visit)

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """One request to a live worker (started if needed); ``timeout`` as in :meth:`Worker.request`."""
        if self.worker is None or self.worker.process.poll() is not None:
            self.worker = Worker.start(self.code, env=backend_env(self.backend))
            self.starts += 1
        try:
            return self.worker.request(op, timeout=timeout, **fields)
        except WorkerDiedError:
            self.worker = None
            raise

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker; ``timeout=0`` kills one that is busy measuring (on an interrupt)."""
        if self.worker is not None:
            self.worker.stop(timeout)
            self.worker = None


class WorkerError(RuntimeError):
    """The worker raised while serving a request (it is still alive)."""

    def __init__(self, message: str, kind: str = "", trace: str = ""):
        super().__init__(f"{kind}: {message}" if kind else message)
        self.message, self.kind, self.trace = message, kind, trace


# ---------------------------------------------------------------------------------------------
# The worker's side: nothing above is used here, and nothing here runs in the supervisor.


def _load_timer() -> Any:
    """This file's sibling timing.py, loaded by path: the same timer whatever ``--code`` is."""
    return _load_sibling("timing")


# The modules of the code under test this harness uses, by their names now and, for a checkout from
# before segbench's modules were put in folders (``segbench ab`` of an older commit), by the flat
# names they had then. The harness cannot ask the code under test for the mapping: old code has none.
FLAT_NAMES = {
    "segbench.measurement.cells": "segbench.runner",
    "segbench.measurement.sweep": "segbench.sweep",
    "segbench.measurement.device": "segbench.device",
    "segbench.measurement.environment": "segbench.environment",
    "segbench.losses.registry": "segbench.registry",
    "segbench.losses.plugins": "segbench.plugins",
    "segbench.losses.modes_jax": "segbench.modes_jax",
}


def code_module(name: str) -> Any:
    """The code under test's module ``name`` (a key of FLAT_NAMES), under its flat name in old code."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is None or not name.startswith(error.name):
            raise
        return importlib.import_module(FLAT_NAMES[name])


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the supervisor dies, so no orphan keeps measuring."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Server:
    """Serves requests in the worker process; keeps TensorFlow, the runner and prepared cases warm."""

    def __init__(self, timer: Any):
        self.timer = timer
        self.runners: dict[tuple, Any] = {}
        self.prepared: dict[tuple, Any] = {}

    @staticmethod
    def _case(key: dict[str, Any]) -> Any:
        MODES = code_module("segbench.losses.registry").MODES
        Case = code_module("segbench.measurement.sweep").Case

        backend = MODES[key["mode"]].backend
        served = os.environ.get(BACKEND_ENV)
        if served and backend != served:
            raise RuntimeError(f"this worker serves the {served} backend; mode {key['mode']} needs {backend}")
        if not served and backend in ("jax", "torch") and "keras" not in sys.modules:
            os.environ["KERAS_BACKEND"] = backend  # a worker of segbench ab: its first Keras cell decides
        if backend == "tensorflow":  # a fresh worker's first TensorFlow cell
            import_tensorflow_quietly()
        return Case(
            int(key["batch"]),
            int(key["height"]),
            int(key["width"]),
            int(key["classes"]),
            key["dtype"],
            key["loss"],
            key["formulation"],
            key["mode"],
            key["pass"],
        )

    @staticmethod
    def _start_backend(backend: str | None, uses_tensorflow: bool) -> None:
        """Import the backend's library now (a failure is this request's error, naming the backend)."""
        if backend in ("jax", "torch"):
            try:
                if backend == "jax":
                    code_module("segbench.losses.modes_jax")  # turns on 64-bit types first
                else:
                    import torch  # noqa: F401
            except Exception as error:
                label = "JAX" if backend == "jax" else "PyTorch"
                raise RuntimeError(f"the {label} backend failed to import: {type(error).__name__}: {error}") from None
        elif uses_tensorflow:
            import_tensorflow_quietly()

    @staticmethod
    def _resolve(device: str, uses_tensorflow: bool, backend: str | None) -> Any:
        devices = code_module("segbench.measurement.device")

        if backend == "numpy":  # numpy runs on the host, whatever device the run is on
            return devices.resolve("cpu")
        return devices.resolve(device, uses_tensorflow=uses_tensorflow, backend=backend)

    def hello(
        self, device: str = "auto", uses_tensorflow: bool = True, profile: str | None = None, backend: str | None = None
    ) -> dict:
        """The run's environment and the device, as this worker (the code under test) sees them."""
        environment = code_module("segbench.measurement.environment")

        uses_tensorflow = uses_tensorflow and backend in (None, "tensorflow")
        self._start_backend(backend, uses_tensorflow)
        target = self._resolve(device, uses_tensorflow, backend)
        meta = environment.collect(
            uses_tensorflow=uses_tensorflow, device=target, profile=profile, source="segbench run"
        )
        reply = {"meta": meta, "device": {"kind": target.kind, "index": target.index, "name": target.name}}
        if backend is not None:
            cells = code_module("segbench.measurement.cells")

            reply["backend_version"] = cells.backend_version(backend)
        return reply

    def _runner(self, budget: dict, device: str, uses_tensorflow: bool, backend: str | None = None) -> Any:
        cells = code_module("segbench.measurement.cells")
        TimerBudget = code_module("segbench.measurement.sweep").TimerBudget

        uses_tensorflow = uses_tensorflow and backend in (None, "tensorflow")
        key = (device, uses_tensorflow, backend, tuple(sorted(budget.items())))
        if key not in self.runners:
            self._start_backend(backend, uses_tensorflow)
            target = self._resolve(device, uses_tensorflow, backend)
            self.runners.clear()
            self.runners[key] = cells.Runner(target, TimerBudget(**budget), uses_tensorflow, backend=backend)
        return self.runners[key]

    def cell(
        self,
        case: dict,
        budget: dict,
        device: str = "auto",
        uses_tensorflow: bool = True,
        backend: str | None = None,
        ceiling: dict | None = None,
    ) -> dict:
        """Measure one cell completely (time, memory, ceiling, oracle): one results row. ``ceiling``:
        the read ceiling the supervisor found over every backend's worker (else this worker's own)."""
        cell_runner = self._runner(budget, device, uses_tensorflow, backend)
        return {"row": cell_runner.measure_cell(self._case(case), ceiling=ceiling)}

    def ceiling(
        self, case: dict, budget: dict, device: str = "auto", uses_tensorflow: bool = True, backend: str | None = None
    ) -> dict:
        """This backend's fastest read of both inputs of the case's shape (see cells.measure_ceiling)."""
        cell_runner = self._runner(budget, device, uses_tensorflow, backend)
        spec = self._case(case)
        found = cell_runner.ceiling(spec, spec.scene())
        return {"gb_per_s": found.gb_per_s, "method": found.method, "device": cell_runner.device.kind}

    def revisit(
        self,
        case: dict,
        calls: int,
        rounds: int,
        budget: dict,
        device: str = "auto",
        uses_tensorflow: bool = True,
        backend: str | None = None,
    ) -> dict:
        """A later visit of a cell: its time only (see Runner.revisit)."""
        cell_runner = self._runner(budget, device, uses_tensorflow, backend)
        return {"row": cell_runner.revisit(self._case(case), calls, rounds)}

    def prepare(self, case: dict, device: str = "auto") -> dict:
        """Build a case and make its first call (timed): the A/B loop then asks for rounds."""
        import time

        self.prepared.clear()  # one cell at a time: its inputs and compiled function only
        spec = self._case(case)
        start = time.perf_counter()
        prepared = spec.prepare(device)
        first_call_s = time.perf_counter() - start
        self.prepared[_key(case)] = prepared
        return {"first_call_s": first_call_s, "value": prepared.first_value}

    def rounds(self, case: dict, calls: int, rounds: int) -> dict:
        """``rounds`` timed rounds of ``calls`` calls each of a prepared case: per-call seconds."""
        prepared = self.prepared[_key(case)]
        with prepared.scope():
            times = self.timer.time_rounds(prepared.run, prepared.sync, calls, rounds)
        return {"times": times}

    def calibrate(self, case: dict, round_s: float) -> dict:
        """How many calls make a round of about ``round_s`` seconds for a prepared case."""
        prepared = self.prepared[_key(case)]
        with prepared.scope():
            return {"calls": self.timer.calls_for(prepared.run, prepared.sync, round_s)}


def _key(case: dict[str, Any]) -> tuple:
    return tuple(sorted(case.items()))


REQUESTS = ("hello", "cell", "ceiling", "revisit", "prepare", "rounds", "calibrate")


def _serve(requests: IO[str], replies: IO[str]) -> None:
    server = _Server(_load_timer())
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.pop("op")
        try:
            handler = getattr(server, op) if op in REQUESTS else None
            if handler is None:
                raise ValueError(f"unknown worker request {op!r}")
            reply = handler(**request)
        except Exception as error:
            reply = {"exception": str(error), "kind": type(error).__name__, "traceback": traceback.format_exc()}
        replies.write(json.dumps(reply, default=_json_default) + "\n")
        replies.flush()


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _load_plugins() -> None:
    """The losses users registered: entry points and $SEGBENCH_PLUGINS, loaded before any cell."""
    try:
        plugins = code_module("segbench.losses.plugins")
    except ImportError:  # the code under test predates plugins (segbench ab on an old commit)
        return
    if hasattr(plugins, "load_all"):
        try:
            plugins.load_all(export=False)
        except Exception as error:  # e.g. an entry point this commit's segbench does not have
            print(f"segbench worker: {error}; its losses are unknown to this worker", file=sys.stderr)
    else:
        for spec in filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)):
            plugins.load(spec)


def main(argv: list[str]) -> None:
    code = Path(argv[argv.index("--code") + 1]) if "--code" in argv else HERE.parents[1]
    # Script mode put this file's folder first on sys.path; the code under test goes there instead.
    sys.path[0] = str(code)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when a worker stops
    # Replies go to a private copy of stdout; fd 1 then points to stderr, so that a print() in a
    # loss or TensorFlow's own output cannot corrupt the protocol.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ.get(BACKEND_ENV):  # before anything (a plugin) imports Keras
        os.environ["KERAS_BACKEND"] = os.environ[BACKEND_ENV]
    environment = code_module("segbench.measurement.environment")

    environment.disable_xla_persistent_cache()
    _load_plugins()
    _serve(sys.stdin, replies)


if __name__ == "__main__":
    main(sys.argv[1:])
