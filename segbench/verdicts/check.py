"""``segbench check``: do loss values drift? Every loss x formulation x mode x pass x reduction x
dtype, recomputed on the reference scenarios, against the float64 oracle, whose own values are
pinned in ``results/reference_values.csv``.

Three things are checked, so that a failure says what changed:

1. the inputs: each scenario's SHA-256 of ``y_true`` and ``y_pred`` (the scene generator);
2. the oracle: it must reproduce the stored float64 numbers: the mean and the sum, and
   fingerprints of the per-pixel map and of the gradient for each reduction (their norm and their
   projections on fixed random directions, which change with any entry's sign or value);
3. every implementation, element by element against the oracle: the scalar (mean, sum), the
   whole per-pixel map (none) and the whole gradient, within the tolerance of its dtype, mode and
   number of summed terms (segbench/losses/tolerances.py derives every one).

Besides the stored scenarios, two are checked against the oracle computed live (its numbers are
pinned by the stored ones): ``ragged`` (2 images of 131x127 pixels, a prime-ish count that no
block size divides, so a blocked formulation has a partial last block) in every mode, and
``bandwidth`` (batch 16, 512x512, C=4, the size the benchmark times) for the graph modes'
fused and blocked formulations and the standard losses, forward+backward with reduction mean
(``--no-bandwidth`` skips it; it adds about a minute).

A user's loss is evaluated three times: a non-deterministic result is reported as such (its spread),
not as a mismatch. Without a numpy reference and gradient its oracle is its own TensorFlow code
in float64, which checks precision, not logic: the output says so.

The scenarios (segbench.losses.scenes.REFERENCE_SCENARIOS) include argmax ties, probabilities 0 and 1
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

from segbench._constants import EPSILON, REDUCTIONS
from segbench.cli import options
from segbench.losses import clipping, oracle, tolerances
from segbench.losses.registry import (
    BACKEND_LABELS,
    FORMULATIONS,
    LOSSES,
    MODES,
    builtin_losses,
    installed_modes_by_backend,
    loss_fn,
    not_here,
    unsupported,
    uses_keras,
)
from segbench.losses.scenes import REFERENCE_SCENARIOS, Scenario, Scene
from segbench.measurement.sweep import PASSES

DEFAULT_TABLE = Path("results") / "reference_values.csv"
ORACLE_RTOL = 1e-10  # float64 arithmetic in another order (another numpy build) stays far below this
FINGERPRINTS = 4  # random projections per array
TABLE_COLUMNS = ("scenario", "loss", "quantity", "value", "sha256")
RAGGED = Scenario("ragged", batch=2, height=131, width=127, classes=4, missing=1, seed=4)
BANDWIDTH = Scenario("bandwidth", batch=16, height=512, width=512, classes=4, missing=2)
LIVE_SCENARIOS = (RAGGED, BANDWIDTH)
"""Scenarios checked against the oracle computed live (not stored): see the module docstring."""
BANDWIDTH_CELLS = {"modes": ("function", "xla"), "formulations": ("fused", "blocked"), "reductions": ("mean",)}


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
        "ok": bool(score <= 1.0) or bool(np.isnan(score)),  # nan: non-deterministic, reported apart
    }


NONDETERMINISM_ULPS = 100_000  # calls further apart than this, relative to the value, are non-deterministic


def run_check(
    table: pd.DataFrame,
    modes: Iterable[str] = MODES,
    formulations: Iterable[str] = FORMULATIONS,
    scenarios: Iterable[str] | None = None,
    losses: Iterable[str] | None = None,
    bandwidth: bool = True,
    progress: bool = False,
    backend: str | None = None,
    oracle_rows: bool = True,
) -> pd.DataFrame:
    """One row per check (inputs, oracle numbers, each implementation) with its score and verdict;
    ``progress``: a progress line on stderr (scenario x loss items, weighted by the scenario's size).
    ``backend``: the backend this process serves (where a user loss without a numpy reference runs
    its float64 oracle); ``oracle_rows``: check the inputs and the oracles too (once per run: the
    first backend's process does)."""
    from segbench.presentation.progress import Expected, Progress

    validate_table(table)
    by_name = {s.name: s for s in (*REFERENCE_SCENARIOS, *LIVE_SCENARIOS)}
    if scenarios is not None:
        names = list(scenarios)
    else:
        names = [s.name for s in (*REFERENCE_SCENARIOS, *LIVE_SCENARIOS) if bandwidth or s is not BANDWIDTH]
    losses = list(losses) if losses is not None else list(LOSSES)
    modes, formulations = list(modes), list(formulations)
    indexed = table.set_index(["scenario", "loss", "quantity"])
    for name in names:
        if name not in by_name:
            raise ValueError(f"--scenario: unknown scenario {name!r}; expected one of: {', '.join(by_name)}")
    items = [
        Expected(
            name, elements=by_name[name].batch * by_name[name].height * by_name[name].width * by_name[name].classes
        )
        for name in names
        for _ in losses
    ]
    bar = Progress(len(items), "scenario-loss pair", enabled=progress, expected=items)
    try:
        rows = _check_scenarios(names, by_name, losses, modes, formulations, indexed, bar, backend, oracle_rows)
    finally:
        bar.close()
    return pd.DataFrame(rows)


def _check_scenarios(names, by_name, losses, modes, formulations, indexed, bar, backend, oracle_rows) -> list[dict]:
    rows = []
    rules: dict[tuple[str, str, str, str], clipping.ClipRule] = {}  # measured once per run_check
    for name in names:
        scenario = by_name[name]
        scene = scenario.scene()
        live = scenario in LIVE_SCENARIOS
        if not live and oracle_rows:
            same = scene_digest(scene) == indexed.loc[(name, "-", "inputs"), "sha256"]
            rows.append(
                _row(name, "-", "-", "generator", "-", scenario.dtype, "inputs sha256", 0.0 if same else np.inf)
            )
        big = scenario is BANDWIDTH
        for loss in losses:
            user = LOSSES[loss].user
            if user is None and not live and oracle_rows:
                rows.extend(_check_oracle(name, loss, scene, scenario.dtype, indexed))
            elif user is not None and not big and backend in (None, "tensorflow"):
                # no stored values: its own float64 oracle, checked against itself (numpy vs TensorFlow)
                rows.extend(_check_user_oracle(name, loss, user, scene, scenario.dtype))
            reductions = BANDWIDTH_CELLS["reductions"] if big else REDUCTIONS
            by_rule = {clipping.ORACLE_CLIP: _OracleArrays(loss, scene, reductions, backend)}
            for formulation in formulations:
                if big and user is None and formulation not in BANDWIDTH_CELLS["formulations"]:
                    continue
                for mode in modes:
                    if scenario.dtype not in MODES[mode].dtypes or (big and mode not in BANDWIDTH_CELLS["modes"]):
                        continue
                    for pass_ in PASSES:
                        if unsupported(loss, formulation, mode, pass_ == "forward+backward") or not_here(
                            loss, formulation, mode
                        ):
                            continue
                        if big and pass_ != "forward+backward":
                            continue
                        key = (loss, formulation, mode, scenario.dtype)
                        if key not in rules:
                            rules[key] = measured_clip_rule(*key)
                        rule = rules[key]
                        if rule not in by_rule:
                            by_rule[rule] = _OracleArrays(loss, scene, reductions, backend, rule)
                        if rule is not clipping.ORACLE_CLIP and pass_ == PASSES[0]:  # a note per mode, not a check
                            note = f"{CLIP_RULE_NOTE}{rule.describe()}"
                            rows.append(_row(name, loss, formulation, mode, "-", scenario.dtype, note, 0.0))
                        rows.extend(
                            _check_implementation(
                                name, scene, loss, formulation, mode, pass_, by_rule[rule], reductions=reductions
                            )
                        )
            bar.update(f"{BACKEND_LABELS[backend]}, {name}: {loss}" if backend else f"{name}: {loss}")
    return rows


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
    f64 = "float64"
    for reduction in REDUCTIONS:
        by_numpy = oracle.user_value(user, scene.y_true, scene.y_pred, reduction, via="numpy")
        by_tensorflow = oracle.user_value(user, scene.y_true, scene.y_pred, reduction, via="tensorflow")
        terms = _terms(loss, scene, reduction, np.asarray(by_numpy))
        if reduction == "none":
            rtol = tolerances.map_rtol(f64, terms, loss=loss)
            score = tolerances.map_score(np.asarray(by_tensorflow), np.asarray(by_numpy), rtol)
        else:
            tol = tolerances.value_tolerance(f64, terms, loss=loss, scale=_count(loss, scene, reduction))
            score = _score(by_tensorflow, by_numpy, **tol)
        rows.append(_row(name, loss, "-", "numpy vs tensorflow", "-", dtype, f"float64 {reduction}", score))
        if user.numpy_gradient is not None:
            by_numpy = oracle.user_gradient(user, scene.y_true, scene.y_pred, reduction, via="numpy")
            by_tensorflow = oracle.user_gradient(user, scene.y_true, scene.y_pred, reduction, via="tensorflow")
            rtol = tolerances.gradient_rtol(f64, _gradient_terms(loss, scene), loss=loss)
            score = tolerances.gradient_score(by_tensorflow, by_numpy, rtol)
            rows.append(_row(name, loss, "-", "numpy vs tensorflow", "-", dtype, f"float64 grad_{reduction}", score))
    return rows


class _OracleArrays:
    """The oracle's values and gradients of one loss on one scene, computed when first asked for
    (``rule``: the clip rule the cross-entropies' oracles follow, see clipping.ClipRule)."""

    def __init__(
        self,
        loss: str,
        scene: Scene,
        reductions: Iterable[str] = REDUCTIONS,
        backend: str | None = None,
        rule: clipping.ClipRule = clipping.ORACLE_CLIP,
    ):
        self.loss, self.scene, self.backend, self.rule, self._cache = loss, scene, backend, rule, {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            y_true, y_pred = self.scene.y_true, self.scene.y_pred
            with clipping.clip_rule(self.rule):
                if key.startswith("grad_"):
                    reduction = key[len("grad_") :]
                    self._cache[key] = oracle.gradient(self.loss, y_true, y_pred, reduction, backend=self.backend)
                else:
                    self._cache[key] = oracle.loss_value(self.loss, y_true, y_pred, key, backend=self.backend)
        return self._cache[key]


CLIP_RULE_NOTE = "CLIP RULE: "
"""The quantity of a row that records a measured clip rule (a note, not a check)."""


def measured_clip_rule(loss: str, formulation: str, mode: str, dtype: str) -> clipping.ClipRule:
    """The clip rule (clipping.ClipRule) of a Keras-written cross-entropy in ``mode`` on ``dtype``,
    measured: the loss is run on one-pixel probes whose probability sits on, beside and beyond
    either bound, and the first of the rules its backend may follow (clipping.clip_rules: the
    oracle's, then the backend's known departures) whose oracle reproduces its values and gradients
    to 16 units of roundoff is its rule. Only what happens at the bounds differs between the rules,
    so the rest of the check holds every implementation to the same oracle; a loss that no rule
    explains (no gradient at a bound, float32 bounds on TensorFlow, a gradient wrong elsewhere)
    keeps the oracle's rule and fails the check."""
    backend = MODES[mode].backend
    if loss not in clipping.CLIP_RULE_LOSSES or not uses_keras(loss, formulation, backend):
        return clipping.ORACLE_CLIP
    from segbench.losses.scenes import _numpy_dtype

    np_dtype = _numpy_dtype(dtype)
    bounds = (EPSILON, 1.0 - EPSILON, *clipping.FLOAT32_BOUNDS)
    first = np.array([0.0, 0.25, 1.0, *bounds, *(b * (1 + f) for b in bounds for f in (-1e-9, 1e-9))])
    y_pred = np.stack([first, 1.0 - first], axis=-1).astype(np_dtype)[None, None]  # (1, 1, P, 2)
    y_true = np.zeros_like(y_pred)
    y_true[..., 0] = 1
    try:
        fn = loss_fn(loss, mode, formulation=formulation, gradient=True, reduction="none")
        value, grad = (np.asarray(part, dtype=np.float64) for part in fn(y_true, y_pred))
    except Exception:  # the check itself reports the failure
        return clipping.ORACLE_CLIP
    rtol = 16 * tolerances.unit_roundoff(dtype)
    y64, p64 = y_true.astype(np.float64), y_pred.astype(np.float64)
    spec = LOSSES[loss].user
    for rule in clipping.clip_rules(dtype, backend):
        with clipping.clip_rule(rule):
            expected_value = np.asarray(spec.numpy(y64, p64), dtype=np.float64)
            expected_grad = np.asarray(spec.numpy_gradient(y64, p64), dtype=np.float64)
        # a gradient entry is held to its pixel's largest: 1 - q cancels at the upper bound in float32
        pixel = np.max(np.abs(np.nan_to_num(expected_grad)), axis=-1, keepdims=True)
        if np.allclose(value, expected_value, rtol=rtol, atol=0.0) and np.all(
            np.isclose(grad, expected_grad, rtol=rtol, atol=0.0) | (np.abs(grad - expected_grad) <= rtol * pixel)
        ):
            return clipping.ORACLE_CLIP if rule.oracles else rule
    return clipping.ORACLE_CLIP


def _check_implementation(
    name, scene, loss, formulation, mode, pass_, references, reductions: Iterable[str] = REDUCTIONS
) -> list[dict]:
    dtype = scene.y_pred.dtype.name
    gradient = pass_ == "forward+backward"
    rows = []
    for reduction in reductions:
        fn = loss_fn(loss, mode, formulation=formulation, gradient=gradient, reduction=reduction)
        label = f"{reduction}"
        try:
            result = fn(scene.y_true, scene.y_pred)
        except Exception as error:  # an implementation that crashes is a mismatch, reported as such
            message = f"{type(error).__name__}: {error}".splitlines()[0][:300]  # the same for every reduction
            text = f"{label}: {_origin(loss)}: {message}"
            rows.append(_row(name, loss, formulation, mode, pass_, dtype, text, np.inf))
            continue
        if LOSSES[loss].user is not None:  # thrice: a non-deterministic loss is named as such, not as a mismatch
            # (two random draws land within the threshold of each other ~1 % of the time; three, ~0.01 %)
            spread = max(_spread(result, fn(scene.y_true, scene.y_pred), gradient) for _ in range(2))
            magnitude = float(np.max(np.abs(np.asarray(result[0] if gradient else result, dtype=np.float64))))
            # multi-threaded reductions may differ in their last bits from call to call: not a bug
            if spread > NONDETERMINISM_ULPS * tolerances.unit_roundoff(dtype) * max(magnitude, 1e-7):
                what = f"{reduction}: NON-DETERMINISTIC, three calls differ by up to {spread:.3g}"
                rows.append(_row(name, loss, formulation, mode, pass_, dtype, what, np.nan))
                continue
        if gradient and result[1] is None:
            what = f"grad_{reduction}: None (its value does not depend on y_pred; {_origin(loss)})"
            rows.append(_row(name, loss, formulation, mode, pass_, dtype, what, np.inf))
            continue
        value = np.asarray(result[0] if gradient else result, dtype=np.float64)
        terms = _terms(loss, scene, reduction, value)
        if reduction == "none":  # a map: element by element (segbench.losses.tolerances.map_score)
            rtol = tolerances.map_rtol(dtype, terms, mode, loss, formulation)
            score = tolerances.map_score(value, references[reduction], rtol)
        else:
            clipped = _clipped_fraction(loss, references)
            tol = tolerances.value_tolerance(
                dtype,
                terms,
                mode,
                loss,
                scale=_count(loss, scene, reduction, MODES[mode].backend),
                clipped=clipped,
                formulation=formulation,
                running=_running_sum(fn, scene, terms),
            )
            score = _score(value, references[reduction], **tol)
        rows.append(_row(name, loss, formulation, mode, pass_, dtype, label, score))
        if gradient:
            rtol = tolerances.gradient_rtol(
                dtype, _gradient_terms(loss, scene, MODES[mode].backend), mode, loss, formulation
            )
            got = np.asarray(result[1], dtype=np.float64)
            score = tolerances.gradient_score(got, references[f"grad_{reduction}"], rtol)
            rows.append(_row(name, loss, formulation, mode, pass_, dtype, f"grad_{reduction}", score))
    return rows


def _origin(loss: str) -> str:
    from segbench.losses.plugins import origin_of

    return f"loss {loss} ({origin_of(loss)})"


def _spread(first: Any, second: Any, gradient: bool) -> float:
    """The largest difference between two results of the same call (0 for a deterministic loss)."""
    pairs = zip(first, second, strict=True) if gradient else [(first, second)]
    spread = 0.0
    for a, b in pairs:
        if a is None or b is None:
            continue
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        both = np.isfinite(a) & np.isfinite(b)
        spread = max(spread, float(np.max(np.abs(a - b), where=both, initial=0.0)))
    return spread


def _terms(loss: str, scene: Scene, reduction: str, value: np.ndarray) -> int:
    """How many input terms each compared number sums: segbench's losses sum C per pixel and then
    the pixels; a registered loss sums each output entry's share of the input's entries (a
    per-image loss: H*W*C each; a mean over its output: all of them)."""
    entries, classes = scene.y_true.size, scene.y_true.shape[-1]
    if reduction == "none":
        return max(1, entries // max(1, value.size)) if LOSSES[loss].user is not None else classes
    return entries if LOSSES[loss].user is not None else entries // classes


RUNNING_SUM_FROM = 2**16
"""From this many summed terms on (the bandwidth scenario), an XLA cell's sum is held to the
longest running sum its compiled HLO adds (segbench.losses.xla_sums), not to one sum of every
term: up to 14652 times looser than its error otherwise (docs/tolerances.md). Below it the two
differ little, and reading the HLO would compile every small cell a second time."""


def _running_sum(fn: Any, scene: Scene, terms: int) -> int | None:
    if terms < RUNNING_SUM_FROM:
        return None
    from segbench.losses.xla_sums import compiled_running_sum

    return compiled_running_sum(fn, scene.y_true, scene.y_pred)


def _clipped_fraction(loss: str, references) -> float:
    """The fraction of segbench's per-pixel terms clipped at 1 - EPSILON (see tolerances.clip_error)."""
    if LOSSES[loss].user is not None:
        return 0.0
    from segbench._constants import EPSILON

    per_pixel = references["none"]
    return float(np.mean(np.isclose(per_pixel, -np.log1p(-EPSILON), rtol=1e-9, atol=0)))


def _count(loss: str, scene: Scene, reduction: str, backend: str | None = None) -> int:
    """How many per-pixel or per-image values a sum adds (1 for a mean): scales its absolute floor
    (``backend``: where a registered loss's float64 output is computed, see oracle.user_value)."""
    if reduction != "sum":
        return 1
    if LOSSES[loss].user is None:
        return scene.y_true.size // scene.y_true.shape[-1]
    out = oracle.user_value(LOSSES[loss].user, scene.y_true[:1], scene.y_pred[:1], "none", backend=backend)
    return max(1, np.size(out)) * scene.y_true.shape[0]


def _gradient_terms(loss: str, scene: Scene, backend: str | None = None) -> int:
    """How many input values feed each gradient entry: C for segbench's per-pixel losses; for a
    registered loss, the entries behind one of its outputs (H*W*C for a per-image loss)."""
    if LOSSES[loss].user is None:
        return scene.y_true.shape[-1]
    out = oracle.user_value(LOSSES[loss].user, scene.y_true[:1], scene.y_pred[:1], "none", backend=backend)
    return max(1, scene.y_true[:1].size // max(1, np.size(out)))


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

    for line in installed_modes_by_backend(modes)[1]:
        print(f"NOTE: {line}", file=sys.stderr)
    report = isolated_check(
        table,
        modes,
        scenarios,
        losses or list(LOSSES),
        bandwidth=not args.no_bandwidth,
        time_limit=options.time_limit(args, USER_LOSS_TIME_LIMIT_S),
        progress=not args.quiet,
    )
    from segbench.losses.plugins import origin_of

    for loss in (name for name in report["loss"].unique() if name in LOSSES and not oracle.independent(name)):
        print(oracle.dependence_note(loss))
    unstable = report[report["quantity"].str.contains("NON-DETERMINISTIC", regex=False)]
    for _, row in unstable.drop_duplicates(["loss", "mode"]).iterrows():
        print(
            f"NON-DETERMINISTIC: {row['loss']} ({origin_of(row['loss'])}) in mode {row['mode']}: "
            f"{row['quantity'].split(', ', 1)[-1]}; not compared with the oracle",
            file=sys.stderr,
        )
    report = report.drop(unstable.index)
    ruled = report[report["quantity"].str.startswith(CLIP_RULE_NOTE)]
    for (loss, formulation, rule), rows in ruled.groupby(["loss", "formulation", "quantity"], sort=False):
        modes = rows.groupby("mode", sort=False)["dtype"]
        where = ", ".join(f"{mode} {'/'.join(dict.fromkeys(dtypes))}" for mode, dtypes in modes)
        print(
            f"NOTE: {loss} ({formulation}) on {where}: its clip has {rule[len(CLIP_RULE_NOTE) :]} (the "
            f"oracle's, tf.clip_by_value's: {clipping.ORACLE_CLIP.describe()}); measured on probes, and the "
            "loss is held to the oracle under its rule (segbench/losses/clipping.py)",
            file=sys.stderr,
        )
    report = report.drop(ruled.index)
    failed = report[np.isinf(report["x tolerance"]) & (report["quantity"] != "inputs sha256")]
    # one line per loss, formulation, mode and error: a loss that fails on one backend fails the same
    # way for every reduction and pass, and one line naming the backend and the error says it all
    error = failed["quantity"].where(failed["mode"] == "-", failed["quantity"].str.split(": ", n=1).str[-1])
    for (loss, formulation, mode, message), rows in failed.groupby(
        [failed["loss"], failed["formulation"], failed["mode"], error], sort=False
    ):
        where = "" if mode == "-" else f" ({formulation}, {mode}; {len(rows)} check{'s' * (len(rows) != 1)})"
        print(f"FAILED: {loss}{where}: {message}", file=sys.stderr)
    print("The worst check of each loss, formulation, mode and pass (x tol: its difference in tolerances):")
    print(_render(worst(report).head(args.top), args))
    bad = report[~report["ok"]]
    print(
        f"\n{len(report)} checks on {report['scenario'].nunique()} scenarios: "
        f"{len(bad)} mismatch{'es' if len(bad) != 1 else ''} (tolerances derived in segbench/losses/tolerances.py)"
    )
    if len(bad):
        print(_render(bad.head(50), args), file=sys.stderr)
    return 1 if len(bad) or len(unstable) else 0


def _check_group(
    group: tuple[str, ...], table, modes, scenarios, bandwidth: bool, progress: bool, backend: str, oracle_rows: bool
) -> pd.DataFrame:
    """run_check for one group of losses in one backend's modes (what a child process computes;
    its stderr is ours)."""
    return run_check(
        table,
        modes=modes,
        scenarios=scenarios,
        losses=list(group),
        bandwidth=bandwidth,
        progress=progress,
        backend=backend,
        oracle_rows=oracle_rows,
    )


USER_LOSS_TIME_LIMIT_S = 900.0  # a user loss on every scenario, the bandwidth-sized one included


def isolated_check(
    table,
    modes,
    scenarios,
    losses,
    bandwidth: bool = True,
    time_limit: float | None = USER_LOSS_TIME_LIMIT_S,
    progress: bool = False,
) -> pd.DataFrame:
    """run_check in one child process per backend of ``modes`` (numpy, TensorFlow, JAX, PyTorch:
    Keras runs on that backend there, as in segbench run's workers; backends not installed here are
    left out), user losses each in a child of their own: a loss whose code kills its process gets
    one failing row naming it, its plugin and the backend, and the others are checked."""
    from segbench.losses import plugins

    frames, seen_inputs = [], False
    by_backend, _ = installed_modes_by_backend(modes)
    for number, (backend, backend_modes) in enumerate(by_backend.items()):
        for group, result in plugins.run_isolated(
            _check_group,
            plugins.loss_groups(losses),
            table,
            backend_modes,
            scenarios,
            bandwidth,
            progress,
            backend,
            number == 0,
            time_limit=time_limit,
            backend=backend,
        ):
            if isinstance(result, Exception):
                frames.append(
                    pd.DataFrame([_row("-", loss, "-", "-", "-", "-", str(result)[:200], np.inf) for loss in group])
                )
                continue
            if result.empty:  # no cell of this group runs on this backend
                continue
            if seen_inputs:  # each group re-checks the scenarios' inputs: keep one copy
                result = result[result["loss"] != "-"]
            seen_inputs = seen_inputs or bool((result["loss"] == "-").any())
            frames.append(result)
    if not frames:
        return pd.DataFrame(
            [_row("-", "-", "-", "-", "-", "-", "no backend of the modes asked for is installed", np.inf)]
        )
    return pd.concat(frames, ignore_index=True)


def _render(report: pd.DataFrame, args: argparse.Namespace) -> str:
    """Check rows in the style of every segbench table; in a terminal, short names within 100 columns."""
    from segbench.presentation import tables

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
    options.add_timeout_option(parser, USER_LOSS_TIME_LIMIT_S)
    parser.add_argument(
        "--no-bandwidth", action="store_true", help="skip the batch 16, 512x512 scenario (about a minute)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--top", type=int, default=12, help="rows of the worst-differences table to print")
    parser.add_argument("--regenerate", action="store_true", help="rewrite the table from the oracle (see above)")
    options.add_output_options(parser)
    parser.set_defaults(handler=_command)
