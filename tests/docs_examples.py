"""A pytest plugin (``-p docs_examples`` in pyproject.toml): the documentation's commands, run as
tests (Sybil): every ```bash block that is followed by an
output block is run from the repository root, and its output must contain the shown lines in
order, with numbers (and their units) allowed to differ, since they vary by machine; ``[...]`` in
a shown line stands for words that do (the CPU's name, the fastest mode), and a line ``...`` for
lines left out. A command
too slow for CI or needing what CI lacks is marked ``<!-- docs: skip, REASON -->`` just above it,
and the test report lists it as skipped with that reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sybil import Region, Sybil

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = re.compile(
    r"(?:<!-- docs: skip, (?P<skip>[^>]*?) -->\n)?"
    r"```bash\n(?P<command>(?:(?!```).)*?)```\n(?:[ \t]*\n)?"  # one block: no fence inside it
    r"```(?:text)?\n(?P<output>(?:(?!```).)*?)```",
    re.DOTALL,
)
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?\s*(?:µs|ms|ns|min|s|GB/s|GiB|MiB|%|x)?(?![A-Za-z])")
COMMAND_TIMEOUT_S = 600


def normalise(line: str) -> str:
    """A line with every number (and its unit) as #, runs of spaces as one, table rules dropped."""
    line = NUMBER.sub("#", line)
    line = re.sub(r"#(?:[ ]*#)+", "#", line)  # "1 min 05 s" and the like
    return " ".join(line.split())


def comparable(text: str) -> list[str]:
    lines = [normalise(line) for line in text.splitlines()]
    return [line for line in lines if line and line != "..." and not re.fullmatch(r"[-| :]+", line)]


def run_example(example) -> None:
    command, expected, skip = example.parsed
    if skip:
        pytest.skip(skip)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    # unbuffered, and stderr into stdout: the lines in the order a terminal shows them
    env = {**os.environ, "PATH": path, "COLUMNS": "100", "PYTHONUNBUFFERED": "1"}
    env.pop("SEGBENCH_PROFILE", None)
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    shown = comparable(done.stdout)
    position = 0
    for line in comparable(expected):
        pattern = re.compile(".*".join(re.escape(part) for part in line.split("[...]")))
        try:
            position = next(i for i in range(position, len(shown)) if pattern.fullmatch(shown[i])) + 1
        except StopIteration:
            raise AssertionError(
                f"{example.path}:{example.line}: `{command.strip()}` printed no line like\n  {line}\n"
                f"after its line {position}; it printed:\n{done.stdout[-4000:]}"
            ) from None


def parse(document) -> list[Region]:
    return [
        Region(match.start(), match.end(), (match["command"], match["output"], match["skip"]), run_example)
        for match in EXAMPLE.finditer(document.text)
    ]


pytest_collect_file = Sybil(
    parsers=[parse], patterns=["README.md", "docs/*.md", "docs/**/*.md"], path=str(ROOT)
).pytest()


@pytest.hookimpl(tryfirst=True)  # before pytest's -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The documentation's commands start segbench as a user does (5-25 s each): the slow tier."""
    for item in items:
        if item.path.suffix == ".md":
            item.add_marker(pytest.mark.slow)
