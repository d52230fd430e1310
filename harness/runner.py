"""Run a suite: load → expand → resume → executor → store → index → summary (DESIGN.md §2).

The suite expands into cells with stable hashes; cells already complete in the run are
skipped (resume); each kind checks its inputs before any model loads; the executor runs the
rest in groups sharing a base (:mod:`harness.executors`) and streams records back; this
module is the one writer (atomic per-cell Parquet files, kept files, ``run.json``), then
refreshes the run's index and prints the summary.

A failing cell is recorded with ``status=error`` and its error text, and the run goes on;
Ctrl-C or a crash loses at most the cells in flight. Nothing to do → no model is loaded.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.config.suite import SuiteError, expand, load, suite_hash
from harness.core.cell import KINDS
from harness.core.refs import DEVICE_PATTERN, resolve_device
from harness.core.registry import UnknownNameError
from harness.executors import EXECUTORS, CellGroup, RunOptions
from harness.executors.base import CellDone, Machine, ModelLoaded
from harness.executors.worker import now_iso
from harness.results import CellExistsError, RunStore, find_run, new_run_id, read_cells, summary_table
from harness.results.index import write_cells_index
from harness.results.summary import spread_table


def _quiet_libraries() -> None:
    """Our progress bars replace lm-eval's and transformers' own (tqdm) bars and chatter."""
    import logging

    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("lm_eval", "lm-eval", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


@dataclass
class RunReport:
    """What :func:`run_suite` did: the run directory and the cell counts."""

    run_dir: Path
    run_id: str
    total: int
    skipped: int
    ran: int
    failed: int


def run_suite(
    suite_path: str | Path,
    results_root: str | Path = "results",
    limit: int | None = None,
    force: bool = False,
    device: str | None = None,
    console: Console | None = None,
    telemetry_series: bool = False,
    executor: str | None = None,
    executor_options: dict | None = None,
) -> RunReport:
    """Run (or resume) a suite into ``results_root``.

    Args:
        suite_path: suite YAML path.
        results_root: results root; runs land in ``<root>/runs/<run_id>/``.
        limit: samples per task (overrides the suite's default).
        force: re-run cells that are already complete.
        device: overrides the suite's device (``auto``/``cpu``/``cuda``...).
        console: where progress and the summary go.
        telemetry_series: also write each cell's probe readings to
            ``<run>/telemetry/<cell_hash>.parquet`` (see :mod:`harness.telemetry.series`).
        executor: a name registered in :data:`harness.executors.EXECUTORS` (default: the
            suite's ``executor.name``, else ``local``).
        executor_options: overrides of the suite's ``executor:`` settings (e.g. ``address``,
            ``max_retries``); ``None`` values are ignored.

    Raises:
        SuiteError: the suite, device or executor is invalid (before any model is loaded).
        DataError: a task's data is missing or malformed (before any model is loaded).
    """
    console = console or Console()
    _quiet_libraries()
    suite = load(suite_path)
    overrides = {k: v for k, v in {**(executor_options or {}), "name": executor}.items() if v is not None}
    settings = suite.executor.model_copy(update=overrides)
    try:
        runner = EXECUTORS.get(settings.name)(settings, suite.resources)
    except UnknownNameError as exc:
        raise SuiteError(f"executor: {exc}") from None
    cells = expand(suite, limit=limit)
    device_setting = device or suite.defaults.device
    shash = suite_hash(suite, limit)
    root = Path(results_root)
    run_id = find_run(root, suite.name, shash) or new_run_id(suite.name)
    store = RunStore(root, run_id)
    done = store.completed_cells()
    pending = [c for c in cells if force or c.cell_hash not in done]
    skipped = len(cells) - len(pending)
    if pending:  # nothing is written for a run that fails its checks
        resolved = check_device(device_setting)
        for kind in sorted({c.kind for c in pending}):
            KINDS.get(kind)().check_inputs([c for c in pending if c.kind == kind])
            KINDS.get(kind)().check_device([c for c in pending if c.kind == kind], resolved)
    if not store.read_run_json():
        store.write_run_json({
            "suite": suite.name,
            "suite_hash": shash,
            "suite_path": str(suite_path),
            "suite_config": suite.canonical(),
            "limit": limit,
            "started_at": now_iso(),
            "cells": [c.cell_hash for c in cells],
        })
    console.print(
        f"[bold]{suite.name}[/]: {len(cells)} cells, {skipped} already complete, {len(pending)} to run "
        f"→ {store.run_dir}"
    )
    writer = _Writer(store, force)
    if pending:
        options = RunOptions(device=device_setting, run_id=run_id, telemetry_series=telemetry_series)
        runner.run(_groups(pending, store), options, writer, console)
        store.write_run_json({"finished_at": now_iso()})
    _index(store)
    cells_df = read_cells(store.run_dir)
    if not cells_df.empty:
        console.print(summary_table(cells_df, title=f"{suite.name} — {run_id}"))
        spread = spread_table(cells_df)
        if spread is not None:
            console.print(spread)
    console.print(f"results: {store.run_dir}")
    return RunReport(store.run_dir, run_id, len(cells), skipped, writer.ran, writer.failed)


def _groups(pending, store: RunStore) -> list[CellGroup]:
    """Pending cells grouped by ``(kind, model, dtype)`` in run order, each group with the kept
    files its cells may reuse (read from the run directory now)."""
    groups: dict[tuple[str, str, str], CellGroup] = {}
    for cell in pending:
        group = groups.setdefault(cell.group_key, CellGroup(*cell.group_key, cells=[]))
        group.cells.append(cell)
        for name in KINDS.get(cell.kind)().reused_files(cell):
            data = store.read_file(name)
            if data is not None:
                group.files[name] = data
    return list(groups.values())


class _Writer:
    """The driver's sink: writes each record as it arrives (the only writer of the run)."""

    def __init__(self, store: RunStore, force: bool):
        self.store, self.force = store, force
        self.ran = self.failed = 0

    def __call__(self, event) -> None:
        store = self.store
        if isinstance(event, Machine):
            meta = store.read_run_json()
            machines = meta.get("machines", {})
            if event.hardware_id not in machines:
                machines[event.hardware_id] = event.provenance
                update = {"machines": machines}
                if "provenance" not in meta:  # the first machine: what single-machine readers show
                    update |= {"provenance": event.provenance, "hardware_id": event.hardware_id, "device": event.device}
                store.write_run_json(update)
        elif isinstance(event, ModelLoaded):
            models = store.read_run_json().get("models", {})
            models[event.key] = event.info
            store.write_run_json({"models": models})
        elif isinstance(event, CellDone):
            if event.ok:
                for name, data in event.files.items():
                    store.write_file(name, data)
                if event.series is not None:
                    store.write_telemetry_series(event.cell_hash, event.series)
                store.write_cell(event.row, event.sample_rows, overwrite=self.force)
                self.ran += 1
            else:
                try:
                    store.write_cell(event.row, [], overwrite=False)
                except CellExistsError:  # --force re-run of a complete cell failed: keep the good result
                    pass
                self.failed += 1


def _index(store: RunStore) -> None:
    """Refresh the run's cells index (a read cache for large results roots; never fatal)."""
    try:
        write_cells_index(store.run_dir)
    except Exception as exc:  # noqa: BLE001 - the cell files stay the truth
        warnings.warn(f"could not write the cells index of {store.run_dir}: {exc}", stacklevel=2)


def check_device(device_setting: str) -> str:
    """The torch device ``device_setting`` (``auto``/``cpu``/``cuda[:N]``) resolves to, checked
    before any model loads (used by ``run`` and ``serve``).

    Raises:
        SuiteError: not one of those forms, or a CUDA device was asked for and torch sees none.
    """
    if not re.match(DEVICE_PATTERN, device_setting):
        raise SuiteError(f"device {device_setting!r}: use auto, cpu, cuda or cuda:N")
    device = resolve_device(device_setting)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SuiteError(f"device {device_setting!r}: torch sees no CUDA device (use cpu or auto)")
    return device
