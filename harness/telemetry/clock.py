"""Monotonic time source for durations.

All durations in the telemetry package come from :func:`monotonic_s`
(``time.perf_counter``, seconds, arbitrary epoch). ``time.time()`` is never used
for durations: it jumps with NTP and manual clock changes.

A :class:`Clock` is injectable so tests can script time with :class:`FakeClock`
instead of sleeping or asserting on wall-clock durations.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


def monotonic_s() -> float:
    """Seconds from a monotonic, high-resolution clock (``time.perf_counter``)."""
    return time.perf_counter()


class Clock(Protocol):
    """What the telemetry code needs from a clock."""

    def now(self) -> float:
        """Monotonic time in seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (used only by idle-power measurement)."""
        ...


class MonotonicClock:
    """The real clock: :func:`monotonic_s` and ``time.sleep``."""

    def now(self) -> float:
        return monotonic_s()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A scripted clock for tests: time only moves when told to.

    ``sleep`` advances the clock instead of blocking. Thread-safe.
    """

    def __init__(self, start_s: float = 1000.0) -> None:
        self._t = float(start_s)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        with self._lock:
            self._t += seconds
            return self._t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


SYSTEM_CLOCK = MonotonicClock()
