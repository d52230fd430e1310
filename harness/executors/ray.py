"""The ``ray`` executor: the same cells fanned out over a Ray cluster, the same results.

Each group of cells sharing a base (``kind, model, dtype``) is split into chunks (a cell's
repeats stay together, so on one GPU), and each chunk runs as one Ray *generator task*: the
worker calls :func:`harness.executors.worker.run_group` (load the base once, run the chunk's
cells in telemetry windows on the worker's own GPU) and yields every event as it happens. The
driver multiplexes the streams with ``ray.wait``, feeds the progress bars and hands each event
to the runner's sink, the one writer: no worker writes into the results folder, so results need
no shared file system. Data files travel from the driver with the chunk.

Faults: a worker that dies (killed, node lost) ends its stream with an error; the chunk's
unfinished cells are resubmitted up to ``max_retries`` times, then written as ``status=error``
with the reason. Completed cells were written as they arrived and are never lost. Ctrl-C
cancels the tasks and keeps every completed cell.

Ray is an optional extra (``pip install .[ray]``), imported only here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.executors.base import (
    EXECUTORS,
    CellDone,
    CellGroup,
    Executor,
    ExecutorUnavailable,
    Machine,
    RunOptions,
    Sink,
)
from harness.executors.progress import ProgressView
from harness.executors.worker import error_record, machine


def import_ray():
    """The ``ray`` module.

    Raises:
        ExecutorUnavailable: Ray is not installed (names the extra to install).
    """
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable("the ray executor needs Ray: pip install '.[ray]' (make install does this)") from None
    return ray


def chunks(group: CellGroup, n_chunks: int | None, chunk_size: int | None) -> list[CellGroup]:
    """Split ``group`` into chunks of whole repeat families (cells equal but for ``repeat``).

    Args:
        n_chunks: how many chunks (at most one per family) when ``chunk_size`` is ``None``.
        chunk_size: cells per chunk (whole families, so a chunk may hold more).

    Returns:
        Chunks in run order, each a :class:`CellGroup` with the group's files and data.
    """
    families: dict[str, list] = {}
    for cell in group.cells:
        key = str({k: v for k, v in cell.identity.items() if k != "repeat"})
        families.setdefault(key, []).append(cell)
    fams = list(families.values())
    if chunk_size is not None:
        parts: list[list] = [[]]
        for fam in fams:
            if parts[-1] and len(parts[-1]) + len(fam) > chunk_size:
                parts.append([])
            parts[-1].extend(fam)
    else:
        k = max(1, min(n_chunks or 1, len(fams)))
        size = math.ceil(len(fams) / k)
        parts = [[c for fam in fams[i : i + size] for c in fam] for i in range(0, len(fams), size)]
    return [CellGroup(group.kind, group.model_ref, group.dtype, cells, dict(group.files), group.data)
            for cells in parts if cells]


def ship_data(group: CellGroup) -> dict[str, bytes]:
    """The group's data files read from the driver's ``HARNESS_DATA_DIR`` (empty without one:
    workers then use the dataset hub, as the driver would)."""
    from harness.core.cell import KINDS

    root = os.environ.get("HARNESS_DATA_DIR")
    if not root:
        return {}
    out = {}
    for rel in KINDS.get(group.kind)().data_files(group.cells):
        path = Path(root) / rel
        if path.is_file():
            out[rel] = path.read_bytes()
    return out


def _remote(ray):
    """The generator task every chunk runs (defined once Ray is imported)."""

    @ray.remote(max_retries=0)
    def run_chunk(group: CellGroup, options: RunOptions, threads: int):
        import queue
        import threading

        import torch

        from harness.executors.worker import run_group

        torch.set_num_threads(max(1, threads))
        events: queue.Queue = queue.Queue()
        end = object()
        failure: list[BaseException] = []

        def work() -> None:
            try:
                run_group(group, options, events.put)
            except BaseException as exc:  # re-raised in the task: the driver sees the worker fail
                failure.append(exc)
            finally:
                events.put(end)

        threading.Thread(target=work, daemon=True, name="harness-run-group").start()
        while (event := events.get()) is not end:
            yield event
        if failure:
            raise failure[0]

    return run_chunk


@dataclass
class _Chunk:
    group: CellGroup
    attempt: int = 0
    done: set[str] = field(default_factory=set)
    where: Machine | None = None

    def remaining(self) -> list:
        return [c for c in self.group.cells if c.cell_hash not in self.done]


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Groups as Ray generator tasks, streamed back to the driver (see the module docstring)."""

    def run(self, groups: list[CellGroup], options: RunOptions, sink: Sink, console) -> None:
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            address = self.settings.address
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
            console.print(f"ray: {'connecting to ' + address if address else 'starting a local instance'}…")
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorUnavailable(f"ray: cannot reach {address or 'a local instance'}: {exc}") from None
        try:
            self._run(ray, groups, options, sink, console)
        finally:
            if started:
                ray.shutdown()

    def _slots(self, ray, gpu: bool) -> int:
        """How many workers the cluster runs at once with this executor's resources."""
        total = ray.cluster_resources()
        if gpu:
            return max(1, int(total.get("GPU", 0) // max(self.resources.num_gpus, 1)))
        return max(1, int(total.get("CPU", 1) // self.resources.num_cpus))

    def _run(self, ray, groups: list[CellGroup], options: RunOptions, sink: Sink, console) -> None:
        gpu = options.device.startswith("cuda") or (options.device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
        slots = self._slots(ray, gpu)
        opts = {"num_cpus": self.resources.num_cpus, **({"num_gpus": self.resources.num_gpus} if gpu else {})}
        threads = int(self.resources.num_cpus)
        options = RunOptions(options.device, options.run_id, options.telemetry_series,
                             shared_cpu_package=not gpu and slots > 1)
        run_chunk = _remote(ray).options(**opts)
        work: list[_Chunk] = []
        for group in groups:
            group.data = ship_data(group)
            work += [_Chunk(c) for c in chunks(group, slots, self.settings.chunk_size)]
        driver = None
        with ProgressView(sum(len(c.group.cells) for c in work), console) as view:
            pending = {run_chunk.remote(c.group, options, threads): c for c in work}
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    gen = ready[0]
                    chunk = pending[gen]
                    try:
                        event = ray.get(next(gen))
                    except StopIteration:
                        del pending[gen]
                        continue
                    except (ray.exceptions.RayTaskError, ray.exceptions.UnserializableException) as exc:
                        del pending[gen]  # the task itself raised (not a lost worker): no retry
                        self._fail(chunk, RuntimeError(_last_line(exc)), options, sink, view,
                                   driver := driver or machine(options.device))
                        continue
                    except (ray.exceptions.RayError, OSError) as exc:  # the worker died
                        del pending[gen]
                        retry = self._fault(chunk, exc, options, sink, view, driver := driver or machine(options.device))
                        if retry is not None:
                            console.print(f"[yellow]ray: a worker was lost ({type(exc).__name__}); retrying "
                                          f"{len(retry.group.cells)} cell(s), attempt {retry.attempt}[/]")
                            pending[run_chunk.remote(retry.group, options, threads)] = retry
                        continue
                    if isinstance(event, Machine):
                        chunk.where = event
                    if isinstance(event, CellDone):
                        chunk.done.add(event.cell_hash)
                        chunk.group.files.update(event.files)
                    sink(event)
                    view.handle(event)
            except KeyboardInterrupt:
                for gen in pending:
                    ray.cancel(gen, force=True)
                raise

    def _fault(self, chunk: _Chunk, exc: BaseException, options: RunOptions, sink: Sink, view: ProgressView,
               driver: Machine) -> _Chunk | None:
        """A chunk whose worker died: its unfinished cells as a retry, or (retries spent) as error records."""
        left = chunk.remaining()
        if not left:
            return None
        if chunk.attempt < self.settings.max_retries:
            group = CellGroup(chunk.group.kind, chunk.group.model_ref, chunk.group.dtype, left,
                              dict(chunk.group.files), chunk.group.data)
            return _Chunk(group, attempt=chunk.attempt + 1)
        reason = RuntimeError(f"ray worker lost after {chunk.attempt + 1} attempt(s): {type(exc).__name__}: "
                              f"{_last_line(exc)}")
        self._fail(chunk, reason, options, sink, view, driver)
        return None

    @staticmethod
    def _fail(chunk: _Chunk, reason: BaseException, options: RunOptions, sink: Sink, view: ProgressView,
              driver: Machine) -> None:
        """Every unfinished cell of ``chunk`` as a ``status=error`` record naming ``reason``."""
        for cell in chunk.remaining():
            record = error_record(cell, options, chunk.where or driver, reason)
            sink(record)
            view.handle(record)


def _last_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's text (a remote traceback ends with the error)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
