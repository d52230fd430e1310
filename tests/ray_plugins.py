"""Test-only plug-ins for the Ray executor's tests, imported in the driver and in every Ray
worker through ``HARNESS_PLUGINS=tests.ray_plugins`` (workers are other processes: a class
registered inside a test would not exist there).

* adapter ``crash_once``: plain greedy decoding, except that the first time any process runs it
  (a marker file decides) the worker process kills itself with SIGKILL on its third generated
  token — a worker lost in the middle of a cell, not between cells;
* ``HARNESS_FAKE_NODES=1``: each worker process poses as its own kind of node (the
  provenance's test-only ``HARNESS_TEST_NODE_ID`` = its pid), so cells get per-worker
  ``hardware_id``s.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.generation import DecodePolicy

if os.environ.get("HARNESS_FAKE_NODES") == "1" and "RAY_RAYLET_PID" in os.environ:  # Ray workers only
    os.environ["HARNESS_TEST_NODE_ID"] = f"node-{os.getpid()}"


class CrashOnceParams(AdapterParams):
    marker: str


class _CrashOnce(DecodePolicy):
    def __init__(self, marker: Path):
        self.marker = marker

    def after_token(self, row, token, text_so_far) -> None:
        if len(row.token_ids) == 3 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


@register_adapter("crash_once")
class CrashOnce(Adapter):
    paper = "(test only)"
    Params = CrashOnceParams

    def make_policy(self, tokenizer) -> DecodePolicy:
        return _CrashOnce(Path(self.params.marker))
