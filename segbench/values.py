"""Loss values of every implementation on named scenarios, next to the float64 oracle.

This answers "is every implementation computing the same number?" and is the basis of the value
regression check (``segbench check``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import asdict

import numpy as np
import pandas as pd

from segbench import oracle, tables
from segbench._constants import tolerance
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
    tol = tolerance(scenario.dtype, terms=scene.y_true.size // scene.y_true.shape[-1])
    rows = []
    for loss in list(losses):
        expected = float(oracle.loss_value(loss, scene.y_true, scene.y_pred))
        for formulation in formulations:
            for mode in modes:
                if unsupported(loss, formulation, mode, gradient=False) or not_here(loss, formulation, mode):
                    continue
                try:
                    value = float(np.asarray(loss_fn(loss, mode, formulation=formulation)(scene.y_true, scene.y_pred)))
                except Exception as error:  # a loss that fails in a mode is a disagreement, named
                    value, failure = np.nan, f"{type(error).__name__}: {error}".splitlines()[0][:200]
                else:
                    failure = ""
                diff = abs(value - expected)
                rows.append(
                    {
                        **asdict(scenario),
                        "loss": loss,
                        "formulation": formulation,
                        "mode": mode,
                        "value": value,
                        "oracle": expected,
                        "abs_diff": diff,
                        "ok": bool(diff <= tol["atol"] + tol["rtol"] * abs(expected)),
                        "failure": failure,
                    }
                )
    return pd.DataFrame(rows)


def value_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Losses as rows, modes as columns, plus the oracle and the worst difference to it."""
    pivot = table.pivot_table(index=["loss", "formulation"], columns="mode", values="value", sort=False)
    pivot.columns.name = None
    grouped = table.groupby(["loss", "formulation"], sort=False)
    pivot["oracle (float64)"] = grouped["oracle"].first()
    pivot["max |diff|"] = grouped["abs_diff"].max()
    return pivot


def _command(args: argparse.Namespace) -> int:
    scenario = SEED_SCENARIO
    print(
        tables.wrap(
            f"Loss values on the seed's scenario (batch {scenario.batch}, {scenario.height}x{scenario.width}, "
            f"C={scenario.classes}, {scenario.missing} missing annotations, seed {scenario.seed}), float32 inputs:"
        )
        + "\n"
    )
    table = value_table(scenario)
    pivot = value_pivot(table).reset_index()
    if args.format == "terminal":
        pivot = pivot.rename(columns={"formulation": "form", "oracle (float64)": "oracle", "max |diff|": "max diff"})
        pivot["loss"] = pivot["loss"].map(tables.short_loss)
        # 6 digits (the differences are in max diff); "-" where a mode does not run the loss
        for column in pivot.columns[2:]:
            digits = ".2g" if column == "max diff" else ".6g"
            pivot[column] = ["-" if pd.isna(v) else format(v, digits) for v in pivot[column]]
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
    bad = table[~table["ok"]]
    for _, row in bad.iterrows():
        why = f" ({row['failure']})" if row["failure"] else ""
        print(
            f"MISMATCH: {row['loss']} ({row['formulation']}) in mode {row['mode']}: {row['value']:.9g} against the "
            f"oracle's {row['oracle']:.9g}, off by {row['abs_diff']:.3g}{why}",
            file=sys.stderr,
        )
    return 1 if len(bad) else 0


def register(commands: argparse._SubParsersAction) -> None:
    from segbench.compare import add_output_options

    parser = commands.add_parser("values", help="every loss's value on the seed's scenario in every mode")
    add_output_options(parser)
    parser.set_defaults(handler=_command)
