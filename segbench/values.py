"""Loss values of every implementation on named scenarios, next to the float64 oracle.

This answers "is every implementation computing the same number?" and is the basis of the value
regression check (``segbench check``).

A user's loss runs in a child process (its code may call ``os._exit`` or crash the interpreter:
the others still get their rows, and the output names the loss and its plugin) and is evaluated
twice in every mode: two different results are reported as non-deterministic, with their spread,
not as a mismatch against the oracle. Without a numpy reference and gradient, its oracle is its
own TensorFlow code in float64, which checks precision, not logic: the output says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import asdict

import numpy as np
import pandas as pd

from segbench import oracle, tables, tolerances
from segbench.registry import FORMULATIONS, LOSSES, MODES, loss_fn, not_here, unsupported
from segbench.scenes import SEED_SCENARIO, Scenario


def value_table(
    scenario: Scenario = SEED_SCENARIO,
    losses: Iterable[str] = LOSSES,
    modes: Iterable[str] = MODES,
    formulations: Iterable[str] = FORMULATIONS,
) -> pd.DataFrame:
    """One row per loss x formulation x mode: the value, the oracle's, and their difference."""
    scene = scenario.scene()
    rows = []
    for loss in list(losses):
        user = LOSSES[loss].user is not None
        try:
            expected = float(oracle.loss_value(loss, scene.y_true, scene.y_pred))
        except Exception as error:  # the user's code failed in float64: one row naming it
            failure = f"its float64 oracle failed: {type(error).__name__}: {error}".splitlines()[0][:300]
            rows.append(
                {**asdict(scenario), "loss": loss, "formulation": "-", "mode": "-", "value": np.nan}
                | {"oracle": np.nan, "abs_diff": np.nan, "spread": 0.0, "ok": False, "failure": failure}
            )
            continue
        for formulation in formulations:
            for mode in modes:
                if unsupported(loss, formulation, mode, gradient=False) or not_here(loss, formulation, mode):
                    continue
                spread = 0.0
                try:
                    fn = loss_fn(loss, mode, formulation=formulation)
                    value = float(np.asarray(fn(scene.y_true, scene.y_pred)))
                    if user:  # twice: a non-deterministic loss is reported as such, not as a mismatch
                        spread = abs(float(np.asarray(fn(scene.y_true, scene.y_pred))) - value)
                except Exception as error:  # a loss that fails in a mode is a disagreement, named
                    value, failure = np.nan, f"{type(error).__name__}: {error}".splitlines()[0][:200]
                else:
                    failure = ""
                diff = abs(value - expected)
                terms = scene.y_true.size if user else scene.y_true.size // scene.y_true.shape[-1]
                tol = tolerances.value_tolerance(scenario.dtype, terms, mode, loss, formulation=formulation)
                rows.append(
                    {
                        **asdict(scenario),
                        "loss": loss,
                        "formulation": formulation,
                        "mode": mode,
                        "value": value,
                        "oracle": expected,
                        "abs_diff": diff,
                        "spread": spread,
                        "ok": bool(diff <= tol["atol"] + tol["rtol"] * abs(expected)) or spread > 0,
                        "failure": failure,
                    }
                )
    return pd.DataFrame(rows)


def _rows_of(group: tuple[str, ...], scenario: Scenario) -> pd.DataFrame:
    """value_table for one group of losses (what a child process computes)."""
    return value_table(scenario, losses=group)


USER_LOSS_TIME_LIMIT_S = 120.0  # a user loss's values in every mode (the examples: 5-40 s on 2 cores)


def isolated_value_table(
    scenario: Scenario = SEED_SCENARIO,
    losses: Iterable[str] = LOSSES,
    time_limit: float | None = USER_LOSS_TIME_LIMIT_S,
) -> pd.DataFrame:
    """value_table with user losses each in a child process; a loss whose process died or ran past
    ``time_limit`` seconds gets one row naming it (mode "-", failure: what happened)."""
    from segbench import plugins

    frames = []
    groups = plugins.loss_groups(losses)
    for group, result in plugins.run_isolated(_rows_of, groups, scenario, time_limit=time_limit):
        if isinstance(result, Exception):
            frames.append(
                pd.DataFrame(
                    [
                        {**asdict(scenario), "loss": loss, "formulation": "-", "mode": "-", "value": np.nan}
                        | {"oracle": np.nan, "abs_diff": np.nan, "spread": 0.0, "ok": False, "failure": str(result)}
                        for loss in group
                    ]
                )
            )
        else:
            frames.append(result)
    return pd.concat(frames, ignore_index=True)


