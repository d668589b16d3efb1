"""The package's folders: what each holds, no import circles, the earlier flat names, tests that mirror it."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import segbench
from segbench._lazy import FLAT_MODULES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "segbench"
FOLDERS = ("losses", "measurement", "results", "verdicts", "presentation", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """The segbench modules ``path`` imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
    return {name for name in found if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    return {name: imports_of(path) - {name} for name, path in MODULES.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    graph = import_graph()
    graph["segbench.results.storage"] = graph["segbench.results.storage"] | {"segbench.results.importers"}
    assert ["segbench.results.importers", "segbench.results.storage"] in circles(graph)


def test_each_folder_is_a_package_that_says_what_it_holds():
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == sorted(FOLDERS)
    for folder in FOLDERS:
        module = importlib.import_module(f"segbench.{folder}")
        assert module.__doc__ and len(module.__doc__.split()) >= 8, folder
        assert len((PACKAGE / folder / "__init__.py").read_text().splitlines()) <= 40, folder
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "_constants.py", "_lazy.py"]  # every other module lives in a folder


def test_losses_import_nothing_from_later_folders():
    """The first folder stands alone: a loss's definition does not depend on how it is measured or
    shown (its plugins name the backend their process serves: measurement.backends, which imports nothing)."""
    later = ("segbench.results", "segbench.verdicts", "segbench.presentation", "segbench.cli")
    for name, targets in import_graph().items():
        if name.startswith("segbench.losses"):
            assert not [t for t in targets if t.startswith(later)], name
            assert {t for t in targets if t.startswith("segbench.measurement")} <= {"segbench.measurement.backends"}


def _folder(module: str) -> int | None:
    parts = module.split(".")
    return FOLDERS.index(parts[1]) if len(parts) > 2 and parts[1] in FOLDERS else None


def later_imports(graph: dict[str, set[str]], commands: set[str]) -> list[str]:
    """Imports of a later folder by a module that is not a command (the ends of the flow, which
    measure, decide and print, may use presentation and cli)."""
    found = []
    for name, targets in graph.items():
        here = _folder(name)
        if here is None or name in commands or name == "segbench.losses.plugins":
            continue
        found += [f"{name} -> {t}" for t in sorted(targets) if (_folder(t) or 0) > here]
    return found


def test_only_the_commands_import_from_later_folders():
    """The tables a command prints live in presentation/; the rest of the flow never reaches forward."""
    from segbench.cli.parser import COMMAND_MODULES

    commands = {*COMMAND_MODULES, "segbench.verdicts.pytest_plugin"}
    assert later_imports(import_graph(), commands) == []
    tangled = {**import_graph(), "segbench.verdicts.stats": {"segbench.presentation.tables"}}
    assert later_imports(tangled, commands) == ["segbench.verdicts.stats -> segbench.presentation.tables"]


@pytest.mark.parametrize("flat", sorted(FLAT_MODULES))
def test_each_earlier_flat_name_is_the_same_module(flat):
    old = importlib.import_module(f"segbench.{flat}")
    new = importlib.import_module(f"segbench.{FLAT_MODULES[flat]}")
    assert old is new and getattr(segbench, flat) is new
    assert new.__spec__.name == f"segbench.{FLAT_MODULES[flat]}"  # it keeps its own name


def test_flat_names_cover_every_module_that_had_one():
    for flat, now in FLAT_MODULES.items():
        assert f"segbench.{now}" in MODULES, (flat, now)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("segbench.no_such_module")


def test_the_worker_harness_names_old_modules_as_the_package_does():
    from segbench.measurement.worker import FLAT_NAMES

    for now, flat in FLAT_NAMES.items():
        short = flat.removeprefix("segbench.")
        expected = "measurement.cells" if short == "runner" else FLAT_MODULES[short]  # the cell side of runner
        assert now == f"segbench.{expected}", (now, flat)


def test_public_api_is_where_it_was():
    for name in segbench.__all__:
        assert getattr(segbench, name) is not None
    assert callable(segbench.loss_fn) and callable(segbench.make_scene) and callable(segbench.register_loss)
    from segbench import results

    for name in (
        "load",
        "ResultWriter",
        "from_asv",
        "from_pytest_benchmark",
        "SCHEMA_VERSION",
        "KEY_COLUMNS",
        "COLUMNS",
    ):
        assert getattr(results, name) is not None, name
    from segbench.cli import main

    assert callable(main)


def test_python_dash_m_runs_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "segbench.cli", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0 and "segbench" in done.stdout and "compare" in done.stdout


def test_tests_mirror_the_package():
    folders = sorted(
        p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name not in ("bench", "__pycache__")
    )
    assert folders == sorted(FOLDERS)
    for folder in FOLDERS:
        tested = {p.stem.removeprefix("test_") for p in (ROOT / "tests" / folder).glob("test_*.py")}
        assert tested, folder
