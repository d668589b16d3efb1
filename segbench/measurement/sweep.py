"""The one definition of what is benchmarked: cases, sweeps and named profiles.

``segbench run``, the asv benchmarks and the pytest-benchmark benchmarks all take their cases
from here, so the three tools measure the same grid. A case is one loss x formulation x mode x
pass x batch x resolution x classes x dtype; a profile is a named sweep plus timing budgets.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from segbench.losses.registry import (
    FORMULATIONS,
    LOSSES,
    MODES,
    TENSORFLOW_MODES,
    builtin_losses,
    get_formulation,
    get_loss,
    get_mode,
    loss_fn,
    unsupported,
)
from segbench.losses.scenes import Scene, make_scene

PASSES = ("forward", "forward+backward")
DTYPES = ("float32", "float16", "bfloat16", "float64")
SCENE_SEED = 0
PROFILE_ENV = "SEGBENCH_PROFILE"


@dataclass(frozen=True, order=True)
class Case:
    """One benchmark cell: what is measured (the spec), not how it went."""

    batch: int
    height: int
    width: int
    classes: int
    dtype: str
    loss: str
    formulation: str
    mode: str
    pass_: str

    @property
    def gradient(self) -> bool:
        return self.pass_ == "forward+backward"

    @property
    def pixels(self) -> int:
        return self.batch * self.height * self.width

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.height, self.width, self.classes)

    @property
    def name(self) -> str:
        return (
            f"{self.loss}/{self.formulation}/{self.mode}/{self.pass_}/"
            f"b{self.batch}/{self.height}x{self.width}/c{self.classes}/{self.dtype}"
        )

    @property
    def short_name(self) -> str:
        """A label that fits a progress line: the loss's initials, e.g. mac/fus/xla/f+b/b16/512x512."""
        initials = "".join(word[0] for word in self.loss.split("_"))
        pass_ = "fwd" if self.pass_ == "forward" else "f+b"
        return f"{initials}/{self.formulation[:3]}/{self.mode}/{pass_}/b{self.batch}/{self.height}x{self.width}"

    def key(self) -> dict[str, Any]:
        """The columns that identify this cell in a results table."""
        return {
            "loss": self.loss,
            "formulation": self.formulation,
            "mode": self.mode,
            "pass": self.pass_,
            "batch": self.batch,
            "height": self.height,
            "width": self.width,
            "classes": self.classes,
            "dtype": self.dtype,
        }

    def unsupported_reason(self) -> str | None:
        """Why this combination cannot run at all (then it is skipped, not failed), or None."""
        if self.dtype not in MODES[self.mode].dtypes:
            return f"mode {self.mode} does not support {self.dtype}"
        return unsupported(self.loss, self.formulation, self.mode, self.gradient)

    def scene(self) -> Scene:
        """The seeded inputs for this cell (shared by all cells of the same shape and dtype)."""
        return scene_for(self.batch, self.height, self.width, self.classes, self.dtype)

    def build(self) -> Any:
        """The callable to time: no input validation, as timed code should be."""
        return loss_fn(self.loss, self.mode, formulation=self.formulation, gradient=self.gradient, validate=False)

    def prepare(self, device: str | Any = "auto", *, warm: bool = True) -> PreparedCase:
        """Inputs on the device and the callable built; with ``warm`` the first call is made."""
        return PreparedCase(self, device, warm=warm)


class PreparedCase:
    """A case ready to time, the same way for segbench run, asv and pytest-benchmark.

    Inputs are placed on the device before any timing; ``call()`` runs the loss once and returns
    only when the device has finished (see segbench.measurement.device.synchronizer). With ``warm=True`` the
    first call (trace, XLA compile) is made here, so that no timing includes it.
    """

    def __init__(self, case: Case, device: str | Any = "auto", *, warm: bool = True):
        from segbench.measurement import device as devices

        self.case = case
        self.backend = MODES[case.mode].backend
        if isinstance(device, str):
            device = devices.resolve(device, uses_tensorflow=self.backend == "tensorflow", backend=self.backend)
        self.device = device if self.backend != "numpy" else devices.resolve("cpu")  # numpy: the host
        self.scene = case.scene()
        self.y_true = devices.place(self.scene.y_true, self.device, self.backend)
        self.y_pred = devices.place(self.scene.y_pred, self.device, self.backend)
        self.fn = case.build()
        self.sync = devices.synchronizer(self.device, self.backend)
        self._on = devices.on
        self.first_call_s: float | None = None  # the first call (trace + XLA compile + run), if made here
        self.first_value = None
        if warm:
            import time

            start = time.perf_counter()
            self.first_value = self.call()
            self.first_call_s = time.perf_counter() - start

    def scope(self) -> Any:
        """Run the backend's ops (TensorFlow's, JAX's) on this case's device inside the block."""
        return self._on(self.device, self.backend)

    def call(self) -> float:
        """One call, finished on the device; returns the loss value (the scalar that was fetched)."""
        with self.scope():
            return self.sync(self.fn(self.y_true, self.y_pred))

    def run(self) -> Any:
        """One call without fetching the result (for timing loops that sync once per round)."""
        return self.fn(self.y_true, self.y_pred)


