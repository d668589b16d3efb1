"""Loss values of every implementation on named scenarios, next to the float64 oracle.

This answers "is every implementation computing the same number?" and is the basis of the value
regression check (``segbench check``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from segbench import oracle
from segbench.registry import FORMULATIONS, LOSSES, MODES, loss_fn
from segbench.scenes import Scene, make_scene


@dataclass(frozen=True)
class Scenario:
    """A named, seeded input: everything make_scene needs."""

    name: str
    batch: int
    height: int
    width: int
    classes: int
    missing: int
    seed: int = 0

    def scene(self) -> Scene:
        return make_scene(self.batch, self.height, self.width, self.classes, missing=self.missing, seed=self.seed)


SEED_SCENARIO = Scenario("seed", batch=8, height=128, width=128, classes=4, missing=2)
"""The seed post's experiment: 8 images, background + ellipse, square, disk, two missing annotations."""

REFERENCE_SCENARIOS: tuple[Scenario, ...] = (
    SEED_SCENARIO,
    Scenario("complete", batch=8, height=128, width=128, classes=4, missing=0),
    Scenario("binary_nonsquare", batch=2, height=48, width=80, classes=2, missing=1),
    Scenario("nine_classes", batch=3, height=64, width=64, classes=9, missing=3, seed=1),
    Scenario("sixteen_classes_nonsquare", batch=2, height=96, width=64, classes=16, missing=4, seed=2),
)
"""The scenarios whose float64 values are stored in results/reference_values.csv (segbench check)."""


def value_table(
    scenario: Scenario = SEED_SCENARIO,
    losses: Iterable[str] = LOSSES,
    modes: Iterable[str] = MODES,
    formulations: Iterable[str] = FORMULATIONS,
) -> pd.DataFrame:
    """One row per loss x formulation x mode: the value, the oracle's, and their difference."""
    scene = scenario.scene()
    rows = []
    for loss in losses:
        expected = float(oracle.loss_value(loss, scene.y_true, scene.y_pred))
        for formulation in formulations:
            for mode in modes:
                value = loss_fn(loss, mode, formulation=formulation)(scene.y_true, scene.y_pred)
                value = float(np.asarray(value))
                rows.append(
                    {
                        **asdict(scenario),
                        "loss": loss,
                        "formulation": formulation,
                        "mode": mode,
                        "value": value,
                        "oracle": expected,
                        "abs_diff": abs(value - expected),
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
        f"Loss values on the seed's scenario (batch {scenario.batch}, {scenario.height}x{scenario.width}, "
        f"C={scenario.classes}, {scenario.missing} missing annotations, seed {scenario.seed}), float32 inputs:\n"
    )
    print(value_pivot(value_table(scenario)).reset_index().to_markdown(index=False, floatfmt=".7g"))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("values", help="every loss's value on the seed's scenario in every mode")
    parser.set_defaults(handler=_command)
