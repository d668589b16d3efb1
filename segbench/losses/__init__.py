"""Losses: the registry, the seed and standard losses' definitions, their numpy, TensorFlow, Keras,
JAX and PyTorch implementations, the modes that run them, plugins, and the float64 oracle.
"""

from segbench._lazy import package_dir, package_getattr

__getattr__ = package_getattr(__name__)
__dir__ = package_dir(__name__)
