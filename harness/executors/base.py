"""What executors share: a group of cells, the events a worker emits, and the executor contract.

A *worker* (:func:`harness.executors.worker.run_group`) loads a group's base once and runs
its cells, emitting plain, picklable events; it writes nothing. The *driver*
(:func:`harness.runner.run_suite`) is the one writer: its sink turns ``CellDone`` records
into result files. An *executor* decides where groups run (in-process, a Ray cluster, ...)
and shows progress; it forwards every event to the driver's sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from harness.core.cell import Cell
from harness.core.registry import Registry


@dataclass
class CellGroup:
    """Cells sharing one loaded base: same ``(kind, model ref, dtype)``.

    Attributes:
        files: run-directory files the group's cells may reuse (``relative path → bytes``), as
            they were when the group was handed out; the worker adds what its cells keep.
        data: the data files its cells read (``path relative to HARNESS_DATA_DIR → bytes``),
            shipped by executors whose workers may not see the driver's data folder; empty
            for the local executor.
    """

    kind: str
    model_ref: str
    dtype: str
    cells: list[Cell]
    files: dict[str, bytes] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.model_ref} ({self.dtype}, {self.kind})"


@dataclass
class Machine:
    """Where a group runs: the provenance of its machine and the hardware class id."""

    provenance: dict[str, Any]
    hardware_id: str
    device: str


@dataclass
class ModelLoaded:
    """A group's base was loaded (recorded under ``models`` in ``run.json``)."""

    key: str
    info: dict[str, Any]


@dataclass
class CellStarted:
    cell_hash: str
    label: str
    total: int | None


@dataclass
class CellProgress:
    cell_hash: str
    done: int
    total: int | None


@dataclass
class CellDone:
    """One finished cell, ``status`` ``ok`` or ``error``: everything the driver writes.

    Attributes:
        row: the full cell row (identity, figures, status, provenance; schema names).
        sample_rows: its sample rows (empty for an error).
        series: its telemetry time series rows (only when asked for).
        files: files to keep in the run directory (``relative path → bytes``).
    """

    cell_hash: str
    label: str
    row: dict[str, Any]
    sample_rows: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] | None = None
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.row.get("status") == "ok"


Event = Machine | ModelLoaded | CellStarted | CellProgress | CellDone
Sink = Callable[[Event], None]


@dataclass
class RunOptions:
    """Settings of one run that every worker needs.

    Attributes:
        device: ``auto``/``cpu``/``cuda``/``cuda:N`` (resolved on the worker's machine).
        run_id: the run the rows belong to.
        telemetry_series: also return each cell's probe readings.
        shared_cpu_package: other workers share this worker's CPU package, so CPU-package
            energy (RAPL, codecarbon) is marked ``energy_attributed``.
    """

    device: str
    run_id: str
    telemetry_series: bool = False
    shared_cpu_package: bool = False


class ExecutorUnavailable(RuntimeError):
    """An executor that cannot start (its extra is missing, its cluster unreachable); one line."""


class Executor:
    """Where and how groups of cells run. Subclass, register with ``@EXECUTORS.register(name)``.

    ``run`` must hand every event of every group to ``sink`` in the driver's process (the
    driver writes results as ``CellDone`` events arrive) and return when all groups are done;
    a cell that fails is a ``CellDone`` with ``status=error``, never an exception.
    """

    name: ClassVar[str] = ""

    def __init__(self, settings=None, resources=None):
        """``settings``: :class:`harness.config.fields.ExecutorSettings`; ``resources``:
        :class:`harness.config.fields.Resources` (per worker); ``None`` = defaults."""
        from harness.config.fields import ExecutorSettings, Resources

        self.settings = settings or ExecutorSettings(name=self.name)
        self.resources = resources or Resources()

    def run(self, groups: list[CellGroup], options: RunOptions, sink: Sink, console) -> None:
        raise NotImplementedError


EXECUTORS: Registry[Executor] = Registry("executor", Executor)
"""Executors by name (``harness run --executor NAME``); :mod:`harness.executors` discovers them."""
