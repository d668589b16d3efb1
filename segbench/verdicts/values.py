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

from segbench.cli import options
from segbench.losses import oracle, tolerances
from segbench.losses.registry import (
    FORMULATIONS,
    LOSSES,
    MODES,
    installed_modes_by_backend,
    loss_fn,
    not_here,
    unsupported,
)
from segbench.losses.scenes import SEED_SCENARIO, Scenario
from segbench.presentation import tables


def value_table(
    scenario: Scenario = SEED_SCENARIO,
    losses: Iterable[str] = LOSSES,
    modes: Iterable[str] = MODES,
    formulations: Iterable[str] = FORMULATIONS,
    backend: str | None = None,
) -> pd.DataFrame:
    """One row per loss x formulation x mode: the value, the oracle's, and their difference
    (``backend``: the backend this process serves, where a user loss without a numpy reference
    computes its float64 oracle; see oracle.user_value)."""
    scene = scenario.scene()
    rows = []
    modes = list(modes)
    for loss in list(losses):
        user = LOSSES[loss].user is not None
        cells = [
            (formulation, mode)
            for formulation in formulations
            for mode in modes
            if not unsupported(loss, formulation, mode, gradient=False) and not not_here(loss, formulation, mode)
        ]
        if not cells:  # nothing of this loss runs here (in this backend's process): not even its oracle
            continue
        try:
            expected = float(oracle.loss_value(loss, scene.y_true, scene.y_pred, backend=backend))
        except Exception as error:  # the user's code failed in float64: one row naming it
            failure = f"its float64 oracle failed: {type(error).__name__}: {error}".splitlines()[0][:300]
            rows.append(
                {**asdict(scenario), "loss": loss, "formulation": "-", "mode": "-", "value": np.nan}
                | {"oracle": np.nan, "abs_diff": np.nan, "spread": 0.0, "ok": False, "failure": failure}
            )
            continue
        for formulation, mode in cells:
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
                    "ok": tolerances.within(value, expected, tol) or spread > 0,
                    "failure": failure,
                }
            )
    return pd.DataFrame(rows)


def _rows_of(group: tuple[str, ...], scenario: Scenario, modes: tuple[str, ...], backend: str) -> pd.DataFrame:
    """value_table for one group of losses in one backend's modes (what a child process computes)."""
    return value_table(scenario, losses=group, modes=modes, backend=backend)


USER_LOSS_TIME_LIMIT_S = 120.0  # a user loss's values in every mode (the examples: 5-40 s on 2 cores)


def isolated_value_table(
    scenario: Scenario = SEED_SCENARIO,
    losses: Iterable[str] = LOSSES,
    time_limit: float | None = USER_LOSS_TIME_LIMIT_S,
    modes: Iterable[str] = MODES,
) -> pd.DataFrame:
    """value_table in one child process per backend (numpy, TensorFlow, JAX, PyTorch: Keras runs on
    that backend there, as in segbench run's workers), user losses each in a child of their own; a
    loss whose process died or ran past ``time_limit`` seconds gets one row naming it and the
    backend (mode "-", failure: what happened). Backends not installed here are left out."""
    from segbench.losses import plugins

    frames = []
    groups = plugins.loss_groups(losses)
    by_backend, _ = installed_modes_by_backend(modes)
    for backend, backend_modes in by_backend.items():
        for group, result in plugins.run_isolated(
            _rows_of, groups, scenario, backend_modes, backend, time_limit=time_limit, backend=backend
        ):
            frames.append(_failure_rows(scenario, group, result) if isinstance(result, Exception) else result)
    if not frames:
        return pd.DataFrame(columns=[*asdict(scenario), *VALUE_COLUMNS])
    table = pd.concat(frames, ignore_index=True)
    # loss by loss (as asked), then formulation and mode in the registry's order, whichever process gave them
    order = {name: i for i, name in enumerate([*losses, *FORMULATIONS, *MODES, "-"])}
    keys = table[["loss", "formulation", "mode"]].map(lambda name: order.get(name, len(order)))
    return table.loc[keys.sort_values(["loss", "formulation", "mode"], kind="stable").index].reset_index(drop=True)


VALUE_COLUMNS = ("loss", "formulation", "mode", "value", "oracle", "abs_diff", "spread", "ok", "failure")


