"""Progress a person can read: one line in a terminal, a line every few seconds in a log, and an
estimate of the time left that weighs each cell by what it is expected to cost.

A sweep runs its small shapes first and its large ones last, then visits every cell again: a count
of cells done says little about the time left (on the published default runs, a count-based
estimate was off by up to 53 % after the first 10 % of the run). :class:`TimeLeft` starts from a
prior cost per cell (larger inputs cost more), rescales it by what the finished cells took, uses
the measured cost of a cell's group (same shape, mode and pass) once one has run, and for later
visits the ratio of a revisit to a first visit, plus the worker's restart at each new visit.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import IO

# The prior: a visit costs 1 + elements / PRIOR_ELEMENTS units. Fitted to the published default
# runs (Xeon and AMD EPYC): about 0.42 s per visit at 64 Ki and 1 Mi elements, 1.33 s at 16 Mi.
PRIOR_ELEMENTS = 7.6e6
PRIOR_REVISIT_RATIO = 0.85  # a later visit against the first (no ceiling, no oracle): 0.79-0.84 measured
PRIOR_RESTART_S = 5.0  # a fresh worker per visit: importing TensorFlow again, about 3-6 s
SHRINK_CELLS = 5  # a group's measured cost counts as this many cells of the global rate, at first
SHRINK_SECONDS = 30.0  # the revisit ratio's prior weighs as much as 30 s of revisits


@dataclass(frozen=True)
class Expected:
    """What the estimate knows of a work item before it runs."""

    group: Hashable  # items alike in cost (a cell's shape, mode and pass)
    visit: int = 1
    elements: int = 0  # size of one input

    @property
    def prior(self) -> float:
        return 1.0 + self.elements / PRIOR_ELEMENTS


class TimeLeft:
    """Seconds left in a list of items, learned from the seconds each finished item took."""

    def __init__(self, items: Sequence[Expected]):
        self.items = list(items)
        self.done = 0
        self.first_seconds = 0.0  # first visits: seconds and prior units
        self.first_prior = 0.0
        self.group_seconds: dict[Hashable, float] = defaultdict(float)
        self.group_count: dict[Hashable, int] = defaultdict(int)
        self.group_prior: dict[Hashable, float] = defaultdict(float)
        self.revisit_seconds = 0.0
        self.revisit_expected = 0.0
        self.restart_s = PRIOR_RESTART_S

    def _scale(self) -> float:
        return self.first_seconds / self.first_prior if self.first_prior else 0.0

    def _group_cost(self, group: Hashable) -> float | None:
        """A first visit's expected seconds for ``group``: its mean, shrunk towards the global rate."""
        count = self.group_count.get(group, 0)
        if not count:
            return None
        prior = self._scale() * self.group_prior[group] / count
        return (self.group_seconds[group] + SHRINK_CELLS * prior) / (count + SHRINK_CELLS)

    def _ratio(self) -> float:
        return (self.revisit_seconds + SHRINK_SECONDS * PRIOR_REVISIT_RATIO) / (self.revisit_expected + SHRINK_SECONDS)

    def finished(self, seconds: float) -> None:
        """The next item finished after ``seconds``."""
        item = self.items[self.done]
        starts_visit = self.done > 0 and self.items[self.done - 1].visit != item.visit
        self.done += 1
        if item.visit == 1:
            self.first_seconds += seconds
            self.first_prior += item.prior
            self.group_seconds[item.group] += seconds
            self.group_count[item.group] += 1
            self.group_prior[item.group] += item.prior
            return
        expected = self._group_cost(item.group)
        if expected is None:
            return
        if starts_visit:  # its worker was started afresh: what it took beyond the cell is the restart
            self.restart_s = max(0.0, seconds - expected * self._ratio())
            return
        self.revisit_seconds += seconds
        self.revisit_expected += expected

    def skipped(self) -> None:
        """The next item will not run (a cell whose first visit failed gets no later visit)."""
        self.done += 1

    def seconds(self) -> float | None:
        """The estimate, or None before anything was measured."""
        if not self.first_prior:
            return None
        scale, ratio, left = self._scale(), self._ratio(), 0.0
        previous = self.items[self.done - 1].visit
        for item in self.items[self.done :]:
            if item.visit != previous:
                left += self.restart_s
                previous = item.visit
            cost = self._group_cost(item.group)
            if cost is None:
                left += item.prior * scale
            else:
                left += cost * (ratio if item.visit > 1 else 1.0)
        return left


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class Progress:
    """Counts finished items; ``update(label)`` after each, ``close()`` at the end.

    In a terminal: tqdm's single line (count, elapsed, the estimate of time left) with a short
    label. Elsewhere (CI logs, a file): no carriage returns, one plain line every ``every`` seconds
    and one at the end. ``expected`` (one per item) makes the estimate weigh items by their cost;
    without it every item counts the same.
    """

    def __init__(
        self,
        total: int,
        unit: str,
        enabled: bool = True,
        every: float = 10.0,
        stream: IO | None = None,
        expected: Sequence[Expected] | None = None,
    ):
        self.total, self.unit, self.every = total, unit, every
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.done, self.start, self.last = 0, time.monotonic(), time.monotonic()
        self.item_start = self.start
        self.time_left = TimeLeft(expected) if expected is not None and len(expected) == total else None
        self.bar = None
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm

            form = "{l_bar}{bar}| {n_fmt}/{total_fmt} {unit}s [{elapsed}{postfix}]"
            self.bar = tqdm(total=total, unit=unit, dynamic_ncols=True, file=self.stream, leave=False, bar_format=form)

    def left(self) -> float | None:
        """Seconds left: the cost-weighted estimate, or elapsed per item times the items left."""
        if self.time_left is not None:
            return self.time_left.seconds()
        if not self.done:
            return None
        return (time.monotonic() - self.start) / self.done * (self.total - self.done)

    def update(self, label: str = "") -> None:
        now = time.monotonic()
        if self.time_left is not None and self.done < self.total:
            self.time_left.finished(now - self.item_start)
        self.item_start = now
        self.done += 1
        if not self.enabled:
            return
        left = self.left()
        about = f"about {_duration(left)} left" if left is not None else ""
        if self.bar is not None:
            self.bar.set_postfix_str(f", {about}: {label[:32]}", refresh=False)
            self.bar.update(1)
            return
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            print(
                f"  {self.done}/{self.total} {self.unit}s, {_duration(now - self.start)}, {about} ({label})",
                file=self.stream,
                flush=True,
            )

    def skip(self) -> None:
        """The next item will not run: it leaves the count and the estimate without a time."""
        if self.time_left is not None and self.done < self.total:
            self.time_left.skipped()
        self.item_start = time.monotonic()
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
