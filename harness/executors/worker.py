"""The worker every executor runs: :func:`run_group` loads a group's base once, runs its cells
inside telemetry windows and emits one record per cell. No progress UI, no writes: the
events go back to the driver, the one writer (:mod:`harness.executors.base`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
import traceback
from pathlib import Path
from typing import Any, Iterator

from harness.core import sanity
from harness.core.cell import Cell
from harness.executors.base import (
    CellDone,
    CellGroup,
    CellProgress,
    CellStarted,
    Machine,
    ModelLoaded,
    RunOptions,
    Sink,
)


CPU_PACKAGE_SOURCES = ("rapl", "codecarbon_estimate")
"""Energy sources that measure a whole CPU package, shared by every worker on it."""


def now_iso() -> str:
    """The current UTC time, ISO-8601 to the second (``started_at``/``finished_at``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def machine(device_setting: str) -> Machine:
    """The machine this process runs on: resolved device, provenance and hardware id."""
    from harness.core.refs import resolve_device
    from harness.telemetry import collect_provenance, hardware_id

    device = resolve_device(device_setting)
    provenance = {**collect_provenance(device), "pid": os.getpid()}
    return Machine(provenance, hardware_id(provenance), device)


def run_group(group: CellGroup, options: RunOptions, emit: Sink, telemetry=None, where: Machine | None = None) -> None:
    """Run every cell of ``group`` on this machine, emitting events to ``emit``.

    Args:
        group: cells sharing a base (same kind, model, dtype), with the files they may reuse.
        options: the run's device, run id and telemetry-series switch.
        emit: receives :class:`Machine`, :class:`ModelLoaded`, :class:`CellStarted`,
            :class:`CellProgress` and one :class:`CellDone` per cell, in that order.
        telemetry: a :class:`harness.telemetry.Telemetry` to reuse (one is made and closed here
            otherwise); ``where``: this machine, when the caller already measured it.

    A base that cannot load fails the group's cells (``status=error``), not the run; a cell
    that raises is an error record and the next cell runs. So is a cell whose figures are
    impossible (:mod:`harness.core.sanity`: e.g. a negative latency, a throughput above
    1e7 tok/s): it is written with ``status=error`` and the reason, never as figures.
    """
    where = where or machine(options.device)
    emit(where)
    own = telemetry is None
    if own:
        from harness.telemetry import Telemetry

        telemetry = Telemetry(device=where.device)
        telemetry.measure_idle()
    from harness.kinds import KINDS  # the built-in kinds registered (a fresh worker process)

    kind = KINDS.get(group.kind)()
    files = group.files
    with shipped_data(group.data):
        _run_cells(group, options, emit, telemetry, where, kind, files, own)


@contextlib.contextmanager
def shipped_data(data: dict[str, bytes]) -> Iterator[None]:
    """With shipped data files, point ``HARNESS_DATA_DIR`` at a temporary copy of them for the
    duration (this worker process only); without, change nothing."""
    if not data:
        yield
        return
    before = os.environ.get("HARNESS_DATA_DIR")
    with tempfile.TemporaryDirectory(prefix="harness-data-") as tmp:
        for rel, blob in data.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        os.environ["HARNESS_DATA_DIR"] = tmp
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("HARNESS_DATA_DIR", None)
            else:
                os.environ["HARNESS_DATA_DIR"] = before


def _run_cells(group: CellGroup, options: RunOptions, emit: Sink, telemetry, where: Machine, kind, files, own: bool):
    from harness import models

    try:
        try:
            base = kind.load_base(group.model_ref, dtype=group.dtype, device=where.device)
            base_bytes = models.param_bytes(base.model) if getattr(base, "model", None) is not None else None
            emit(ModelLoaded(f"{base.canonical_id}|{group.dtype}", {
                "model": base.canonical_id,
                "dtype": group.dtype,
                "param_bytes": base_bytes,
                "chat_template_hash": getattr(base, "chat_template_hash", None),
                "load_time_s": base.load_time_s,
            }))
        except Exception as exc:  # a model that cannot load fails its cells, not the run
            for cell in group.cells:
                emit(error_record(cell, options, where, exc))
            return
        for cell in group.cells:
            emit(CellStarted(cell.cell_hash, cell.label, cell.limit))
            started = now_iso()

            def on_progress(done: int, total: int | None, cell_hash: str = cell.cell_hash) -> None:
                emit(CellProgress(cell_hash, done, total))

            try:
                mine = {name: files[name] for name in kind.reused_files(cell) if name in files}
                outcome = kind.run(cell, base, telemetry, on_progress, mine)
                files.update(outcome.files)
                sanity.check(outcome.cell_row, outcome.sample_rows)
                shared = options.shared_cpu_package and outcome.cell_row.get("energy_source") in CPU_PACKAGE_SOURCES
                row = {
                    **identity_row(cell, options, where),
                    **outcome.cell_row,
                    **({"energy_attributed": True} if shared else {}),
                    "compression_ratio": kind.compression_ratio(base_bytes, outcome.cell_row),
                    "status": "ok",
                    "started_at": started,
                    "finished_at": now_iso(),
                }
                series = None
                if options.telemetry_series:
                    from harness.telemetry.series import series_rows

                    series = series_rows(outcome.telemetry_samples, cell.cell_hash)
                emit(CellDone(cell.cell_hash, cell.label, row, outcome.sample_rows, series, outcome.files))
            except Exception as exc:
                emit(error_record(cell, options, where, exc, started))
        del base
    finally:
        if own:
            telemetry.close()


def identity_row(cell: Cell, options: RunOptions, where: Machine) -> dict[str, Any]:
    """The identity and provenance columns of a cell's row, for the machine it ran on."""
    return {
        "run_id": options.run_id,
        **cell.identity_columns(),
        "hardware_id": where.hardware_id,
        "device": where.device,
        "provenance_json": json.dumps(where.provenance, sort_keys=True, default=str),
    }


def error_record(cell: Cell, options: RunOptions, where: Machine, exc: BaseException,
                 started: str | None = None) -> CellDone:
    """A ``status=error`` record for ``cell``: the exception's one-line text, no samples."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    row = {
        **identity_row(cell, options, where),
        "status": "error",
        "error": text[:4000],
        "started_at": started or now_iso(),
        "finished_at": now_iso(),
    }
    return CellDone(cell.cell_hash, cell.label, row)
