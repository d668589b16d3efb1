"""``segbench check``: do loss values drift? Every loss x formulation x mode x pass, recomputed on
the reference scenarios, against float64 values stored in ``results/reference_values.csv``.

Three things are checked, so that a failure says what changed:

1. the inputs: each scenario's SHA-256 of ``y_true`` and ``y_pred`` (the scene generator);
2. the oracle: it must reproduce the stored float64 values (a changed definition or epsilon);
3. every implementation: its value and gradient norm within the tolerance of its dtype.

``segbench check --regenerate`` rewrites the table from the oracle. That is legitimate only when a
loss's definition, the scene generator or the scenarios change on purpose (a new loss or scenario
too), and the commit must say so; never to make a failing implementation pass.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from segbench import oracle
from segbench._constants import TOLERANCES
from segbench.registry import FORMULATIONS, LOSSES, MODES, loss_fn
from segbench.scenes import REFERENCE_SCENARIOS, Scenario, Scene
from segbench.sweep import PASSES

DEFAULT_TABLE = Path("results") / "reference_values.csv"
ORACLE_RTOL = 1e-10  # float64 arithmetic in another order (another numpy build) stays far below this


def scene_digest(scene: Scene) -> str:
    digest = hashlib.sha256()
    digest.update(scene.y_true.tobytes())
    digest.update(scene.y_pred.tobytes())
    return digest.hexdigest()


def reference_table(scenarios: Iterable[Scenario] = REFERENCE_SCENARIOS) -> pd.DataFrame:
    """The float64 oracle's value and gradient norm (mean reduction) per scenario and loss."""
    rows = []
    for scenario in scenarios:
        scene = scenario.scene()
        digest = scene_digest(scene)
        for loss in LOSSES:
            rows.append(
                {
                    **asdict(scenario),
                    "scenario": scenario.name,
                    "inputs_sha256": digest,
                    "loss": loss,
                    "value": float(oracle.loss_value(loss, scene.y_true, scene.y_pred)),
                    "grad_norm": float(np.linalg.norm(oracle.gradient(loss, scene.y_true, scene.y_pred))),
                }
            )
    return pd.DataFrame(rows).drop(columns="name")


def _within(got: float, expected: float, rtol: float, atol: float) -> tuple[float, bool]:
    """(how many tolerances away, within?)"""
    allowed = atol + rtol * abs(expected)
    diff = abs(got - expected)
    return diff / allowed, diff <= allowed


def run_check(
    table: pd.DataFrame,
    modes: Iterable[str] = MODES,
    formulations: Iterable[str] = FORMULATIONS,
    scenarios: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One row per check (inputs, oracle, each implementation) with its difference and verdict."""
    by_name = {s.name: s for s in REFERENCE_SCENARIOS}
    names = list(scenarios) if scenarios is not None else list(dict.fromkeys(table["scenario"]))
    rows = []
    for name in names:
        if name not in by_name:
            raise ValueError(f"unknown scenario {name!r}; expected one of: {', '.join(by_name)}")
        stored = table[table["scenario"] == name]
        if stored.empty:
            raise ValueError(f"scenario {name!r} is not in the reference table: run segbench check --regenerate")
        scene = by_name[name].scene()
        same_inputs = scene_digest(scene) == stored["inputs_sha256"].iloc[0]
        rows.append(_row(name, "inputs", "-", "generator", "-", "sha256", 0.0, float(not same_inputs), same_inputs))
        for _, ref in stored.iterrows():
            loss = ref["loss"]
            got = float(oracle.loss_value(loss, scene.y_true, scene.y_pred))
            score, ok = _within(got, ref["value"], ORACLE_RTOL, 0.0)
            rows.append(_row(name, loss, "-", "oracle", "-", "value", got - ref["value"], score, ok))
            for formulation in formulations:
                for mode in modes:
                    for pass_ in PASSES:
                        rows.extend(_check_implementation(name, scene, ref, formulation, mode, pass_))
    return pd.DataFrame(rows)


def _check_implementation(name, scene, ref, formulation, mode, pass_) -> list[dict]:
    tol = TOLERANCES[scene.y_pred.dtype.name]
    fn = loss_fn(ref["loss"], mode, formulation=formulation, gradient=pass_ == "forward+backward")
    try:
        result = fn(scene.y_true, scene.y_pred)
    except Exception as error:  # an implementation that crashes is a mismatch, reported as such
        return [_row(name, ref["loss"], formulation, mode, pass_, f"error: {error}", np.nan, np.inf, False)]
    value = result[0] if isinstance(result, tuple) else result
    got = float(np.asarray(value))
    score, ok = _within(got, ref["value"], tol["rtol"], tol["atol"])
    rows = [_row(name, ref["loss"], formulation, mode, pass_, "value", got - ref["value"], score, ok)]
    if isinstance(result, tuple):
        norm = float(np.linalg.norm(np.asarray(result[1], dtype=np.float64)))
        score, ok = _within(norm, ref["grad_norm"], tol["rtol"], tol["atol"] * ref["grad_norm"])
        rows.append(_row(name, ref["loss"], formulation, mode, pass_, "grad_norm", norm - ref["grad_norm"], score, ok))
    return rows


def _row(scenario, loss, formulation, mode, pass_, what, diff, tolerances, ok) -> dict:
    return {
        "scenario": scenario,
        "loss": loss,
        "formulation": formulation,
        "mode": mode,
        "pass": pass_,
        "quantity": what,
        "difference": diff,
        "x tolerance": tolerances,
        "ok": bool(ok),
    }


def worst(report: pd.DataFrame) -> pd.DataFrame:
    """The worst check of each loss x formulation x mode x pass, worst first."""
    keys = ["loss", "formulation", "mode", "pass"]
    idx = report.groupby(keys, sort=False)["x tolerance"].idxmax()
    return report.loc[idx].sort_values("x tolerance", ascending=False).reset_index(drop=True)


def _command(args: argparse.Namespace) -> int:
    path = Path(args.table)
    if args.regenerate:
        path.parent.mkdir(parents=True, exist_ok=True)
        reference_table().to_csv(path, index=False, float_format="%.17g")
        print(f"wrote {path} from the float64 oracle; say in the commit why the reference changed")
        return 0
    if not path.exists():
        raise FileNotFoundError(f"--table {path} does not exist: run from the repository root, or --regenerate")
    modes = args.mode.split(",") if args.mode else list(MODES)
    report = run_check(pd.read_csv(path), modes=modes)
    table = worst(report)
    print(table.head(args.top).to_markdown(index=False, floatfmt=".3g"))
    bad = report[~report["ok"]]
    print(
        f"\n{len(report)} checks on {report['scenario'].nunique()} scenarios: "
        f"{len(bad)} mismatch{'es' if len(bad) != 1 else ''} (tolerances per dtype in segbench/_constants.py)"
    )
    if len(bad):
        print(bad.to_markdown(index=False, floatfmt=".3g"), file=sys.stderr)
    return 1 if len(bad) else 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check",
        help="recompute every loss x formulation x mode x pass and compare with stored float64 values",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--table", default=str(DEFAULT_TABLE), help=f"reference table (default {DEFAULT_TABLE})")
    parser.add_argument("--mode", help="comma-separated modes to check (default: all)")
    parser.add_argument("--top", type=int, default=12, help="rows of the worst-differences table to print")
    parser.add_argument("--regenerate", action="store_true", help="rewrite the table from the oracle (see above)")
    parser.set_defaults(handler=_command)