def value_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Losses as rows, modes as columns, plus the oracle and the worst difference to it."""
    pivot = table.pivot_table(index=["loss", "formulation"], columns="mode", values="value", sort=False)
    pivot.columns.name = None
    grouped = table.groupby(["loss", "formulation"], sort=False)
    pivot["oracle (float64)"] = grouped["oracle"].first()
    pivot["max |diff|"] = grouped["abs_diff"].max()
    return pivot


def _time_limit(args: argparse.Namespace, default: float) -> float | None:
    """--timeout: seconds (> 0), or 0/none for no limit; the default when not given."""
    from segbench.runner import parse_time_limit

    text = getattr(args, "timeout", None)
    if text is None:
        return default
    try:
        value = parse_time_limit(text)
    except ValueError:
        raise ValueError(f"--timeout takes seconds > 0, or 0/none for no limit, got {text!r}") from None
    return value or None


def add_timeout_option(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        help=f"stop a user loss's evaluation after this long, as a failure naming it (default {default:g} s; "
        "0 or none: no limit)",
    )


def _command(args: argparse.Namespace) -> int:
    scenario = SEED_SCENARIO
    print(
        tables.wrap(
            f"Loss values on the seed's scenario (batch {scenario.batch}, {scenario.height}x{scenario.width}, "
            f"C={scenario.classes}, {scenario.missing} missing annotations, seed {scenario.seed}), float32 inputs:"
        )
        + "\n"
    )
    losses = args.loss.split(",") if getattr(args, "loss", None) else list(LOSSES)
    for loss in losses:
        if loss not in LOSSES:
            raise ValueError(f"--loss: unknown loss {loss!r}; expected one of: {', '.join(LOSSES)}")
    table = isolated_value_table(scenario, losses, time_limit=_time_limit(args, USER_LOSS_TIME_LIMIT_S))
    died = table[table["mode"] == "-"]
    table = table[table["mode"] != "-"]
    if table.empty:  # every loss asked for failed: the lines below say how
        table = pd.DataFrame(columns=["loss", "formulation", "mode", "value", "spread", "ok", "failure"])
    pivot = value_pivot(table).reset_index() if len(table) else pd.DataFrame({"loss": []})
    if args.format == "terminal":
        pivot = pivot.rename(columns={"formulation": "form", "oracle (float64)": "oracle", "max |diff|": "max diff"})
        pivot["loss"] = pivot["loss"].map(tables.short_loss)
        # 6 digits (the differences are in max diff); "-" where a mode does not run the loss
        for column in pivot.columns[2:]:
            digits = ".2g" if column == "max diff" else ".6g"
            pivot[column] = ["-" if pd.isna(v) else format(v, digits) for v in pivot[column]]
    if len(pivot):
        print(tables.render(pivot, args.format, columns=args.columns, floatfmt=".7g"))
    scene = scenario.scene()
    complete = float(oracle.loss_value("categorical_crossentropy", scene.y_true_complete, scene.y_pred))
    missing = float(oracle.loss_value("categorical_crossentropy", scene.y_true, scene.y_pred))
    print(
        "\n"
        + tables.wrap(
            f"The same predictions against the complete annotation: categorical_crossentropy = {complete:.7g} "
            f"(oracle), {missing:.7g} with {scenario.missing} annotations missing."
        )
    )
    from segbench.plugins import origin_of

    for loss in (name for name in table["loss"].unique() if not oracle.independent(name)):
        print(
            f"NOTE: {loss} ({origin_of(loss)}) has no numpy reference with a gradient: its oracle is its own "
            "TensorFlow code in float64, which checks precision, not logic",
            file=sys.stderr,
        )
    for _, row in table[table["spread"] > 0].iterrows():
        print(
            f"NON-DETERMINISTIC: {row['loss']} ({origin_of(row['loss'])}) in mode {row['mode']}: two calls on the "
            f"same inputs differ by {row['spread']:.3g} ({row['spread'] / max(abs(row['value']), 1e-300):.2g} "
            "relative); not compared with the oracle",
            file=sys.stderr,
        )
    for _, row in died.iterrows():
        print(f"FAILED: {row['loss']}: {row['failure']}", file=sys.stderr)
    bad = table[~table["ok"]]
    for _, row in bad.iterrows():
        why = f" ({row['failure']})" if row["failure"] else ""
        print(
            f"MISMATCH: {row['loss']} ({row['formulation']}, {origin_of(row['loss'])}) in mode {row['mode']}: "
            f"{row['value']:.9g} against the oracle's {row['oracle']:.9g}, off by {row['abs_diff']:.3g}{why}",
            file=sys.stderr,
        )
    return 1 if len(bad) or len(died) or (table["spread"] > 0).any() else 0


def register(commands: argparse._SubParsersAction) -> None:
    from segbench.compare import add_output_options

    parser = commands.add_parser("values", help="every loss's value on the seed's scenario in every mode")
    parser.add_argument("--loss", help="comma-separated losses (default: all)")
    add_timeout_option(parser, USER_LOSS_TIME_LIMIT_S)
    add_output_options(parser)
    parser.set_defaults(handler=_command)