@functools.lru_cache(maxsize=1)
def scene_for(batch: int, height: int, width: int, classes: int, dtype: str) -> Scene:
    """Benchmark inputs: the seed's scene with two missing annotations (fewer in a batch of one)."""
    return make_scene(batch, height, width, classes, missing=min(2, batch), seed=SCENE_SEED, dtype=dtype)


def _as_tuple(name: str, values: Iterable[Any], allowed: Sequence[Any] | None = None) -> tuple[Any, ...]:
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{name} lists {', '.join(repeated)} more than once: each cell is measured once")
    if allowed is not None:
        for value in values:
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of: {', '.join(map(str, allowed))}")
    return values


@dataclass(frozen=True)
class Sweep:
    """A grid: the cases are the cross product of these, minus unsupported mode/dtype pairs."""

    losses: tuple[str, ...] = field(default_factory=builtin_losses)  # plugins' losses: Profile.resolved_sweep
    formulations: tuple[str, ...] = ("reference", "fused", "blocked")  # keras: the tiny and backends profiles
    modes: tuple[str, ...] = TENSORFLOW_MODES  # numpy and TensorFlow; the backends profile has every mode
    passes: tuple[str, ...] = PASSES
    batches: tuple[int, ...] = (8,)
    resolutions: tuple[tuple[int, int], ...] = ((128, 128),)
    classes: tuple[int, ...] = (4,)
    dtypes: tuple[str, ...] = ("float32",)

    def __post_init__(self) -> None:
        for loss in _as_tuple("loss", self.losses):
            get_loss(loss)
        for formulation in _as_tuple("formulation", self.formulations):
            get_formulation(formulation)
        for mode in _as_tuple("mode", self.modes):
            get_mode(mode)
        _as_tuple("pass", self.passes, PASSES)
        _as_tuple("dtype", self.dtypes, DTYPES)
        for name, values in (("batch", self.batches), ("classes", self.classes)):
            for value in _as_tuple(name, values):
                if not isinstance(value, int) or value < (2 if name == "classes" else 1):
                    raise ValueError(f"{name} must be integers >= {2 if name == 'classes' else 1}, got {value!r}")
        for resolution in _as_tuple("resolution", self.resolutions):
            if len(resolution) != 2 or min(resolution) < 1:
                raise ValueError(f"resolution must be (height, width) >= 1, got {resolution!r}")

    def cases(self) -> list[Case]:
        """Every supported case, ordered by shape so that inputs are made once per shape."""
        grid = itertools.product(
            self.batches,
            self.resolutions,
            self.classes,
            self.dtypes,
            self.losses,
            self.formulations,
            self.modes,
            self.passes,
        )
        cases = [Case(b, h, w, c, d, loss, f, m, p) for b, (h, w), c, d, loss, f, m, p in grid]
        return [case for case in cases if case.unsupported_reason() is None]

    def replace(self, **changes: Any) -> Sweep:
        return dataclasses.replace(self, **{k: tuple(v) for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class TimerBudget:
    """How long the timer may spend on one cell (see segbench.measurement.timing)."""

    min_run_time: float = 0.2  # seconds of timed blocks per cell, after warm-up
    min_rounds: int = 5
    max_rounds: int = 200
    warmup_time: float = 0.05
    visits: int = 1  # segbench run measures each cell this many times, minutes apart, in fresh workers

    def per_visit(self) -> TimerBudget:
        """The share of one visit: the rounds and timed seconds split evenly over the visits."""
        if self.visits == 1:
            return self
        return dataclasses.replace(
            self,
            min_run_time=self.min_run_time / self.visits,
            min_rounds=math.ceil(self.min_rounds / self.visits),
            max_rounds=math.ceil(self.max_rounds / self.visits),
            visits=1,
        )


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    sweep: Sweep
    budget: TimerBudget = field(default_factory=TimerBudget)
    peers: tuple[str, ...] = ()  # registered losses (segbench.losses.standard) measured beside the built-ins

    def resolved_sweep(self) -> Sweep:
        """The sweep with the profile's peers and every loss a user's plugin registered added, as far
        as they are registered now (plugins register at run time, after the profiles were made)."""
        added = [name for name in self.peers if name in LOSSES]
        added += [
            name
            for name, loss in LOSSES.items()
            if loss.user is not None and not loss.user.origin.startswith(STANDARD_ORIGIN)
        ]
        losses = tuple(dict.fromkeys([*self.sweep.losses, *added]))
        return self.sweep.replace(losses=losses) if losses != self.sweep.losses else self.sweep


STANDARD_ORIGIN = "segbench.losses.standard"


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "tiny",
            "smoke test of the machinery (tests, CI): one small shape, every loss/formulation/mode/pass, every backend",
            Sweep(batches=(2,), resolutions=((32, 32),), formulations=tuple(FORMULATIONS), modes=tuple(MODES)),
            TimerBudget(min_run_time=0.02, min_rounds=5, max_rounds=20, warmup_time=0.0),
        ),
        Profile(
            "quick",
            "seconds to a minute on a 2-core CPU",
            Sweep(batches=(1, 8), resolutions=((64, 64),)),
            TimerBudget(min_run_time=0.15, min_rounds=15, max_rounds=60, warmup_time=0.03, visits=3),
        ),
        Profile(
            "default",
            "the README's main command: a few minutes on a 2-core CPU; its largest shape (batch 16, 512x512)"
            " is where the fast formulations' targets are measured",
            Sweep(batches=(1, 16), resolutions=((128, 128), (512, 512))),
            TimerBudget(min_run_time=0.3, min_rounds=15, max_rounds=100, warmup_time=0.1, visits=3),
            peers=("keras_categorical_crossentropy",),
        ),
        Profile(
            "backends",
            "one loss, every backend: the seed's losses in keras.ops (and the reference in numpy and TensorFlow),"
            " Keras' standard losses, on TensorFlow, JAX and PyTorch with and without compilation",
            Sweep(
                formulations=("reference", "keras"),
                modes=tuple(MODES),
                batches=(16,),
                resolutions=((128, 128), (512, 512)),
            ),
            TimerBudget(min_run_time=0.3, min_rounds=15, max_rounds=100, warmup_time=0.1, visits=2),
            peers=("keras_categorical_crossentropy", "soft_dice", "tversky", "categorical_focal_crossentropy"),
        ),
        Profile(
            "full",
            "batch up to 64, resolutions up to 1024x1024, C up to 32, three dtypes (hours on a CPU)",
            Sweep(
                batches=(1, 8, 32, 64),
                resolutions=((128, 128), (256, 256), (512, 512), (1024, 1024)),
                classes=(4, 16, 32),
                dtypes=("float32", "float16", "bfloat16"),
            ),
            TimerBudget(min_run_time=1.0, min_rounds=20, max_rounds=1000, warmup_time=0.2, visits=2),
            peers=("keras_categorical_crossentropy", "soft_dice", "tversky", "categorical_focal_crossentropy"),
        ),
    )
}


