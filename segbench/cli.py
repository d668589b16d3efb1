"""The segbench command line: ``segbench values|run|compare|report|check``.

Each subcommand lives in its own module with a ``register(subcommands)`` function; importing
those modules is cheap (no TensorFlow), so ``segbench --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# TensorFlow's C++ start-up chatter (e.g. "failed call to cuInit" on a machine without a GPU).
# Real failures still raise Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

COMMAND_MODULES = (
    "segbench.values",
    "segbench.runner",
    "segbench.compare",
    "segbench.report",
    "segbench.check",
    "segbench.ab",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segbench", description="Benchmarks of segmentation loss functions.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:  # a subcommand not written yet
                continue
            raise
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as error:
        # Bad input: a clear message naming the argument, not a traceback.
        print(f"segbench {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
