"""The sampler in a child process, for GPU runs.

Why: on a GPU the decode loop is usually launch-bound — the Python thread that issues kernels
is the bottleneck — and a sampling *thread* in the same interpreter competes with it for the
GIL at every tick (each NVML call is a ctypes call that releases and re-takes it, and pynvml
builds Python objects around every reading). In a child process the sampler cannot slow the
measured loop through the GIL, whatever the probes cost. Measured on an H200
(``benchmarks/results_gpu_check_h200.md``): both samplers' slowdowns were within that host's
13 % run-to-run noise (every 95 % interval contains 1.0), so the child process is chosen on
this argument, not on a measured difference. Zeus's power monitor likewise polls NVML outside
the measured process.

:class:`ProcessSampler` keeps :class:`~harness.telemetry.sampler.Sampler`'s interface and
storage; only the periodic ticks move: a child Python process
builds its own probes from a JSON spec, runs the same deadline loop (``Sampler.run``), keeps
the readings and hands them over when the parent asks (at window ends). The parent holds no
thread and does no work between windows. Window edges are still read in the parent
(``read_probes``) with the parent's own probes, which must therefore be stateless readers.

Clock: both processes use ``time.perf_counter`` (``CLOCK_MONOTONIC`` on Linux, one clock for
the whole machine), so child timestamps compare with the parent's window bounds.

Wire protocol (child stdin/stdout): one command per line — ``start`` (sample), ``pause``
(stop sampling, keep readings), ``flush`` (reply with the readings taken since the last
flush), ``exit``. A reply is an 8-byte big-endian length and a pickle of ``{"samples":
[(t, values), ...], "ticks": int, "missed": int, "errors": {probe: count}}``.

Spec (``kind = "nvml"``): ``{"kind": "nvml", "uuids": [...], "pid": int, "period_s": float}``:
per-device power (W), device memory used (bytes), memory of ``pid`` (bytes), utilisation
(0..1), the processes other than ``pid`` (``[[pid, bytes], ...]``, :mod:`.interference`) for the
NVML devices with these UUIDs, and the RSS of ``pid`` (bytes). ``kind =
"rss"`` samples only the RSS (used by the tests on machines without a GPU).
"""

from __future__ import annotations

import json
from collections import deque
import os
import pickle
import select
import struct
import subprocess
import sys
import time
from typing import Any, Callable, Mapping

from .memory import rss_bytes
from .sampler import DEFAULT_PERIOD_S, Probe, Sample, Sampler

_LEN = struct.Struct(">Q")


# -- child side -------------------------------------------------------------------------
def build_probes(spec: Mapping[str, Any]) -> dict[str, Probe]:
    """The probes a child samples, from its JSON ``spec`` (see the module docstring).

    Raises:
        ValueError: unknown ``kind``.
        NvmlUnavailable: ``kind = "nvml"`` and NVML cannot be opened.
    """
    pid = int(spec["pid"])
    status = f"/proc/{pid}/status"
    probes: dict[str, Probe] = {"rss_bytes": lambda: rss_bytes(status)}
    if spec["kind"] == "rss":
        return probes
    if spec["kind"] != "nvml":
        raise ValueError(f"unknown sampler spec kind {spec['kind']!r}")
    from .nvml import Nvml  # noqa: PLC0415 - only the GPU child needs NVML

    nv = Nvml.open()
    by_uuid = {d.uuid: d for d in nv.all_devices()}
    gpus = [by_uuid[u] for u in spec["uuids"] if u in by_uuid]
    probes["power_w"] = lambda: [nv.power_w(d) for d in gpus]
    probes["mem_used_bytes"] = lambda: [nv.memory_used_bytes(d) for d in gpus]
    probes["proc_mem_bytes"] = lambda: [nv.process_memory_bytes(d, pid) for d in gpus]
    probes["util"] = lambda: [nv.utilization(d) for d in gpus]
    probes["other_procs"] = lambda: [nv.other_processes(d, pid) for d in gpus]
    return probes


