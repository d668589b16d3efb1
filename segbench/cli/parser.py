"""The segbench command line: ``segbench values|run|compare|report|check|ab|merge|choose``.

Each subcommand lives in its own module with a ``register(subcommands)`` function; importing
those modules is cheap (no TensorFlow), so ``segbench --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import signal
import sys
import textwrap

from segbench import _interrupted_while_starting

# TensorFlow's C++ logging above errors; its start-up lines, printed before logging is set up,
# are kept from the terminal by segbench.measurement.backends.import_tensorflow_quietly (SEGBENCH_VERBOSE=1
# shows them). Real failures still raise Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

COMMAND_MODULES = (
    "segbench.verdicts.values",
    "segbench.measurement.runner",
    "segbench.verdicts.compare",
    "segbench.presentation.report",
    "segbench.verdicts.check",
    "segbench.verdicts.ab",
    "segbench.results.merge",
    "segbench.measurement.choice",
)


_MARKUP = re.compile(r"``(.+?)``|:(?:func|data|class|meth|mod|attr):`~?(.+?)`", re.DOTALL)
_ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s+")


def plain(text: str) -> str:
    """Help text without reStructuredText markup: ``code`` and :func:`name` become code and name."""
    return _MARKUP.sub(lambda m: m.group(1) or m.group(2), text)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help at the terminal's width (segbench.presentation.tables.terminal_width: 100 without a terminal), without
    reStructuredText markup: the modules' docstrings, written for the source, are re-wrapped by
    paragraph; list items keep their marker, indented blocks stay as written."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 30, width: int | None = None):
        from segbench.presentation import tables

        super().__init__(prog, indent_increment, max_help_position, width or tables.terminal_width() - 2)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = re.split(r"\n\s*\n", plain(text).strip("\n"))
        return "\n\n".join(self._fill_paragraph(p, width, indent) for p in paragraphs) + "\n"

    @staticmethod
    def _fill_paragraph(paragraph: str, width: int, indent: str) -> str:
        lines = paragraph.splitlines()
        if all(line.startswith(("    ", "\t")) for line in lines):  # a block (a command): as written
            return "\n".join(indent + line for line in lines)
        items: list[list[str]] = []
        for line in lines:
            if _ITEM.match(line) or not items:
                items.append([line.strip()])
            else:
                items[-1].append(line.strip())
        filled = []
        for item in items:
            text = " ".join(item)
            marker = _ITEM.match(text)
            hanging = " " * len(marker.group(0)) if marker else ""
            filled.append(
                textwrap.fill(
                    text,
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent + hanging,
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
        return "\n".join(filled)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super(argparse.RawDescriptionHelpFormatter, self)._split_lines(plain(text), width)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segbench", description="Benchmarks of segmentation loss functions.", formatter_class=HelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:  # a subcommand not written yet
                continue
            raise
        module.register(commands)
    for name, subparser in commands.choices.items():
        subparser.formatter_class = HelpFormatter  # whatever the command's module asked for
        if name in TAKES_LOSSES:
            subparser.add_argument(
                "--plugin",
                action="append",
                default=[],
                metavar="PATH.py|MODULE",
                help="load a file or module that registers losses (repeatable; also $SEGBENCH_PLUGINS)",
            )
    return parser


TAKES_LOSSES = ("run", "values", "check", "compare", "report", "ab", "merge", "choose")
# In this process, quietly, where it is installed (a plugin's Keras would import it with its start-up
# lines); run and ab import it in their workers, values and check in their TensorFlow process.
IMPORTS_TENSORFLOW = ("values", "check", "choose")


def _expected_runtime_errors() -> tuple[type[Exception], ...]:
    """Failures a user can act on, reported in one line (other errors keep their traceback)."""
    from segbench.measurement.device import DeviceUnavailableError
    from segbench.measurement.worker import WorkerDiedError, WorkerError
    from segbench.results.storage import RunLockedError

    return (DeviceUnavailableError, RunLockedError, WorkerDiedError, WorkerError)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # imports every command's module (numpy, pandas...)
    except KeyboardInterrupt:  # Ctrl-C while the command starts: nothing was measured yet
        print("segbench: interrupted", file=sys.stderr)
        return 130
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        # Only now: a KeyboardInterrupt inside an extension's import becomes an ImportError
        # (numpy's "could not import module datetime"), so the imports above stay under the quiet handler.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    command = f"segbench {args.command}"
    from segbench.losses.registry import installed_backends

    try:
        if args.command in IMPORTS_TENSORFLOW and installed_backends()["tensorflow"]:
            from segbench.measurement.backends import import_tensorflow_quietly

            import_tensorflow_quietly()
        if args.command in TAKES_LOSSES:
            from segbench.losses import plugins

            # segbench ab takes --plugin from each side's checkout (segbench.verdicts.ab), not from here
            plugins.load_all([] if args.command == "ab" else args.plugin)
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"\n{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        # The file system said no (read-only, not a directory, no space left...): name the path.
        where = f"{error.filename}: " if error.filename else ""
        print(f"{command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, *_expected_runtime_errors()) as error:
        # Bad input, a locked run directory, a worker that could not start: one clear line.
        print(f"{command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
