"""The command line as a process: Ctrl-C at any instant of start-up stops it with one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "segbench"
PUBLISHED = Path(__file__).resolve().parents[2] / "results" / "published" / "intel-xeon" / "default"


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
    if "init_import_site" in text or "Fatal Python error" in text:
        return  # still in Python's own start-up under load: no program's code has run yet
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    # 130: stopped by segbench with "interrupted"; -SIGINT: before Python could run any code
    assert process.returncode in (130, -signal.SIGINT, 0), (process.returncode, text)
    if process.returncode == 130:
        assert text.strip().splitlines()[-1].endswith("interrupted")
