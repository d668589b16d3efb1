"""The command line: the parser that every command registers with (:mod:`segbench.cli.parser`), and
the options commands share (:mod:`segbench.cli.options`)."""

from __future__ import annotations

from segbench._lazy import package_dir, package_getattr

__getattr__ = package_getattr(__name__, {"main": "segbench.cli.parser"})
__dir__ = package_dir(__name__, ["main"])
