"""Other work on the machine during a window: was it quiet enough for its timings and energy?

A cell measured while other jobs ran is slower and costlier for reasons that are not the
variant's (a public case: one run's gsm8k p50 latency of 587 s against 31 s for math500, same
model and settings, with nothing in the results to say the machine was busy). Per window:

CPU (Linux ``proc(5)``): ``/proc/stat``'s first line gives the whole machine's CPU time in clock
ticks (``USER_HZ``): total = user + nice + system + idle + iowait + irq + softirq + steal (guest
time is already inside user/nice), busy = total − idle − iowait (steal counts as busy: a
hypervisor gave that time to another guest). This process's own time is ``utime + stime`` of
``/proc/<pid>/stat`` for itself and its live descendants (e.g. the GPU sampler's child process,
τ²'s subprocess), plus its reaped children's ``cutime + cstime``. Then::

    other_cpu_share = (Δbusy − Δown) / Δtotal        (0..1, clamped; None when Δtotal = 0)

the share of the machine's CPU capacity that other processes (and unattributed kernel work) used
during the window. Ticks are 10 ms, so on a short window the share is coarse.

GPU (NVML, :mod:`.nvml`): the processes other than ours that NVML lists on the used devices
(``nvmlDeviceGetComputeRunningProcesses`` / ``...GraphicsRunningProcesses``, read at every sample),
their summed memory, and their SM utilisation (``nvmlDeviceGetProcessUtilization`` over the
window, read at its end from NVML's sample buffer). This is optimum-benchmark's device-isolation
check (any other process on the device), extended to utilisation as its issue #88 asks
(huggingface/optimum-benchmark#88: a listed pid alone does not say whether the GPU is in use).
When NVML lists processes but not ours (a container without the host's pid namespace: NVML
reports host pids) we cannot tell ours from others: the GPU figures are ``None`` (unknown).

Flag (``flag_interference``), thresholds below::

    other_cpu_share > OTHER_CPU_SHARE_LIMIT
    or (other_gpu_processes > 0 and (other_gpu_util_max is None or other_gpu_util_max > OTHER_GPU_UTIL_LIMIT))

A flagged cell's accuracy is as good as any; its costs are not comparable (the gate refuses
cost comparisons on it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .sampler import Sample

PROC = Path("/proc")

OTHER_CPU_SHARE_LIMIT = 0.10
"""Flag when other processes kept more than 10 % of the machine's CPU capacity busy."""

OTHER_GPU_UTIL_LIMIT = 0.05
"""Flag when another process on a used GPU was kernel-busy more than 5 % of a sample period."""


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU clock ticks at one instant: the machine's ``total``/``busy`` and ``own`` (ours)."""

    total: int
    busy: int
    own: int


def machine_ticks(proc_root: Path | str = PROC) -> tuple[int, int] | None:
    """``(total, busy)`` clock ticks of the whole machine from ``/proc/stat``; ``None`` if unreadable."""
    try:
        with open(Path(proc_root) / "stat") as f:
            first = f.readline().split()
        if not first or first[0] != "cpu":
            return None
        v = [int(x) for x in first[1:9]] + [0] * max(0, 8 - len(first[1:9]))
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total, total - idle - iowait


def process_ticks(pid: int, proc_root: Path | str = PROC, children: bool = False) -> int | None:
    """``utime + stime`` (+ ``cutime + cstime`` with ``children``) of ``/proc/<pid>/stat``, ticks."""
    try:
        text = (Path(proc_root) / str(pid) / "stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
        ticks = int(fields[11]) + int(fields[12])  # fields 14, 15 of proc(5)
        if children:
            ticks += int(fields[13]) + int(fields[14])  # 16, 17: reaped children
        return ticks
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Live descendant pids of ``pid`` (psutil); ``[]`` when unknown."""
    try:
        import psutil  # noqa: PLC0415

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


@dataclass
class CpuProbe:
    """Takes :class:`CpuSnapshot` s for process ``pid`` (and its descendants)."""

    pid: int = field(default_factory=os.getpid)
    proc_root: Path | str = PROC
    children_of: Callable[[int], list[int]] = descendants

    def snapshot(self) -> CpuSnapshot | None:
        machine = machine_ticks(self.proc_root)
        own = process_ticks(self.pid, self.proc_root, children=True)
        if machine is None or own is None:
            return None
        for child in self.children_of(self.pid):
            own += process_ticks(child, self.proc_root) or 0
        return CpuSnapshot(machine[0], machine[1], own)


def other_cpu_share(s0: CpuSnapshot | None, s1: CpuSnapshot | None) -> float | None:
    """Share (0..1) of the machine's CPU capacity used by others between two snapshots."""
    if s0 is None or s1 is None or s1.total <= s0.total:
        return None
    other = (s1.busy - s0.busy) - (s1.own - s0.own)
    return min(1.0, max(0.0, other / (s1.total - s0.total)))


@dataclass
class GpuOthers:
    """Other processes on the used GPUs over one window."""

    processes: int | None
    memory_bytes: int | None
    util_max: float | None
    pids: list[int]


def gpu_others(samples: Sequence[Sample], util_by_pid: dict[int, float] | None) -> GpuOthers:
    """Summarise the ``other_procs`` probe of a window's samples and the per-process utilisation.

    ``other_procs`` per sample: per device a list of ``[pid, used_bytes | None]`` of the
    processes other than ours, or ``None`` for a device where our process was not listed (then
    ours cannot be told apart: unknown). ``util_by_pid``: SM share (0..1) per pid other than
    ours over the window, ``None`` when NVML cannot say.
    """
    pids: set[int] = set()
    seen = unknown = False
    peak_mem: int | None = None
    for s in samples:
        per_device = s.values.get("other_procs")
        if per_device is None:
            continue
        if any(d is None for d in per_device):
            unknown = True
            continue
        seen = True
        total = 0
        for device_procs in per_device:
            for pid, used in device_procs:
                pids.add(int(pid))
                total += int(used or 0)
        peak_mem = total if peak_mem is None else max(peak_mem, total)
    if unknown or not seen:
        return GpuOthers(None, None, None, [])
    pids.update(util_by_pid or {})  # a process that ran kernels between two samples counts too
    util = None if util_by_pid is None else max(util_by_pid.values(), default=0.0)
    return GpuOthers(len(pids), peak_mem, util, sorted(pids))


def interference_flag(cpu_share: float | None, gpu_processes: int | None, gpu_util_max: float | None) -> bool:
    """The module docstring's rule."""
    if cpu_share is not None and cpu_share > OTHER_CPU_SHARE_LIMIT:
        return True
    return bool(gpu_processes) and (gpu_util_max is None or gpu_util_max > OTHER_GPU_UTIL_LIMIT)


def describe(cpu_share: float | None, gpu: GpuOthers | None) -> dict[str, Any]:
    """JSON-ready details for ``WindowResult.details['interference']``."""
    return {
        "other_cpu_share": cpu_share,
        "other_gpu_pids": gpu.pids if gpu else None,
        "cpu_share_limit": OTHER_CPU_SHARE_LIMIT,
        "gpu_util_limit": OTHER_GPU_UTIL_LIMIT,
    }