def _failure_rows(scenario: Scenario, group: tuple[str, ...], result: Exception) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {**asdict(scenario), "loss": loss, "formulation": "-", "mode": "-", "value": np.nan}
            | {"oracle": np.nan, "abs_diff": np.nan, "spread": 0.0, "ok": False, "failure": str(result)}
            for loss in group
        ]
    )


def value_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Losses as rows, modes as columns, plus the oracle and the worst difference to it."""
    pivot = table.pivot_table(index=["loss", "formulation"], columns="mode", values="value", sort=False)
    pivot.columns.name = None
    grouped = table.groupby(["loss", "formulation"], sort=False)
    pivot["oracle (float64)"] = grouped["oracle"].first()
    pivot["max |diff|"] = grouped["abs_diff"].max()
    return pivot


STEP_KINDS = {
    "eager": tuple(m for m, spec in MODES.items() if not spec.compiles),
    "traced": tuple(m for m, spec in MODES.items() if spec.graph and not spec.jit_compile),
    "jit": tuple(m for m, spec in MODES.items() if spec.jit_compile),
}
"""The terminal table's columns: each backend's op-by-op mode, TensorFlow's graph without XLA, and
each backend's compiled mode (Keras' jit_compile: XLA, jax.jit, torch.compile)."""


def terminal_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """One row per loss x formulation x backend, its modes as eager / traced / jit, then the
    oracle and the worst difference: every backend's modes within 100 columns; 6 digits (the
    differences are in max diff), "-" where a mode does not run the loss."""
    from segbench.losses.registry import BACKEND_LABELS

    table = table.assign(
        backend=[BACKEND_LABELS[MODES[m].backend] for m in table["mode"]],
        step=[next(k for k, modes in STEP_KINDS.items() if m in modes) for m in table["mode"]],
    )
    keys = ["loss", "formulation", "backend"]
    pivot = table.pivot_table(index=keys, columns="step", values="value", sort=False).reindex(columns=list(STEP_KINDS))
    grouped = table.groupby(keys, sort=False)
    pivot["oracle"] = grouped["oracle"].first()
    pivot["max diff"] = grouped["abs_diff"].max()
    pivot = pivot.reset_index().rename(columns={"formulation": "form"})
    pivot.columns.name = None
    pivot["loss"] = pivot["loss"].map(tables.short_loss)
    for column in [*STEP_KINDS, "oracle", "max diff"]:
        digits = ".2g" if column == "max diff" else ".6g"
        pivot[column] = ["-" if pd.isna(v) else format(v, digits) for v in pivot[column]]
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
    losses = args.loss.split(",") if getattr(args, "loss", None) else list(LOSSES)
    for loss in losses:
        if loss not in LOSSES:
            raise ValueError(f"--loss: unknown loss {loss!r}; expected one of: {', '.join(LOSSES)}")
    table = isolated_value_table(scenario, losses, time_limit=options.time_limit(args, USER_LOSS_TIME_LIMIT_S))
    for line in installed_modes_by_backend(MODES)[1]:
        print(f"NOTE: {line}", file=sys.stderr)
    died = table[table["mode"] == "-"]
    table = table[table["mode"] != "-"]
    if table.empty:  # every loss asked for failed: the lines below say how
        table = pd.DataFrame(columns=list(VALUE_COLUMNS))
    if args.format == "terminal":
        pivot = terminal_pivot(table) if len(table) else pd.DataFrame({"loss": []})
    else:
        pivot = value_pivot(table).reset_index() if len(table) else pd.DataFrame({"loss": []})
    if len(pivot):
        # too wide: the traced column goes first (max diff still covers it)
        print(tables.render(pivot, args.format, columns=args.columns, floatfmt=".7g", drop_first=["traced"]))
        if args.format == "terminal" and not args.columns:
            kinds = "; ".join(f"{kind}: {', '.join(modes)}" for kind, modes in STEP_KINDS.items())
            print(tables.wrap(f"(the modes in each column: {kinds})"))
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
    from segbench.losses.plugins import origin_of

    for loss in (name for name in table["loss"].unique() if not oracle.independent(name)):
        print(oracle.dependence_note(loss), file=sys.stderr)
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

    parser = commands.add_parser("values", help="every loss's value on the seed's scenario in every mode")
    parser.add_argument("--loss", help="comma-separated losses (default: all)")
    options.add_timeout_option(parser, USER_LOSS_TIME_LIMIT_S)
    options.add_output_options(parser)
    parser.set_defaults(handler=_command)
