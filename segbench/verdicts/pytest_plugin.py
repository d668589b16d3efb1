"""A pytest gate on segbench's verdicts: ``pytest --benchmark-only --segbench-compare=BASELINE``.

pytest-benchmark's own gate (``--benchmark-compare-fail=median:25%``) fails on any cell whose
median moved by the percentage, however noisy its rounds were; on unchanged code under load it
fails many cells. This plugin compares the session's benchmarks with BASELINE (a pytest-benchmark
JSON file, a ``.benchmarks`` folder: its latest saved run, a segbench run or asv's results) with
segbench's statistics (segbench.verdicts.stats: a test, the ratio's interval, the threshold and the noise
floor; segbench.verdicts.compare) and fails the session only when a cell is **slower**. The verdicts are
printed in the terminal summary; the machines are compared first, as ``segbench compare`` does
(different machines: no verdict, the session fails unless ``--segbench-across-machines``).

Loaded by the ``pytest11`` entry point ``segbench`` (or ``-p segbench.verdicts.pytest_plugin``). The
benchmarks' rounds must be kept (``--benchmark-save-data`` or segbench's tests/conftest.py, which
keeps them) for a test on samples; without them a cell can only be inconclusive.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("segbench", "segbench's verdicts on pytest-benchmark's timings")
    group.addoption(
        "--segbench-compare",
        metavar="BASELINE",
        help="compare this session's benchmarks with BASELINE (pytest-benchmark JSON, a .benchmarks folder: its "
        "latest run, a segbench run, asv results) with segbench's statistics; fail the session if a cell is slower",
    )
    group.addoption("--segbench-threshold", type=float, default=None, help="smallest change that counts (0.1)")
    group.addoption("--segbench-alpha", type=float, default=None, help="significance level of the test (0.01)")
    group.addoption(
        "--segbench-across-machines",
        action="store_true",
        help="give verdicts even when BASELINE comes from another machine or software version",
    )


def _session_rows(config: pytest.Config) -> Any:
    """This session's benchmarks in segbench's schema (as pytest-benchmark would save them)."""
    import pandas as pd

    from segbench.results import importers
    from segbench.results import storage as results

    bench = getattr(config, "_benchmarksession", None)
    if bench is None or not bench.benchmarks:
        return None
    machine_info = bench.get_machine_info()
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    data = config.hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=bench.benchmarks,
        include_data=True,
        machine_info=machine_info,
        commit_info=commit_info,
    )
    rows = importers.pytest_benchmark_rows(data, "this-session")
    return results.conform(pd.DataFrame(rows)) if rows else None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    baseline = config.getoption("segbench_compare", None)
    if not baseline:
        return
    from segbench.presentation import verdict_tables
    from segbench.results import importers
    from segbench.verdicts import compare, stats

    threshold = config.getoption("segbench_threshold") or stats.DEFAULT_THRESHOLD
    alpha = config.getoption("segbench_alpha") or stats.DEFAULT_ALPHA
    out = io.StringIO()
    failed = False
    try:
        current = _session_rows(config)
        if current is None:
            out.write("segbench: no benchmark was timed in this session (--benchmark-only?), nothing compared\n")
        else:
            name, old = importers.pick_runs([baseline])[-1]
            table = compare.compare_runs(
                old,
                current,
                threshold,
                alpha,
                across_machines=config.getoption("segbench_across_machines"),
                names=("BASELINE", "THIS SESSION"),
            )
            out.write(f"segbench: BASELINE = {name}, NEW = this session\n")
            if table.empty:
                out.write("segbench: the baseline and this session have no cell in common\n")
            else:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                    failed = verdict_tables.print_verdicts(table, "terminal", threshold, alpha) == 1
    except compare.DifferentMachinesError as error:
        out.write("\n".join([f"segbench: {error.message}", *error.lines]) + "\n")
        out.write("segbench: no verdict; pass --segbench-across-machines to compare anyway\n")
        failed = True
    except (OSError, ValueError) as error:
        out.write(f"segbench: --segbench-compare: {error}\n")
        failed = True
    config._segbench_report = out.getvalue()
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = getattr(config, "_segbench_report", None)
    if report:
        terminalreporter.section("segbench verdicts")
        terminalreporter.write(report)
