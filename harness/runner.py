"""Run a suite: expand cells, skip completed ones, run the rest, write results, summarise.

The whole path in one screen (DESIGN.md §2): suite → cells (stable hashes) → resume check
→ for each (cell kind, model, dtype) the kind's cell runner loads the base once → each cell
through its cell runner inside a telemetry window → atomic per-cell Parquet files → summary
table and Pareto front. Evaluation cells share a language model; training cells
(:mod:`harness.finetune.cell`) share a pretrained encoder that each cell copies and trains.

A failing cell is recorded with ``status=error`` and its error text, and the run goes on;
Ctrl-C or a crash loses at most the cell in flight. Nothing to do → no model is loaded.
"""

from __future__ import annotations

import datetime as _dt
import os
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness import suite as suite_mod
from harness.cells import CELL_RUNNERS
from harness.results import CellExistsError, RunStore, find_run, new_run_id, read_cells, summary_table
from harness.results.summary import spread_table
from harness.telemetry.series import series_rows
from harness.results.index import write_cells_index


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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


def _identity_columns(cell: suite_mod.Cell, run_id: str, hardware_id: str, device: str) -> dict:
    return {
        "run_id": run_id,
        "cell_hash": cell.cell_hash,
        "params_hash": cell.params_hash,
        "hardware_id": hardware_id,
        "suite": cell.suite,
        "model": cell.model_id,
        "dtype": cell.variant.dtype,
        "device": device,
        "batch_size": cell.batch_size,
        "variant": cell.variant.name,
        "adapter": cell.variant.adapter,
        "params_json": suite_mod.stable_json(cell.params),
        "task": cell.task,
        "task_version": cell.task_version,
        "limit": cell.limit,
        "repeat": cell.repeat,
        "seed": cell.seed,
        "cell_kind": cell.kind,
    }


