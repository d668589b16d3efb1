"""Loading user code that registers losses: a Python file or an importable module."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


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
