"""Peak memory (the process's maximum resident set, as asv measures it) per loss and mode.

At the profile's largest shape and forward+backward, the pass that needs the most memory. asv's
peakmem includes the interpreter and TensorFlow's runtime, so compare modes with each other and
across commits rather than reading the absolute number as the loss's own need (``segbench run``'s
``peak_mem_bytes`` is that).
"""

from .common import PARAM_NAMES, largest_shape, params_with, prepare


class PeakMemLoss:
    params = params_with(**{"pass": ["forward+backward"], "dtype": ["float32"]}, **largest_shape())
    param_names = PARAM_NAMES
    timeout = 180

    def setup(self, *params):
        self.prepared = prepare(*params)

    def peakmem_loss(self, *params):
        self.prepared.call()
