"""Progress a person can read: one line in a terminal, a line every few seconds in a log."""

from __future__ import annotations

import sys
import time
from typing import IO


class Progress:
    """Counts finished items; ``update(label)`` after each, ``close()`` at the end.

    In a terminal: tqdm's single line (count, rate, ETA) with a short label. Elsewhere (CI logs, a
    file): no carriage returns, one plain line every ``every`` seconds and one at the end.
    """

    def __init__(self, total: int, unit: str, enabled: bool = True, every: float = 10.0, stream: IO | None = None):
        self.total, self.unit, self.every = total, unit, every
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.done, self.start, self.last = 0, time.monotonic(), time.monotonic()
        self.bar = None
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, dynamic_ncols=True, file=self.stream, leave=False)

    def update(self, label: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label[:40], refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            elapsed = now - self.start
            eta = elapsed / self.done * (self.total - self.done)
            print(
                f"  {self.done}/{self.total} {self.unit}s, {elapsed:.0f} s, about {eta:.0f} s to go ({label})",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
