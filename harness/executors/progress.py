"""Progress of a run, fed by worker events (:mod:`harness.executors.base`), shown in the driver.

In a terminal: rich bars, one for the run (cells, elapsed, ETA) and one per running cell.
Elsewhere (a log file, CI): one line when a cell starts, one when it ends (elapsed, status),
and a heartbeat line at most every ``heartbeat_s`` seconds while a cell runs.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.executors.base import CellDone, CellProgress, CellStarted, Event, Machine, ModelLoaded


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class ProgressView:
    """A context manager showing a run's progress; :meth:`handle` takes every event.

    Args:
        total: cells to run.
        console: where to print.
        heartbeat_s: the longest silence in a non-terminal log while a cell runs.
    """

    def __init__(self, total: int, console: Console, heartbeat_s: float = 30.0):
        self.total, self.console, self.heartbeat_s = total, console, heartbeat_s
        self.tty = console.is_terminal
        self.done = 0
        self.began = time.monotonic()
        self._bars: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._last_line = 0.0
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        ) if self.tty else None

    def __enter__(self) -> "ProgressView":
        if self._progress is not None:
            self._progress.__enter__()
            self._overall = self._progress.add_task("cells", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def _eta(self) -> str:
        if not self.done:
            return "?"
        elapsed = time.monotonic() - self.began
        return _fmt_s(elapsed / self.done * (self.total - self.done))

    def _line(self, text: str) -> None:
        self._last_line = time.monotonic()
        self.console.print(text, highlight=False, soft_wrap=True)

    def handle(self, event: Event) -> None:
        if isinstance(event, Machine):
            return
        if isinstance(event, ModelLoaded):
            self._line(f"loaded {event.info['model']} ({event.info['dtype']}) in {event.info['load_time_s']:.1f} s")
        elif isinstance(event, CellStarted):
            self._started[event.cell_hash] = time.monotonic()
            if self._progress is not None:
                self._bars[event.cell_hash] = self._progress.add_task(event.label, total=event.total)
            else:
                self._line(f"[{self.done + 1}/{self.total}] {event.label}: started")
        elif isinstance(event, CellProgress):
            if self._progress is not None and event.cell_hash in self._bars:
                self._progress.update(self._bars[event.cell_hash], completed=event.done, total=event.total)
            elif self._progress is None and time.monotonic() - self._last_line >= self.heartbeat_s:
                ran = time.monotonic() - self._started.get(event.cell_hash, self.began)
                of = f"/{event.total}" if event.total else ""
                self._line(f"    … {event.done}{of} done, {_fmt_s(ran)} in this cell")
        elif isinstance(event, CellDone):
            self.done += 1
            ran = time.monotonic() - self._started.pop(event.cell_hash, time.monotonic())
            if not event.ok:
                self.console.print(f"[red]cell {event.label} failed:[/] {event.row.get('error')}", highlight=False)
            if self._progress is not None:
                bar = self._bars.pop(event.cell_hash, None)
                if bar is not None:
                    self._progress.update(bar, visible=False)
                self._progress.advance(self._overall)
            else:
                status = "ok" if event.ok else "error"
                n = event.row.get("n")
                self._line(f"[{self.done}/{self.total}] {event.label}: {status}"
                           + (f", n={n}" if n is not None else "")
                           + f", {_fmt_s(ran)}; run ETA {self._eta()}")
