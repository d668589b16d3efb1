"""Lazy names for segbench's packages (PEP 562), and the flat module names of earlier versions.

Every package imports its modules on first use, so ``import segbench`` stays cheap and TensorFlow
is imported only where a mode needs it. Until version 0.1 the modules were flat
(``segbench.runner``, ``segbench.losses_tf``, ...); :data:`FLAT_MODULES` keeps those names
importable, as the same module objects as the new ones, so that code written against them (and
asv's benchmark suite run over older commits) keeps working.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

FLAT_MODULES = {  # earlier flat name -> its module now
    "registry": "losses.registry",
    "validation": "losses.validation",
    "scenes": "losses.scenes",
    "clipping": "losses.clipping",
    "tolerances": "losses.tolerances",
    "oracle": "losses.oracle",
    "plugins": "losses.plugins",
    "standard": "losses.standard",
    "losses_numpy": "losses.numpy_impl",
    "losses_tf": "losses.tf_impl",
    "losses_keras": "losses.keras_impl",
    "losses_jax": "losses.jax_impl",
    "losses_torch": "losses.torch_impl",
    "modes_tf": "losses.modes_tf",
    "modes_jax": "losses.modes_jax",
    "modes_torch": "losses.modes_torch",
    "sweep": "measurement.sweep",
    "timing": "measurement.timing",
    "device": "measurement.device",
    "environment": "measurement.environment",
    "worker": "measurement.worker",
    "runner": "measurement.runner",
    "gpu_check": "measurement.gpu_check",
    "importers": "results.importers",
    "merge": "results.merge",
    "stats": "verdicts.stats",
    "compare": "verdicts.compare",
    "ab": "verdicts.ab",
    "values": "verdicts.values",
    "check": "verdicts.check",
    "pytest_plugin": "verdicts.pytest_plugin",
    "tables": "presentation.tables",
    "report": "presentation.report",
    "progress": "presentation.progress",
}  # segbench.results and segbench.cli are packages now, with the same names as before


def package_getattr(
    package: str, exports: dict[str, str] | None = None, every_name_of: tuple[str, ...] = ()
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` (name -> module) first, then submodules,
    then any name of the modules ``every_name_of`` (in that order)."""

    def __getattr__(name: str) -> Any:  # noqa: N807 (a module's PEP 562 hook)
        module = sys.modules[package]
        if exports and name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(module, name, value)
            return value
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{package}.{name}":
                raise
        for source in map(importlib.import_module, every_name_of):
            if hasattr(source, name):
                return getattr(source, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def package_dir(package: str, names: Iterable[str] = ()) -> Callable[[], list[str]]:
    def __dir__() -> list[str]:  # noqa: N807
        return sorted({*vars(sys.modules[package]), *names})

    return __dir__


class _FlatModuleLoader(importlib.abc.Loader):
    """Loads an earlier flat name as the module that holds its code now (the same object)."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.spec  # importlib gave it the flat name's spec: it keeps its own


class _FlatModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        prefix, _, name = fullname.partition(".")
        if prefix != "segbench" or name not in FLAT_MODULES:
            return None
        module = importlib.import_module(f"segbench.{FLAT_MODULES[name]}")
        return importlib.machinery.ModuleSpec(fullname, _FlatModuleLoader(module))


def install_flat_names() -> None:
    """Make ``segbench.<flat name>`` importable (once per process)."""
    if not any(isinstance(finder, _FlatModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_FlatModuleFinder())
