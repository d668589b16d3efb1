"""The command line as a process: Ctrl-C at any instant of start-up stops it with one line."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import segbench

SCRIPT = Path(sys.executable).parent / "segbench"
PACKAGE = Path(segbench.__file__).parent  # as installed: the files a traceback would name
PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "published" / "intel-xeon" / "default"


# What Python itself prints when Ctrl-C lands in its start-up, before the console script's first line:
# site's imports, and the check of whether argv[0] (the script) is an import path entry (a zip).
PYTHON_START_UP = ("init_import_site", "Fatal Python error", "Failed checking if argv[0] is an import path entry")


def before_the_handler(traceback: str) -> bool:
    """Whether a traceback stops before segbench installed its handler: in the console script pip
    wrote (finding segbench's files), or in segbench/__init__.py's lines before the handler."""
    init = PACKAGE / "__init__.py"
    installed_at = next(n for n, line in enumerate(init.read_text().splitlines(), 1) if "_signal.signal(" in line)
    frames = re.findall(r'File "([^"]+)", line (\d+)', traceback)
    in_segbench = [(Path(file), int(line)) for file, line in frames if Path(file).is_relative_to(PACKAGE)]
    return all(file == init and line <= installed_at for file, line in in_segbench)


def python_start_up_s() -> float:
    """How long this Python takes to start (site and all) on this machine now: before that, no
    program's code runs, so no program can catch Ctrl-C; segbench's own start-up comes after."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - start


@pytest.mark.skipif(not SCRIPT.exists(), reason="the segbench console script is not installed beside this Python")
@pytest.mark.parametrize("after", [0.0, 0.05, 0.1, 0.2, 0.4])
def test_ctrl_c_during_start_up_prints_no_traceback(after):
    delay = 1.5 * python_start_up_s() + after
    process = subprocess.Popen(
        [str(SCRIPT), "compare", str(PUBLISHED)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    text = stderr.decode()
    if any(mark in text for mark in PYTHON_START_UP):
        return  # still in Python's own start-up under load: no program's code has run yet
    if "Traceback" in text and before_the_handler(text):
        return  # in the console script pip wrote, or segbench's lines before its handler: Python's own handler
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    # 130: stopped by segbench with "interrupted"; -SIGINT: before Python could run any code
    assert process.returncode in (130, -signal.SIGINT, 0), (process.returncode, text)
    if process.returncode == 130:
        assert text.strip().splitlines()[-1].endswith("interrupted")


def test_the_quiet_handler_is_installed_before_any_module_segbench_imports():
    """Every module segbench looks up as the command is looked up under the quiet handler (segbench's
    own files are found before its first statement can run); imported by a program (any other
    argv[0]), segbench leaves Ctrl-C alone."""
    probe = (
        "import sys, _signal\n"
        "sys.argv[0] = {name!r}\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        print(name, getattr(_signal.getsignal(_signal.SIGINT), '__name__', '?'))\n"
        "sys.meta_path.insert(0, Spy())\n"
        "import segbench.cli.parser\n"
    )
    command = subprocess.run(
        [sys.executable, "-c", probe.format(name="/x/bin/segbench")], capture_output=True, text=True
    )
    looked_up = dict(line.split() for line in command.stdout.splitlines())
    assert looked_up.pop("segbench") == "default_int_handler", command.stderr
    assert len(looked_up) > 5, looked_up  # typing, argparse, segbench._lazy, segbench.cli...
    assert set(looked_up.values()) == {"_interrupted_while_starting"}, looked_up
    library = subprocess.run([sys.executable, "-c", probe.format(name="train.py")], capture_output=True, text=True)
    assert set(dict(line.split() for line in library.stdout.splitlines()).values()) == {"default_int_handler"}
