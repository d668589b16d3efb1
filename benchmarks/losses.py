"""Time per call of every loss x formulation x mode x pass x shape of the profile's sweep."""

from .common import PARAM_NAMES, PARAMS, prepare


class TimeLoss:
    """One benchmark over the whole sweep; each cell is prepared (and compiled) in setup."""

    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 180  # the largest XLA cells of the full profile compile in tens of seconds
    warmup_time = 0.2  # tf.function keeps getting faster for its first few dozen calls
    repeat = (3, 10, 2.0)  # at least 3 samples, at most 10, stop adding after 2 s

    def setup(self, *params):
        self.prepared = prepare(*params)

    def time_loss(self, *params):
        self.prepared.call()