def run_suite(
    suite_path: str | Path,
    results_root: str | Path = "results",
    limit: int | None = None,
    force: bool = False,
    device: str | None = None,
    console: Console | None = None,
    telemetry_series: bool = False,
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

    Raises:
        SuiteError: the suite is invalid (before any model is loaded).
    """
    from harness.models import resolve_device

    console = console or Console()
    _quiet_libraries()
    suite = suite_mod.load(suite_path)
    cells = suite_mod.expand(suite, limit=limit)
    shash = suite_mod.suite_hash(suite, limit)
    root = Path(results_root)
    run_id = find_run(root, suite.name, shash) or new_run_id(suite.name)
    store = RunStore(root, run_id)
    done = store.completed_cells()
    pending = [c for c in cells if force or c.cell_hash not in done]
    skipped = len(cells) - len(pending)
    if not store.read_run_json():
        store.write_run_json(
            {
                "suite": suite.name,
                "suite_hash": shash,
                "suite_path": str(suite_path),
                "suite_config": suite.canonical(),
                "limit": limit,
                "started_at": _now(),
                "cells": [c.cell_hash for c in cells],
                "data_dir": os.environ.get("HARNESS_DATA_DIR") or None,
            }
        )
    console.print(
        f"[bold]{suite.name}[/]: {len(cells)} cells, {skipped} already complete, {len(pending)} to run "
        f"→ {store.run_dir}"
    )
    ran = failed = 0
    if pending:
        _check_inputs(pending, device or suite.defaults.device, resolve_device)
        ran, failed = _run_cells(
            pending, store, device or suite.defaults.device, console, resolve_device, force, telemetry_series
        )
        store.write_run_json({"finished_at": _now()})
    _index(store)
    cells_df = read_cells(store.run_dir)
    if not cells_df.empty:
        console.print(summary_table(cells_df, title=f"{suite.name} — {run_id}"))
        spread = spread_table(cells_df)
        if spread is not None:
            console.print(spread)
    console.print(f"results: {store.run_dir}")
    return RunReport(store.run_dir, run_id, len(cells), skipped, ran, failed)


def _index(store: RunStore) -> None:
    """Refresh the run's cells index (a read cache for large results roots; never fatal)."""
    try:
        write_cells_index(store.run_dir)
    except Exception as exc:  # noqa: BLE001 - the cell files stay the truth
        warnings.warn(f"could not write the cells index of {store.run_dir}: {exc}", stacklevel=2)


def check_device(device_setting: str, resolve_device=None) -> str:
    """The torch device ``device_setting`` (``auto``/``cpu``/``cuda[:N]``) resolves to, checked
    before any model loads (used by ``run`` and ``serve``).

    Raises:
        SuiteError: not one of those forms, or a CUDA device was asked for and torch sees none.
    """
    import re

    if not re.match(suite_mod.DEVICE_PATTERN, device_setting):
        raise suite_mod.SuiteError(f"device {device_setting!r}: use auto, cpu, cuda or cuda:N")
    if resolve_device is None:
        from harness.models import resolve_device
    device = resolve_device(device_setting)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise suite_mod.SuiteError(f"device {device_setting!r}: torch sees no CUDA device (use cpu or auto)")
    return device


def _check_inputs(pending, device_setting: str, resolve_device) -> None:
    """Fail before any model loads when the device or a task's data is unusable.

    Raises:
        SuiteError: a CUDA device was asked for and torch sees none.
        DataError: a task's data file is missing or malformed.
    """
    from harness.tasks import get_task

    check_device(device_setting, resolve_device)
    for task in sorted({c.task for c in pending if c.kind == "eval"}):
        get_task(task).load_docs()
    for kind in sorted({c.kind for c in pending} - {"eval"}):
        CELL_RUNNERS[kind].check_inputs([c for c in pending if c.kind == kind])


def _run_cells(
    pending,
    store: RunStore,
    device_setting: str,
    console: Console,
    resolve_device,
    force: bool,
    telemetry_series: bool = False,
) -> tuple[int, int]:
    from harness import models
    from harness.telemetry import Telemetry, collect_provenance, hardware_id

    device = resolve_device(device_setting)
    provenance = collect_provenance(device)
    hw_id = hardware_id(provenance)
    telemetry = Telemetry(device=device)
    telemetry.measure_idle()
    store.write_run_json({"provenance": provenance, "hardware_id": hw_id, "device": device})
    ran = failed = 0
    groups: dict[tuple[str, str, str], list] = {}
    for cell in pending:
        groups.setdefault((cell.kind, cell.model_ref, cell.variant.dtype), []).append(cell)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    try:
        with progress:
            overall = progress.add_task("cells", total=len(pending))
            for (kind, ref, dtype), group in groups.items():
                runner = CELL_RUNNERS[kind]
                console.print(f"loading {ref} ({dtype}) on {device}…")
                try:
                    if kind == "eval":
                        base = models.load(ref, dtype=dtype, device=device)
                    else:  # other kinds load their own base (e.g. an encoder to fine-tune)
                        base = runner.load_base(ref, dtype=dtype, device=device)
                    base_bytes = models.param_bytes(base.model)
                    loaded = store.read_run_json().get("models", {})
                    loaded[f"{base.canonical_id}|{dtype}"] = {
                        "model": base.canonical_id,
                        "dtype": dtype,
                        "param_bytes": base_bytes,
                        "chat_template_hash": getattr(base, "chat_template_hash", None),
                        "load_time_s": base.load_time_s,
                    }
                    store.write_run_json({"models": loaded})
                except Exception as exc:  # a model that cannot load fails its cells, not the run
                    for cell in group:
                        _write_error(store, cell, hw_id, device, exc)
                        failed += 1
                        progress.advance(overall)
                    continue
                for cell in group:
                    label = f"{cell.variant.name} · {cell.task}" + (f" · r{cell.repeat}" if cell.repeat else "")
                    bar = progress.add_task(label, total=cell.limit or None)

                    def on_progress(n_done: int, n_total: int, bar=bar) -> None:
                        progress.update(bar, completed=n_done, total=n_total)

                    started = _now()
                    try:
                        outcome = runner.run(cell, base, telemetry, on_progress, work_dir=store.run_dir)
                        row = {
                            **_identity_columns(cell, store.run_id, hw_id, device),
                            **outcome.cell_row,
                            "compression_ratio": base_bytes / outcome.cell_row["param_bytes"] if kind == "eval" else None,
                            "status": "ok",
                            "started_at": started,
                            "finished_at": _now(),
                        }
                        if telemetry_series:
                            store.write_telemetry_series(
                                cell.cell_hash, series_rows(outcome.telemetry_samples, cell.cell_hash)
                            )
                        store.write_cell(row, outcome.sample_rows, overwrite=force)
                        ran += 1
                    except Exception as exc:
                        console.print(f"[red]cell {label} failed:[/] {type(exc).__name__}: {exc}")
                        _write_error(store, cell, hw_id, device, exc, started)
                        failed += 1
                    progress.update(bar, visible=False)
                    progress.advance(overall)
                del base
    finally:
        telemetry.close()
    return ran, failed


def _write_error(store: RunStore, cell, hw_id: str, device: str, exc: BaseException, started: str | None = None):
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    row = {
        **_identity_columns(cell, store.run_id, hw_id, device),
        "status": "error",
        "error": text[:4000],
        "started_at": started or _now(),
        "finished_at": _now(),
    }
    try:
        store.write_cell(row, [], overwrite=False)
    except CellExistsError:  # --force re-run of a complete cell failed: keep the good result
        pass
