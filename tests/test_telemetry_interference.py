"""Other work on the machine during a window (issue 16, item 14): a scripted ``/proc`` for the
CPU share and a scripted NVML for the other GPU processes."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest

from harness.telemetry import Telemetry
from harness.telemetry.clock import FakeClock
from harness.telemetry.result import combine_checks
from harness.telemetry.interference import (
    OTHER_CPU_SHARE_LIMIT,
    CpuProbe,
    CpuSnapshot,
    interference_flag,
    machine_ticks,
    other_cpu_share,
    process_ticks,
)

from fake_nvml import GIB, gpus  # noqa: F401  (gpus is a fixture)

PID = os.getpid()


class FakeProc:
    """A ``/proc`` tree: the machine's ``stat`` and ``<pid>/stat`` of our processes (ticks)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def set(self, total: int, busy: int, own: dict[int, int], reaped: int = 0, steal: int = 0) -> None:
        idle = total - busy
        user = busy - steal
        # cpu: user nice system idle iowait irq softirq steal guest guest_nice
        (self.root / "stat").write_text(f"cpu  {user} 0 0 {idle} 0 0 0 {steal} 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")
        for pid, ticks in own.items():
            (self.root / str(pid)).mkdir(exist_ok=True)
            children = reaped if pid == PID else 0
            fields = ["S"] + ["0"] * 10 + [str(ticks), "0", str(children), "0"] + ["0"] * 30
            (self.root / str(pid) / "stat").write_text(f"{pid} (py (th) on) " + " ".join(fields) + "\n")


@pytest.fixture
def proc(tmp_path) -> FakeProc:
    return FakeProc(tmp_path)


def _cpu_window(proc: FakeProc, before: tuple, after: tuple) -> object:
    tel = Telemetry("cpu", sample_period_s=None, clock=FakeClock(), proc_root=proc.root)
    proc.set(*before)
    tel.begin("k")
    tel.clock.advance(2.0)
    proc.set(*after)
    res = tel.end("k")
    tel.close()
    return res


def test_other_processes_share_of_the_machine_cpu(proc):
    # 1000 ticks of machine time pass; 600 busy, 300 of them ours: others took 30 %
    res = _cpu_window(proc, (1000, 300, {PID: 100}), (2000, 900, {PID: 400}))
    assert res.other_cpu_share == pytest.approx(0.3)
    assert res.flag_interference is True
    assert res.as_columns()["other_cpu_share"] == pytest.approx(0.3)


def test_a_quiet_machine_is_not_flagged(proc):
    res = _cpu_window(proc, (1000, 300, {PID: 100}), (2000, 750, {PID: 500}))  # others 5 %
    assert res.other_cpu_share == pytest.approx(0.05) and res.flag_interference is False
    assert res.other_gpu_processes is None  # a CPU window knows no GPU


def test_steal_time_counts_as_others(proc):
    # a hypervisor gave 200 of 1000 ticks to another guest: busy for us, not our work
    res = _cpu_window(proc, (1000, 300, {PID: 100}, 0, 0), (2000, 900, {PID: 500}, 0, 200))
    assert res.other_cpu_share == pytest.approx(0.2) and res.flag_interference is True


def test_our_children_are_ours(proc):
    child = 999_999  # e.g. the GPU sampler's process, or τ²'s subprocess
    probe = CpuProbe(PID, proc.root, children_of=lambda pid: [child])
    proc.set(1000, 300, {PID: 100, child: 0}, reaped=50)
    s0 = probe.snapshot()
    proc.set(2000, 900, {PID: 200, child: 300}, reaped=150)  # +100 own, +300 child, +100 reaped
    s1 = probe.snapshot()
    assert (s0.own, s1.own) == (150, 650)
    assert other_cpu_share(s0, s1) == pytest.approx(0.1)


def test_proc_parsing_and_edges(proc):
    proc.set(1000, 300, {PID: 42}, reaped=8)
    assert machine_ticks(proc.root) == (1000, 300)
    assert process_ticks(PID, proc.root) == 42 and process_ticks(PID, proc.root, children=True) == 50
    assert process_ticks(123, proc.root) is None and machine_ticks(proc.root / "none") is None
    assert other_cpu_share(None, CpuSnapshot(1, 1, 1)) is None
    assert other_cpu_share(CpuSnapshot(5, 1, 1), CpuSnapshot(5, 1, 1)) is None  # no time passed
    assert other_cpu_share(CpuSnapshot(0, 0, 0), CpuSnapshot(100, 10, 40)) == 0.0  # clamped, never < 0
    assert machine_ticks() is not None  # this machine's real /proc/stat parses


