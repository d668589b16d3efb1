"""``segbench check``: do loss values drift? Every loss x formulation x mode x pass x reduction x
dtype, recomputed on the reference scenarios, against the float64 oracle, whose own values are
pinned in ``results/reference_values.csv``.

Three things are checked, so that a failure says what changed:

1. the inputs: each scenario's SHA-256 of ``y_true`` and ``y_pred`` (the scene generator);
2. the oracle: it must reproduce the stored float64 numbers: the mean and the sum, and
   fingerprints of the per-pixel map and of the gradient for each reduction (their norm and their
   projections on fixed random directions, which change with any entry's sign or value);
3. every implementation, element by element against the oracle: the scalar (mean, sum), the
   whole per-pixel map (none) and the whole gradient, within the tolerance of its dtype
   (segbench._constants.tolerance; a mean or sum is allowed the error of its number of terms).

The scenarios (segbench.scenes.REFERENCE_SCENARIOS) include argmax ties, probabilities 0 and 1
and at the clip bounds, an image with every object absent, C from 2 to 32, and every dtype. The
table must hold exactly the rows those scenarios need: a removed, duplicated or extra row fails.

``segbench check --regenerate`` rewrites the table from the oracle. That is legitimate only when a
loss's definition, the scene generator or the scenarios change on purpose, and the commit must say
so; never to make a failing implementation pass.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segbench import oracle
from segbench._constants import REDUCTIONS, tolerance
from segbench.registry import FORMULATIONS, LOSSES, MODES, builtin_losses, loss_fn, not_here, unsupported
from segbench.scenes import REFERENCE_SCENARIOS, Scenario, Scene
from segbench.sweep import PASSES

DEFAULT_TABLE = Path("results") / "reference_values.csv"
ORACLE_RTOL = 1e-10  # float64 arithmetic in another order (another numpy build) stays far below this
FINGERPRINTS = 4  # random projections per array
TABLE_COLUMNS = ("scenario", "loss", "quantity", "value", "sha256")


def scene_digest(scene: Scene) -> str:
    digest = hashlib.sha256()
    digest.update(scene.y_true.tobytes())
    digest.update(scene.y_pred.tobytes())
    return digest.hexdigest()


def _directions(shape: tuple[int, ...]) -> np.ndarray:
    """FINGERPRINTS fixed unit directions for arrays of ``shape`` (seeded by the shape)."""
    rng = np.random.default_rng([FINGERPRINTS, *shape])
    directions = rng.standard_normal((FINGERPRINTS, int(np.prod(shape))))
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def fingerprint(array: np.ndarray) -> dict[str, float]:
    """The norm of ``array`` and its projections on fixed random unit directions."""
    flat = np.asarray(array, dtype=np.float64).ravel()
    projections = _directions(np.shape(array)) @ flat
    return {"norm": float(np.linalg.norm(flat)), **{f"p{i}": float(v) for i, v in enumerate(projections)}}


def oracle_quantities(loss: str, scene: Scene) -> dict[str, float]:
    """Every stored number of one loss on one scene: mean, sum, map and gradient fingerprints."""
    y_true, y_pred = scene.y_true, scene.y_pred
    numbers = {
        "mean": float(oracle.loss_value(loss, y_true, y_pred, "mean")),
        "sum": float(oracle.loss_value(loss, y_true, y_pred, "sum")),
    }
    numbers.update({f"none.{k}": v for k, v in fingerprint(oracle.loss_value(loss, y_true, y_pred, "none")).items()})
    for reduction in REDUCTIONS:
        grad = oracle.gradient(loss, y_true, y_pred, reduction)
        numbers.update({f"grad_{reduction}.{k}": v for k, v in fingerprint(grad).items()})
    return numbers


def reference_table(scenarios: Iterable[Scenario] = REFERENCE_SCENARIOS) -> pd.DataFrame:
    """The float64 oracle's numbers for every scenario and loss, and each scenario's input digest."""
    rows = []
    for scenario in scenarios:
        scene = scenario.scene()
        rows.append({"scenario": scenario.name, "loss": "-", "quantity": "inputs", "sha256": scene_digest(scene)})
        for loss in builtin_losses():
            for quantity, value in oracle_quantities(loss, scene).items():
                rows.append({"scenario": scenario.name, "loss": loss, "quantity": quantity, "value": value})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def expected_keys(scenarios: Iterable[Scenario] = REFERENCE_SCENARIOS) -> set[tuple[str, str, str]]:
    """The (scenario, loss, quantity) rows a complete table has, without computing any of them."""
    per_loss = ["mean", "sum", *(f"none.{k}" for k in ("norm", *(f"p{i}" for i in range(FINGERPRINTS))))]
    per_loss += [f"grad_{r}.{k}" for r in REDUCTIONS for k in ("norm", *(f"p{i}" for i in range(FINGERPRINTS)))]
    keys = set()
    for scenario in scenarios:
        keys.add((scenario.name, "-", "inputs"))
        keys.update((scenario.name, loss, q) for loss in builtin_losses() for q in per_loss)
    return keys


def read_table(path: str | Path) -> pd.DataFrame:
    """The reference table at ``path``, checked to be whole; a ValueError names what is wrong."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--table {path} does not exist: run from the repository root, or --regenerate")
    try:
        table = pd.read_csv(path, dtype={"scenario": str, "loss": str, "quantity": str, "sha256": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"--table {path} is not a readable CSV: {error}") from None
    validate_table(table, str(path))
    return table


def validate_table(table: pd.DataFrame, origin: str = "the reference table") -> None:
    """A complete table has exactly the rows of expected_keys(): no fewer, no more, none twice."""
    missing_columns = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing_columns:
        raise ValueError(f"{origin} lacks the columns {', '.join(missing_columns)}: run segbench check --regenerate")
    if table.empty:
        raise ValueError(f"{origin} has no rows (only a header): nothing could be checked")
    keys = list(zip(table["scenario"], table["loss"], table["quantity"], strict=True))
    duplicated = sorted(k for k, n in Counter(keys).items() if n > 1)
    if duplicated:
        raise ValueError(f"{origin} has {len(duplicated)} duplicated row(s), e.g. {' / '.join(duplicated[0])}")
    expected = expected_keys()
    missing = sorted(expected - set(keys))
    extra = sorted(set(keys) - expected)
    if missing:
        raise ValueError(
            f"{origin} lacks {len(missing)} of its {len(expected)} rows, e.g. {' / '.join(missing[0])}: "
            "a check with rows removed is not a check"
        )
    if extra:
        raise ValueError(f"{origin} has {len(extra)} row(s) no scenario produces, e.g. {' / '.join(extra[0])}")
    values = pd.to_numeric(table.loc[table["quantity"] != "inputs", "value"], errors="coerce")
    if values.isna().any() or not np.isfinite(values).all():
        raise ValueError(f"{origin} has values that are not finite numbers")


def _score(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> float:
    """How many tolerances away the worst element is (<= 1 is within)."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != np.shape(expected):
        return np.inf
    if not np.all(np.isfinite(got)):
        return np.inf
    allowed = atol + rtol * np.abs(expected)
    return float(np.max(np.abs(got - expected) / allowed)) if got.size else 0.0


def _row(scenario, loss, formulation, mode, pass_, dtype, what, score) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "loss": loss,
        "formulation": formulation,
        "mode": mode,
        "pass": pass_,
        "dtype": dtype,
        "quantity": what,
        "x tolerance": score,
        "ok": bool(score <= 1.0),
    }


def run_check(
    table: pd.DataFrame,
    modes: Iterable[str] = MODES,
    formulations: Iterable[str] = FORMULATIONS,
    scenarios: Iterable[str] | None = None,
    losses: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One row per check (inputs, oracle numbers, each implementation) with its score and verdict."""
    validate_table(table)
    by_name = {s.name: s for s in REFERENCE_SCENARIOS}
    names = list(scenarios) if scenarios is not None else list(by_name)
    losses = list(losses) if losses is not None else list(LOSSES)
    indexed = table.set_index(["scenario", "loss", "quantity"])
    rows = []
    for name in names:
        if name not in by_name:
            raise ValueError(f"--scenario: unknown scenario {name!r}; expected one of: {', '.join(by_name)}")
        scenario = by_name[name]
        scene = scenario.scene()
        same = scene_digest(scene) == indexed.loc[(name, "-", "inputs"), "sha256"]
        rows.append(_row(name, "-", "-", "generator", "-", scenario.dtype, "inputs sha256", 0.0 if same else np.inf))
        for loss in losses:
            user = LOSSES[loss].user
            if user is None:
                rows.extend(_check_oracle(name, loss, scene, scenario.dtype, indexed))
            else:  # a registered loss has no stored values: its own float64 oracle, checked against itself
                rows.extend(_check_user_oracle(name, loss, user, scene, scenario.dtype))
            references = _oracle_arrays(loss, scene)
            for formulation in formulations:
                for mode in modes:
                    if scenario.dtype not in MODES[mode].dtypes:
                        continue
                    for pass_ in PASSES:
                        if unsupported(loss, formulation, mode, pass_ == "forward+backward") or not_here(
                            loss, formulation, mode
                        ):
                            continue
                        rows.extend(_check_implementation(name, scene, loss, formulation, mode, pass_, references))
    return pd.DataFrame(rows)


def _check_oracle(name: str, loss: str, scene: Scene, dtype: str, indexed: pd.DataFrame) -> list[dict]:
    rows = []
    for quantity, got in oracle_quantities(loss, scene).items():
        stored = float(indexed.loc[(name, loss, quantity), "value"])
        norm_key = quantity.split(".")[0] + ".norm" if "." in quantity else quantity
        scale = abs(float(indexed.loc[(name, loss, norm_key), "value"]))  # projections can be near 0
        score = abs(got - stored) / (ORACLE_RTOL * max(scale, abs(stored)) + 1e-300)
        rows.append(_row(name, loss, "-", "oracle", "-", dtype, quantity, score))
    return rows


def _check_user_oracle(name: str, loss: str, user: Any, scene: Scene, dtype: str) -> list[dict]:
    """A registered loss with a numpy reference and a TensorFlow function: both, in float64, agree."""
    if user.numpy is None:
        return []
    rows = []
    for reduction in REDUCTIONS:
        by_numpy = oracle.user_value(user, scene.y_true, scene.y_pred, reduction, via="numpy")
        by_tensorflow = oracle.user_value(user, scene.y_true, scene.y_pred, reduction, via="tensorflow")
        score = _score(by_tensorflow, by_numpy, **tolerance("float64", terms=np.size(scene.y_true)))
        rows.append(_row(name, loss, "-", "numpy vs tensorflow", "-", dtype, f"float64 {reduction}", score))
    return rows


def _oracle_arrays(loss: str, scene: Scene) -> dict[str, np.ndarray]:
    arrays = {r: oracle.loss_value(loss, scene.y_true, scene.y_pred, r) for r in REDUCTIONS}
    arrays.update({f"grad_{r}": oracle.gradient(loss, scene.y_true, scene.y_pred, r) for r in REDUCTIONS})
    return arrays


def _check_implementation(name, scene, loss, formulation, mode, pass_, references) -> list[dict]:
    dtype = scene.y_pred.dtype.name
    gradient = pass_ == "forward+backward"
    rows = []
    for reduction in REDUCTIONS:
        fn = loss_fn(loss, mode, formulation=formulation, gradient=gradient, reduction=reduction)
        label = f"{reduction}"
        try:
            result = fn(scene.y_true, scene.y_pred)
        except Exception as error:  # an implementation that crashes is a mismatch, reported as such
            rows.append(_row(name, loss, formulation, mode, pass_, dtype, f"{label}: {error}"[:200], np.inf))
            continue
        value = np.asarray(result[0] if gradient else result, dtype=np.float64)
        tol = tolerance(dtype, terms=_terms(loss, scene, reduction, value))
        rows.append(
            _row(name, loss, formulation, mode, pass_, dtype, label, _score(value, references[reduction], **tol))
        )
        if gradient:
            expected = references[f"grad_{reduction}"]
            tol = tolerance(dtype)
            scale = max(float(np.abs(expected).max()), np.finfo(np.float64).tiny)
            score = _score(np.asarray(result[1], dtype=np.float64), expected, tol["rtol"], tol["atol"] * scale)
            rows.append(_row(name, loss, formulation, mode, pass_, dtype, f"grad_{reduction}", score))
    return rows


def _terms(loss: str, scene: Scene, reduction: str, value: np.ndarray) -> int:
    """How many input terms each compared number sums: segbench's losses sum C per pixel and then
    the pixels; a registered loss may sum anything (per image, say), so all of an input's entries."""
    entries = scene.y_true.size
    if reduction == "none":
        return max(1, entries // max(1, value.size)) if LOSSES[loss].user is not None else 1
    return entries if LOSSES[loss].user is not None else entries // scene.y_true.shape[-1]


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
    table = read_table(path)
    modes = args.mode.split(",") if args.mode else list(MODES)
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"--mode: unknown mode {mode!r}; expected one of: {', '.join(MODES)}")
    scenarios = args.scenario.split(",") if args.scenario else None
    losses = args.loss.split(",") if args.loss else None
    for loss in losses or ():
        if loss not in LOSSES:
            raise ValueError(f"--loss: unknown loss {loss!r}; expected one of: {', '.join(LOSSES)}")
    report = run_check(table, modes=modes, scenarios=scenarios, losses=losses)
    print("The worst check of each loss, formulation, mode and pass (x tol: its difference in tolerances):")
    print(_render(worst(report).head(args.top), args))
    bad = report[~report["ok"]]
    print(
        f"\n{len(report)} checks on {report['scenario'].nunique()} scenarios: "
        f"{len(bad)} mismatch{'es' if len(bad) != 1 else ''} (tolerances per dtype in segbench/_constants.py)"
    )
    if len(bad):
        print(_render(bad.head(50), args), file=sys.stderr)
    return 1 if len(bad) else 0


def _render(report: pd.DataFrame, args: argparse.Namespace) -> str:
    """Check rows in the style of every segbench table; in a terminal, short names within 100 columns."""
    from segbench import tables

    if args.format == "terminal":
        report = pd.DataFrame(
            {
                "scenario": report["scenario"],
                "loss": report["loss"].map(tables.short_loss),
                "form": report["formulation"],
                "mode": report["mode"],
                "pass": report["pass"].replace(tables.SHORT_PASS),
                "dtype": report["dtype"],
                "quantity": report["quantity"].str.slice(0, 40),
                "x tol": report["x tolerance"],
            }
        )
    return tables.render(report, args.format, columns=args.columns, drop_first=["scenario", "dtype"])


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check",
        help="recompute every loss x formulation x mode x pass x reduction x dtype against the float64 oracle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--table", default=str(DEFAULT_TABLE), help=f"reference table (default {DEFAULT_TABLE})")
    parser.add_argument("--mode", help="comma-separated modes to check (default: all)")
    parser.add_argument("--scenario", help="comma-separated scenarios to check (default: all)")
    parser.add_argument("--loss", help="comma-separated losses to check (default: all)")
    parser.add_argument("--top", type=int, default=12, help="rows of the worst-differences table to print")
    parser.add_argument("--regenerate", action="store_true", help="rewrite the table from the oracle (see above)")
    from segbench.compare import add_output_options

    add_output_options(parser)
    parser.set_defaults(handler=_command)
