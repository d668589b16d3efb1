"""The segbench command line: ``segbench values|run|compare|report|check``."""

from __future__ import annotations

import argparse
import os
import sys

# TensorFlow's C++ start-up chatter (e.g. "failed call to cuInit" on a machine without a GPU).
# Real failures still raise Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _values(args: argparse.Namespace) -> int:
    from segbench.values import SEED_SCENARIO, value_pivot, value_table

    table = value_table(SEED_SCENARIO)
    print(
        f"Loss values on the seed's scenario (batch {SEED_SCENARIO.batch}, {SEED_SCENARIO.height}x"
        f"{SEED_SCENARIO.width}, C={SEED_SCENARIO.classes}, {SEED_SCENARIO.missing} missing annotations, "
        f"seed {SEED_SCENARIO.seed}), float32 inputs:\n"
    )
    print(value_pivot(table).reset_index().to_markdown(index=False, floatfmt=".7g"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    values = commands.add_parser("values", help="the three losses' values on the seed's scenario in every mode")
    values.set_defaults(handler=_values)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
