"""Loading user code that registers losses (``segbench.register_loss``).

Three ways, all loaded by :func:`load_all`: ``--plugin PATH.py`` or ``--plugin package.module`` on
the command line (repeatable); ``$SEGBENCH_PLUGINS``, the same list separated by ``os.pathsep``
(asv and pytest-benchmark run benchmarks in fresh processes: this is how they see plugins); and
the entry-point group ``segbench.losses``, so that an installed package registers its losses with
no flag at all. segbench's own standard losses (``segbench.losses.standard``) come in that way too.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ENV = "SEGBENCH_PLUGINS"
ENTRY_POINT_GROUP = "segbench.losses"
_loaded: dict[str, ModuleType] = {}


class PluginError(ValueError):
    """A plugin could not be loaded; the message names the plugin and the problem."""


def load(spec: str) -> ModuleType:
    """Import ``spec``: a path to a ``.py`` file, or a dotted module name."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise PluginError(f"plugin {spec!r}: file not found")
        name = f"segbench_plugin_{path.stem}_{abs(hash(str(path))):x}"
        if name in sys.modules:
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise PluginError(f"plugin {spec!r}: not a Python file (expected a .py file or a module name)")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise PluginError(f"plugin {spec!r} failed to import: {type(error).__name__}: {error}") from error
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if error.name and spec.startswith(error.name):
            raise PluginError(f"plugin {spec!r}: module not found") from error
        raise PluginError(f"plugin {spec!r} failed to import: {type(error).__name__}: {error}") from error
    except Exception as error:
        raise PluginError(f"plugin {spec!r} failed to import: {type(error).__name__}: {error}") from error


def _origin_of(spec: str) -> str:
    return str(Path(spec).expanduser().resolve()) if spec.endswith(".py") or "/" in spec else spec


def load_all(specs: list[str] | tuple[str, ...] = (), *, export: bool = True) -> list[str]:
    """Load the entry points, then $SEGBENCH_PLUGINS, then ``specs``, each once; returns what was
    loaded. With ``export``, ``specs`` are added to $SEGBENCH_PLUGINS so that worker processes
    (segbench run's, segbench ab's) load them too."""
    import os
    from importlib.metadata import entry_points

    from segbench.losses.registry import LOSSES

    loaded = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry point {entry.name} = {entry.value}"
        if key not in _loaded:
            before = set(LOSSES)
            try:
                _loaded[key] = entry.load()
            except Exception as error:
                raise PluginError(f"plugin {key}: failed to load: {type(error).__name__}: {error}") from error
            _tag(set(LOSSES) - before, key)
            loaded.append(key)
    env = [part for part in os.environ.get(ENV, "").split(os.pathsep) if part]
    for spec in [*env, *specs]:
        origin = _origin_of(spec)
        if origin in _loaded:
            continue
        before = set(LOSSES)
        _loaded[origin] = load(spec)
        _tag(set(LOSSES) - before, origin)
        loaded.append(origin)
    if export and specs:
        exported = [*env, *(o for o in map(_origin_of, specs) if o not in env)]
        os.environ[ENV] = os.pathsep.join(exported)
    return loaded


def _tag(names: set[str], origin: str) -> None:
    """Record where each newly registered loss came from (for error messages)."""
    import dataclasses

    from segbench.losses.registry import LOSSES

    for name in names:
        spec = LOSSES[name]
        if spec.user is not None and not spec.user.origin:
            LOSSES[name] = dataclasses.replace(spec, user=dataclasses.replace(spec.user, origin=f"plugin {origin}"))


def origin_of(loss: str) -> str:
    """Where a loss comes from, for messages: its plugin, or segbench itself."""
    from segbench.losses.registry import LOSSES

    spec = LOSSES.get(loss)
    if spec is None or spec.user is None:
        return "built into segbench"
    return spec.user.origin or "registered in-process"


class UserCodeDiedError(RuntimeError):
    """The process running a loss's code died (os._exit, a segfault, a kill); names the losses."""


def _child_init(backend: str | None = None) -> None:  # pragma: no cover - runs in the child
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if backend is not None:  # before a plugin imports Keras: it runs on this process's backend
        from segbench.measurement.backends import backend_env

        os.environ.update(backend_env(backend))
    from segbench.losses.registry import installed_backends

    if installed_backends()["tensorflow"] and os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        from segbench.measurement.backends import import_tensorflow_quietly

        import_tensorflow_quietly()  # its start-up lines kept from the terminal, as in every command
    load_all(export=False)


def _kill(pool) -> None:
    """End a pool whose child is stuck in user code: kill its processes (Python < 3.14 has no
    public way; ``_processes`` is the executor's own map of them), then drop the pool."""
    for process in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(Exception):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _died(group: tuple[str, ...], how: str, backend: str | None = None) -> UserCodeDiedError:
    from segbench.losses.registry import BACKEND_LABELS

    names = ", ".join(f"{loss} ({origin_of(loss)})" for loss in group)
    process = f"the {BACKEND_LABELS[backend]} process" if backend else "the process"
    return UserCodeDiedError(f"{process} evaluating loss {names} {how}; the other losses went on in a fresh process")


def run_isolated(
    task, groups: list[tuple[str, ...]], *args, time_limit: float | None = None, backend: str | None = None
):
    """``task(group, *args)`` for each group of losses in a child process (user code can call
    os._exit, crash the interpreter or never return: segbench must survive it, as ``segbench run``
    does with its workers). Yields ``(group, result)``, or ``(group, UserCodeDiedError)`` for a group
    whose process died or ran past ``time_limit`` seconds (a group of user losses only: segbench's
    own losses have none), and goes on with the next group in a fresh process. Plugins reach the
    child through $SEGBENCH_PLUGINS (load_all exports them). ``backend``: the children serve that
    backend only (worker.backend_env: Keras runs on it there, and a JAX or PyTorch child never
    imports TensorFlow), as segbench run's workers do."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout
    from concurrent.futures.process import BrokenProcessPool

    from segbench.losses.registry import LOSSES

    context = multiprocessing.get_context("spawn")
    pool = None
    try:
        for group in groups:
            if pool is None:
                pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=context, initializer=_child_init, initargs=(backend,)
                )
            users = any(loss in LOSSES and LOSSES[loss].user is not None for loss in group)
            try:
                yield group, pool.submit(task, group, *args).result(timeout=time_limit if users else None)
            except FutureTimeout:
                _kill(pool)
                pool = None
                how = f"ran past its time limit of {time_limit:g} s and was killed (--timeout sets the limit)"
                yield group, _died(group, how, backend)
            except BrokenProcessPool:
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
                yield (
                    group,
                    _died(group, "died (os._exit, a segfault or a kill): its code ended the interpreter", backend),
                )
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def loss_groups(losses) -> list[tuple[str, ...]]:
    """segbench's own losses together, each user loss alone (so that one crash costs one loss)."""
    from segbench.losses.registry import LOSSES

    losses = list(losses)
    own = tuple(loss for loss in losses if LOSSES[loss].user is None)
    return ([own] if own else []) + [(loss,) for loss in losses if LOSSES[loss].user is not None]
