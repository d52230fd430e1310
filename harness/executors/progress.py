"""Progress of a run, fed by worker events (:mod:`harness.executors.base`), shown in the driver.

In a terminal: rich bars, one for the run (cells, elapsed, ETA) and one per running cell, which
advances per decode step (fractional samples, :class:`harness.executors.base.CellProgress`).
Elsewhere (a log file, CI): one line when a cell starts, one when it ends (n, elapsed, tokens/s,
the run's ETA), and a heartbeat line at most every ``heartbeat_s`` seconds while a cell runs.

The run's ETA is estimated from the work done so far, from the first cell on: the cells done
plus the running cells' shares of their samples (``done / total``), against the time since the
first cell started: ``elapsed × (cells − work done) / work done``.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from harness.executors.base import CellDone, CellProgress, CellStarted, Event, Machine, ModelLoaded

HEARTBEAT_S = 30.0
"""The longest silence, in seconds, of a non-terminal log while a cell runs."""


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def _fmt_units(x: float) -> str:
    """``3`` for whole units, ``3.4`` for a batch part-way through its decode."""
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def eta_s(elapsed_s: float, done: float, total: float) -> float | None:
    """Seconds left at the rate so far: ``elapsed_s × (total − done) / done``; None before any
    work is done (or without a total)."""
    if not total or done <= 0:
        return None
    return max(elapsed_s * (total - done) / done, 0.0)


class EtaColumn(ProgressColumn):
    """``ETA m:ss`` from the task's own rate so far (:func:`eta_s`), not rich's windowed speed
    (which shows ``-:--:--`` until two updates fall in its window)."""

    def render(self, task: Task) -> Text:
        left = eta_s(task.elapsed or 0.0, task.completed, task.total or 0) if task.started else None
        return Text(f"ETA {_fmt_s(left)}" if left is not None else "ETA ?", style="progress.remaining")


class ProgressView:
    """A context manager showing a run's progress; :meth:`handle` takes every event.

    Args:
        total: cells to run.
        console: where to print (a terminal gets bars, anything else log lines).
        heartbeat_s: the longest silence in a non-terminal log while a cell runs.
        clock: seconds, monotonic (injectable for tests).
    """

    def __init__(self, total: int, console: Console, heartbeat_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.console = total, console
        self.heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.clock = clock
        self.tty = console.is_terminal
        self.done = 0
        self.began: float | None = None  # the first cell's start: the ETA's clock
        self._bars: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._share: dict[str, float] = {}  # running cell → share of its samples done
        self._last_line = clock()
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            EtaColumn(), console=console, transient=False, get_time=clock,
        ) if self.tty else None

    def __enter__(self) -> "ProgressView":
        if self._progress is not None:
            self._progress.__enter__()
            self._overall = self._progress.add_task("cells", total=self.total, start=False)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    @property
    def work_done(self) -> float:
        """Cells done plus the running cells' shares."""
        return self.done + sum(self._share.values())

    def eta(self) -> str:
        """The run's ETA as ``m:ss`` (``?`` before any work is done)."""
        left = eta_s(self.clock() - self.began, self.work_done, self.total) if self.began is not None else None
        return "?" if left is None else _fmt_s(left)

    def _line(self, text: str) -> None:
        self._last_line = self.clock()
        self.console.print(text, highlight=False, soft_wrap=True)

    def _update_overall(self) -> None:
        if self._progress is not None:
            self._progress.update(self._overall, completed=self.work_done)

    def handle(self, event: Event) -> None:
        if isinstance(event, Machine):
            return
        if isinstance(event, ModelLoaded):
            self._line(f"loaded {event.info['model']} ({event.info['dtype']}) in {event.info['load_time_s']:.1f} s")
        elif isinstance(event, CellStarted):
            now = self.clock()
            if self.began is None:
                self.began = now
                if self._progress is not None:
                    self._progress.start_task(self._overall)
            self._started[event.cell_hash] = now
            self._share[event.cell_hash] = 0.0
            if self._progress is not None:
                self._bars[event.cell_hash] = self._progress.add_task(event.label, total=event.total)
            else:
                of = f" ({event.total} sample{'' if event.total == 1 else 's'})" if event.total else ""
                self._line(f"[{self.done + 1}/{self.total}] {event.label}: started{of}; run ETA {self.eta()}")
        elif isinstance(event, CellProgress):
            if event.total:
                self._share[event.cell_hash] = min(event.done / event.total, 1.0)
            if self._progress is not None:
                if event.cell_hash in self._bars:
                    self._progress.update(self._bars[event.cell_hash], completed=event.done, total=event.total)
                self._update_overall()
            elif self.clock() - self._last_line >= self.heartbeat_s:
                ran = self.clock() - self._started.get(event.cell_hash, self.clock())
                of = f"/{event.total}" if event.total else ""
                self._line(f"    … {_fmt_units(event.done)}{of} done, {_fmt_s(ran)} in this cell; run ETA {self.eta()}")
        elif isinstance(event, CellDone):
            self.done += 1
            self._share.pop(event.cell_hash, None)
            ran = self.clock() - self._started.pop(event.cell_hash, self.clock())
            if not event.ok:
                self.console.print(f"[red]cell {event.label} failed:[/] {event.row.get('error')}",
                                   highlight=False, soft_wrap=True)
            if self._progress is not None:
                bar = self._bars.pop(event.cell_hash, None)
                if bar is not None:
                    self._progress.update(bar, visible=False)
                self._update_overall()
            else:
                self._line(f"[{self.done}/{self.total}] {event.label}: {self._outcome(event)}, {_fmt_s(ran)}"
                           f"; run ETA {self.eta() if self.done < self.total else '0:00'}")

    @staticmethod
    def _outcome(event: CellDone) -> str:
        """``ok, n=8, 45.1 tok/s`` (the figures the row has) or ``error``."""
        if not event.ok:
            return "error"
        parts = ["ok"]
        n = event.row.get("n")
        if n is not None:
            parts.append(f"n={n}")
        tps = event.row.get("throughput_tok_per_s")
        if isinstance(tps, (int, float)) and tps == tps:
            parts.append(f"{tps:.1f} tok/s")
        return ", ".join(parts)
