"""Numbers that are not times, tracked across commits: loss values, compile time, XLA's speedup.

A change of a loss value shows in asv's history as a step in ``track_loss_value``; compile time is
the first call (trace + compile + first run) of a fresh function; the speedup is eager's median
time over XLA's, both measured with segbench's timer in the same process.
"""

import time

from segbench.scenes import SEED_SCENARIO
from segbench.timing import measure

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


class TrackCompileTime:
    """Seconds of the first call (trace, XLA compile, first run) at the profile's largest shape."""

    params = params_with(mode=[m for m in SWEEP.modes if m != "numpy"], dtype=["float32"], **largest_shape())
    param_names = PARAM_NAMES
    unit = "seconds"
    timeout = 180

    def setup(self, *params):
        self.case = make_case(*params)

    def track_compile_time(self, *params):
        start = time.perf_counter()
        self.case.prepare()  # builds a new function and makes its first call
        return time.perf_counter() - start


class TrackXlaSpeedup:
    """Eager's median time over XLA's at the profile's largest shape (above 1: XLA is faster)."""

    params = params_with(mode=["xla"], dtype=["float32"], **largest_shape())
    param_names = PARAM_NAMES
    unit = "x eager"
    timeout = 300

    def setup(self, loss, formulation, mode, pass_, *shape):
        self.eager = prepare(loss, formulation, "eager", pass_, *shape)
        self.xla = prepare(loss, formulation, mode, pass_, *shape)

    def track_xla_speedup(self, *params):
        eager = measure(self.eager.call, budget=PROFILE.budget).median
        xla = measure(self.xla.call, budget=PROFILE.budget).median
        return eager / xla