def get_profile(name: str | None = None) -> Profile:
    """A profile by name; None means $SEGBENCH_PROFILE, else "default"."""
    name = name or os.environ.get(PROFILE_ENV) or "default"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of: {', '.join(PROFILES)}")
    return PROFILES[name]


def parse_ints(name: str, text: str) -> tuple[int, ...]:
    """'1,8,32' -> (1, 8, 32), with an error naming the option."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(re.fullmatch(r"\d+", part) for part in parts):
        raise ValueError(f"--{name} takes comma-separated integers, got {text!r}")
    return tuple(int(part) for part in parts)


def parse_resolutions(text: str) -> tuple[tuple[int, int], ...]:
    """'128,256,512x1024' -> ((128, 128), (256, 256), (512, 1024)): HxW, or one number for square."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = re.fullmatch(r"(\d+)(?:x(\d+))?", part)
        if not match:
            raise ValueError(f"--res takes comma-separated N or HxW, got {part!r} in {text!r}")
        height = int(match.group(1))
        out.append((height, int(match.group(2)) if match.group(2) else height))
    return tuple(out)


def parse_names(name: str, text: str) -> tuple[str, ...]:
    """'eager, xla' -> ('eager', 'xla'), with an error naming the option if nothing is given."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError(f"--{name} takes comma-separated names, got {text!r}")
    return names


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4): the 2nd of 4 parts; an error naming --shard otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--shard takes K/N with 1 <= K <= N (e.g. 2/4), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def shard_cases(cases: Sequence[Case], shard: tuple[int, int] | None) -> list[Case]:
    """The K-th of N parts of ``cases``: every N-th case from the K-th, so that each part gets a
    share of every shape (and of the slow ones). Deterministic: the same sweep always splits the
    same way, and the N parts together are exactly the sweep."""
    if shard is None:
        return list(cases)
    k, n = shard
    return [case for i, case in enumerate(cases) if i % n == k - 1]
