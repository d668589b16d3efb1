"""Numbers tracked across commits besides the time per call: loss values, compile time, XLA's time
relative to eager's.

A change of a loss value shows in asv's history as a step in ``track_loss_value``; compile time is
the first call (trace + compile + first run) of a fresh function, each sample in a fresh process;
XLA's time over eager's is measured with segbench's timer in the same process. asv reads every
number as "lower is better", so each is stated that way round.
"""

import dataclasses
import textwrap

from segbench.losses.registry import MODES
from segbench.losses.scenes import SEED_SCENARIO
from segbench.measurement.backends import backend_env
from segbench.measurement.timing import measure

from .common import PARAM_NAMES, PROFILE, SWEEP, largest_shape, make_case, params_with, prepare

SEED_SHAPE = {
    "batch": [SEED_SCENARIO.batch],
    "resolution": [f"{SEED_SCENARIO.height}x{SEED_SCENARIO.width}"],
    "classes": [SEED_SCENARIO.classes],
}


class TrackLossValue:
    """The loss on the seed's scenario (batch 8, 128x128, C=4, two missing annotations), per mode."""

    params = params_with(**{"pass": ["forward"], "dtype": ["float32"]}, **SEED_SHAPE)
    param_names = PARAM_NAMES
    unit = "loss"
    timeout = 180

    def setup(self, *params):
        self.prepared = prepare(*params)

    def track_loss_value(self, *params):
        return self.prepared.first_value


class TimerawCompile:
    """Seconds of the first call (trace, XLA compile, first run) of a fresh function, each sample in
    a fresh process (asv's ``timeraw_``): a compile time measured once in a warm process is one
    sample of a noisy quantity, and a gate on one sample raises false alarms.

    At the profile's largest shape, forward+backward (the pass training compiles), per loss and
    compiled mode. The setup (not timed) imports TensorFlow, initialises its runtime and makes the
    inputs, so the timed code is the compile and first call alone.
    """

    params = params_with(
        mode=[m for m in SWEEP.modes if MODES[m].compiles],
        formulation=["reference"],
        dtype=["float32"],
        **{"pass": ["forward+backward"]},
        **largest_shape(),
    )
    param_names = PARAM_NAMES
    repeat = (3, 5, 60.0)
    number = 1
    timeout = 300

    def timeraw_compile(self, *params):
        case = make_case(*params)
        backend = MODES[case.mode].backend
        # the backend's runtime start-up is not the loss's compile time: start it in the setup (only
        # that backend: a JAX or PyTorch cell's process never imports TensorFlow)
        start = {
            "tensorflow": "import tensorflow as tf; tf.constant(1.0) + 1.0",
            "jax": "import segbench.losses.modes_jax, jax.numpy as jnp; jnp.ones(1).block_until_ready()",
            "torch": "import torch; torch.ones(1) + 1.0",
        }.get(backend, "pass")
        setup = textwrap.dedent(
            f"""
            import os
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            os.environ.update({backend_env(backend)!r})
            {start}
            from segbench.measurement.sweep import Case
            case = Case(*{tuple(dataclasses.astuple(case))!r})
            case.scene()
            """
        )
        return "case.prepare()", setup


class TrackXlaTimeOverEager:
    """XLA's median time as a fraction of eager's at the profile's largest shape: lower is better,
    as asv reads every number (so a faster XLA never shows as a regression)."""

    params = params_with(mode=["xla"], dtype=["float32"], **largest_shape())
    param_names = PARAM_NAMES
    unit = "x eager time"
    timeout = 300

    def setup(self, loss, formulation, mode, pass_, *shape):
        self.eager = prepare(loss, formulation, "eager", pass_, *shape)
        self.xla = prepare(loss, formulation, mode, pass_, *shape)

    def track_xla_time_over_eager(self, *params):
        eager = measure(self.eager.call, budget=PROFILE.budget).median
        xla = measure(self.xla.call, budget=PROFILE.budget).median
        return xla / eager
