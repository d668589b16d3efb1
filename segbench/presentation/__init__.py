"""Presentation: tables for people, the HTML report, and the progress line."""

from segbench._lazy import package_dir, package_getattr

__getattr__ = package_getattr(__name__)
__dir__ = package_dir(__name__)