class _Child:
    """The child's command loop around a :class:`Sampler`."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.sampler = Sampler(build_probes(spec), float(spec.get("period_s") or DEFAULT_PERIOD_S))
        self.fd = sys.stdin.fileno()
        self.out = sys.stdout.buffer
        self.pending = b""
        self.queue: deque[str] = deque()
        self.sent = 0  # samples already flushed

    def _commands(self, timeout: float | None) -> bool:
        """Queue the command lines that arrive within ``timeout`` s (``None`` = block);
        True if any is queued. Several commands can arrive in one read: each is served
        in order, wherever the loop is (a ``flush`` right after ``start`` must not wait)."""
        if not self.queue:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if ready:
                chunk = os.read(self.fd, 4096)
                if not chunk:  # the parent is gone
                    self.queue.append("exit")
                self.pending += chunk
                *lines, self.pending = self.pending.split(b"\n")
                self.queue.extend(ln.decode().strip() for ln in lines if ln.strip())
        return bool(self.queue)

    def _flush(self) -> None:
        s = self.sampler
        new, self.sent, ticks, missed = s.state_since(self.sent)
        body = {"samples": [(x.t, dict(x.values)) for x in new], "ticks": ticks, "missed": missed,
                "errors": dict(s.probe_errors)}
        data = pickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL)
        self.out.write(_LEN.pack(len(data)) + data)
        self.out.flush()

    def _wait(self, timeout: float) -> bool:
        """``Sampler.run``'s wait: serve commands until the next tick is due; True when
        sampling must stop (``pause``; ``start`` while sampling is a no-op)."""
        end = time.perf_counter() + timeout
        while self._commands(max(0.0, end - time.perf_counter())):
            cmd = self.queue.popleft()
            if cmd == "flush":
                self._flush()
            elif cmd == "exit":
                sys.exit(0)
            elif cmd == "pause":
                return True
        return False

    def main(self) -> None:
        while self._commands(None):
            cmd = self.queue.popleft()
            if cmd == "start":
                self.sampler.run(self._wait)
            elif cmd == "flush":
                self._flush()
            elif cmd == "exit":
                return


# -- parent side ------------------------------------------------------------------------
class ProcessSampler(Sampler):
    """A :class:`Sampler` whose periodic ticks run in a child process.

    Args:
        spec: the child's probe spec (JSON-serialisable; see the module docstring).
        edge_probes: the parent's own, stateless probes, read at window edges
            (:meth:`read_probes`) — the same names and units as the child's.
        period_s: target period in seconds (> 0).

    The child is started at the first :meth:`start` and lives until :meth:`close` (or the
    parent exits: it stops when its stdin closes). If it dies, windows keep their edge
    readings and ``probe_errors["sampler_process"]`` counts the failures.
    """

    def __init__(self, spec: Mapping[str, Any], edge_probes: Mapping[str, Probe], period_s: float = DEFAULT_PERIOD_S) -> None:
        super().__init__(edge_probes, period_s)
        self.spec = {**spec, "period_s": self.period_s}
        self._proc: subprocess.Popen | None = None
        self._sampling = False
        self._child_ticks = 0
        self._child_missed = 0

    # -- child management ------------------------------------------------------------
    def _spawn(self) -> subprocess.Popen:
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, json.dumps(self.spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0,
        )

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _send(self, cmd: str) -> bool:
        if self._proc is None:
            return False
        if not self._alive():
            if self._sampling:
                self._failed()
            return False
        try:
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(cmd.encode() + b"\n")
            self._proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            self._failed()
            return False

    def _failed(self) -> None:
        self.probe_errors["sampler_process"] = self.probe_errors.get("sampler_process", 0) + 1
        self._sampling = False

    def _read_exact(self, n: int) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        buf = b""
        while len(buf) < n:
            chunk = self._proc.stdout.read(n - len(buf))
            if not chunk:
                raise EOFError("sampler process closed its output")
            buf += chunk
        return buf

    def pull(self) -> None:
        """Fetch the child's readings taken since the last pull into this sampler's store."""
        if not self._send("flush"):
            return
        try:
            body = pickle.loads(self._read_exact(_LEN.unpack(self._read_exact(_LEN.size))[0]))
        except (EOFError, OSError, pickle.UnpicklingError):
            self._failed()
            return
        with self._lock:
            for t, values in body["samples"]:
                self._samples.append(Sample(t, values))
                self._times.append(t)
            self._child_ticks, self._child_missed = body["ticks"], body["missed"]
        for name, n in body["errors"].items():
            self.probe_errors[name] = n

    # -- Sampler interface -----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._sampling and self._alive()

    def start(self) -> None:
        """Start (or resume) sampling in the child. Clears old samples."""
        if self.running:
            return
        if not self._alive():
            try:
                self._proc = self._spawn()
            except OSError:
                self._failed()
                return
        self.pull()  # drop anything the child still holds from before
        self.clear()
        self._sampling = self._send("start")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Pause the child's sampling (its readings so far stay until pulled)."""
        if self._sampling:
            self.pull()
            self._send("pause")
        self._sampling = False

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop and reap the child."""
        self.stop()
        if self._proc is not None:
            self._send("exit")
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    @property
    def missed_ticks(self) -> int:
        """Ticks the child skipped since it started (pulled fresh while sampling)."""
        if self._sampling:
            self.pull()
        with self._lock:
            return self._child_missed

    @property
    def tick_count(self) -> int:
        """Ticks the child took since it started (pulled fresh while sampling)."""
        if self._sampling:
            self.pull()
        with self._lock:
            return self._child_ticks

    def samples_between(self, t0: float, t1: float) -> list[Sample]:
        if self._sampling:
            self.pull()
        return super().samples_between(t0, t1)


_CHILD_CODE = "import json, sys; from harness.telemetry.process_sampler import _Child; _Child(json.loads(sys.argv[1])).main()"