def _gpu_window(fake, proc: FakeProc, cpu_others: int = 0):
    clock = FakeClock()
    tel = Telemetry("cuda:0", sample_period_s=None, clock=clock, cuda_visible_devices="0", proc_root=proc.root)
    proc.set(1000, 300, {PID: 100})
    tel.begin("k")
    for _ in range(2):
        fake.step(clock, 1.0)
        tel.sampler.tick()
    proc.set(2000, 800 + cpu_others, {PID: 600})
    res = tel.end("k")
    tel.close()
    return res


def test_another_busy_process_on_our_gpu_is_interference(gpus, proc):
    gpus.proc_util[0] = [SimpleNamespace(pid=PID, smUtil=80), SimpleNamespace(pid=4242, smUtil=40)]
    res = _gpu_window(gpus, proc)
    assert res.other_cpu_share == 0.0
    assert res.other_gpu_processes == 2  # pid 1 (listed, 7 GiB) and pid 4242 (ran kernels)
    assert res.other_gpu_memory_bytes == 7 * GIB
    assert res.other_gpu_util_max == pytest.approx(0.4)  # ours (80 %) is not counted
    assert res.flag_interference is True


def test_an_idle_process_holding_memory_is_not_interference(gpus, proc):
    res = _gpu_window(gpus, proc)  # pid 1 holds 7 GiB, NVML has no utilisation sample of it
    assert res.other_gpu_processes == 1 and res.other_gpu_util_max == 0.0
    assert res.flag_interference is False


def test_a_gpu_to_ourselves(gpus, proc):
    gpus.others[0] = []
    res = _gpu_window(gpus, proc)
    assert (res.other_gpu_processes, res.other_gpu_memory_bytes, res.flag_interference) == (0, 0, False)


def test_unknown_utilisation_of_another_process_is_flagged(gpus, proc):
    gpus.mock.nvmlDeviceGetProcessUtilization.side_effect = pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
    res = _gpu_window(gpus, proc)
    assert res.other_gpu_processes == 1 and res.other_gpu_util_max is None
    assert res.flag_interference is True


def test_our_pid_invisible_to_nvml_means_unknown(gpus, proc):
    gpus.proc_used[0] = None
    gpus.mock.nvmlDeviceGetComputeRunningProcesses.side_effect = lambda h: [
        SimpleNamespace(pid=77, usedGpuMemory=GIB)]  # a container: NVML lists host pids only
    res = _gpu_window(gpus, proc)
    assert res.other_gpu_processes is None and res.other_gpu_memory_bytes is None
    assert res.flag_interference is False


def test_cpu_interference_flags_a_gpu_window_too(gpus, proc):
    gpus.others[0] = []
    res = _gpu_window(gpus, proc, cpu_others=200)
    assert res.other_cpu_share == pytest.approx(0.2) and res.flag_interference is True


def test_flag_rule():
    assert interference_flag(OTHER_CPU_SHARE_LIMIT + 0.01, None, None) is True
    assert interference_flag(OTHER_CPU_SHARE_LIMIT, 0, 0.0) is False
    assert interference_flag(None, 1, 0.06) is True and interference_flag(None, 1, 0.05) is False
    assert interference_flag(None, 0, None) is False and interference_flag(None, None, None) is False


def test_a_cell_of_several_windows_keeps_every_windows_flags():
    """A training cell measures a train and an eval window: either window's flag flags the cell."""
    train = {"flag_interference": True, "flag_energy_disagree": False, "flag_memory_order": False,
             "other_cpu_share": 0.4, "other_gpu_processes": None, "other_gpu_memory_bytes": None,
             "other_gpu_util_max": None}
    evaluate = {"flag_interference": False, "flag_energy_disagree": True, "flag_memory_order": False,
                "other_cpu_share": 0.02, "other_gpu_processes": 1, "other_gpu_memory_bytes": 5, "other_gpu_util_max": 0.0}
    assert combine_checks(train, evaluate) == {
        "flag_energy_disagree": True, "flag_memory_order": False, "flag_interference": True,
        "other_cpu_share": 0.4, "other_gpu_processes": 1, "other_gpu_memory_bytes": 5, "other_gpu_util_max": 0.0}
