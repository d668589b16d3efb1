"""Which backend a process serves, and importing TensorFlow without its start-up noise.

Shared by every process segbench starts and by the worker harness (segbench.measurement.worker),
which loads this file by path when it runs as a script: so it imports nothing from segbench.
"""

from __future__ import annotations

import os
import sys
from typing import Any

PLUGINS_ENV = "SEGBENCH_PLUGINS"
BACKEND_ENV = "SEGBENCH_BACKEND"


def backend_env(backend: str | None) -> dict[str, str]:
    """The environment of a worker that serves ``backend``: its name, and Keras' backend set to it
    (the numpy worker gets Keras' numpy backend, so that a plugin importing Keras loads no TensorFlow)."""
    if backend is None:
        return {}
    return {BACKEND_ENV: backend, "KERAS_BACKEND": backend}


VERBOSE_ENV = "SEGBENCH_VERBOSE"


def import_tensorflow_quietly() -> Any:
    """Import TensorFlow and start its runtime with the C++ start-up lines (absl, oneDNN, CUDA
    stubs, CPU instructions) kept from the terminal; they are shown if the import fails, or always
    with SEGBENCH_VERBOSE=1. Python's own warnings and errors are not affected afterwards."""
    if "tensorflow" in sys.modules or os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        import tensorflow as tf

        return tf
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.constant(0.0) + 0.0  # the runtime's start-up (device discovery) prints too
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf
