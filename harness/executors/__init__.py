"""Executors: where the cells of a run execute. ``local`` (in-process, the default) is one
file, ``ray`` (a Ray cluster; Ray imported only when it runs) another; a new executor is a new
file here registering in :data:`EXECUTORS` (discovered).
The worker function every executor calls is :func:`harness.executors.worker.run_group`."""

from harness.core.registry import discover
from harness.executors.base import EXECUTORS, CellGroup, Executor, ExecutorUnavailable, RunOptions

discover(__name__)

__all__ = ["EXECUTORS", "CellGroup", "Executor", "ExecutorUnavailable", "RunOptions"]
