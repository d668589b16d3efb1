"""Verdicts: the statistics behind them, comparisons of runs (compare, ab), loss values and the
regression check of values (values, check), and the pytest-benchmark gate.
"""

from segbench._lazy import package_dir, package_getattr

__getattr__ = package_getattr(__name__)
__dir__ = package_dir(__name__)
