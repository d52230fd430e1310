"""The ``local`` executor: every group in this process, one after the other, with progress."""

from __future__ import annotations

from harness.executors.base import EXECUTORS, CellGroup, Executor, RunOptions, Sink
from harness.executors.progress import ProgressView
from harness.executors.worker import machine, run_group


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """In-process: one telemetry session for the run (idle power measured once), groups in order."""

    def run(self, groups: list[CellGroup], options: RunOptions, sink: Sink, console) -> None:
        from harness.telemetry import Telemetry

        where = machine(options.device)
        telemetry = Telemetry(device=where.device)
        try:
            telemetry.measure_idle()
            with ProgressView(sum(len(g.cells) for g in groups), console) as view:

                def emit(event) -> None:
                    sink(event)
                    view.handle(event)

                for group in groups:
                    console.print(f"loading {group.model_ref} ({group.dtype}) on {where.device}…")
                    run_group(group, options, emit, telemetry=telemetry, where=where)
        finally:
            telemetry.close()
