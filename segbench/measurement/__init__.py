"""Measurement: the sweep and its profiles, the timer, devices, the environment a run records, the
worker processes that measure cells, and the runner that supervises them.
"""

from segbench._lazy import package_dir, package_getattr

__getattr__ = package_getattr(__name__)
__dir__ = package_dir(__name__)
