"""A scripted, autospecced pynvml for the telemetry tests (no GPU needed).

After Zeus's tests (``tests/monitor/test_energy.py``): ``pynvml`` patched with autospec, energy
counters that only rise as fake time passes (``FakeGpus.step``).
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from unittest.mock import create_autospec

import pynvml
import pytest

from harness.telemetry import nvml as nvml_mod

GIB = 1024**3


class FakeGpus:
    """Scripted NVML state: energy counters integrate power over fake time."""

    def __init__(self, n: int = 4, power_w: float = 100.0) -> None:
        self.n = n
        self.handles = [SimpleNamespace(i=i) for i in range(n)]
        self.uuids = [f"GPU-fake-{i}" for i in range(n)]
        self.power_w = [power_w + 10 * i for i in range(n)]
        self.energy_mj = [1_000_000.0 * (i + 1) for i in range(n)]
        self.counter_scale = [1.0] * n  # the counter integrates power_w x this (0 = a stuck counter)
        self.counter_supported = [True] * n
        self.instant_supported = [True] * n
        self.mem_used = [GIB * (i + 1) for i in range(n)]
        self.proc_used = [GIB // 2] * n
        self.util = [50] * n
        self.names = ["Fake H200"] * n
        self.power_readable = [True] * n
        self.pci = [f"00000000:{0x18 + 0x10 * i:02X}:00.0" for i in range(n)]  # NVML index = PCI order here
        self.others = [[SimpleNamespace(pid=1, usedGpuMemory=7 * GIB)] for _ in range(n)]  # other processes
        self.proc_util: list[list[SimpleNamespace]] = [[] for _ in range(n)]  # nvmlDeviceGetProcessUtilization
        self.init_error: Exception | None = None

    def step(self, clock: FakeClock, dt: float) -> None:
        clock.advance(dt)
        for i in range(self.n):
            self.energy_mj[i] += self.power_w[i] * self.counter_scale[i] * dt * 1000.0

    def module(self):
        m = create_autospec(pynvml)
        for name in ("NVMLError", "NVMLError_NotSupported", "NVMLError_LibraryNotFound",
                     "NVML_SUCCESS", "NVML_FI_DEV_POWER_INSTANT", "NVML_ERROR_NOT_FOUND"):
            setattr(m, name, getattr(pynvml, name))

        def init():
            if self.init_error is not None:
                raise self.init_error

        def energy(h):
            if not self.counter_supported[h.i]:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return int(self.energy_mj[h.i])

        def fields(h, ids):
            assert ids == [pynvml.NVML_FI_DEV_POWER_INSTANT]
            ok = self.instant_supported[h.i] and self.power_readable[h.i]
            return [SimpleNamespace(nvmlReturn=0 if ok else pynvml.NVML_ERROR_NOT_SUPPORTED,
                                    value=SimpleNamespace(uiVal=int(self.power_w[h.i] * 1000)))]

        def by_uuid(u):
            if u not in self.uuids:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
            return self.handles[self.uuids.index(u)]

        m.nvmlInit.side_effect = init
        m.nvmlDeviceGetCount.side_effect = lambda: self.n
        m.nvmlDeviceGetHandleByIndex.side_effect = lambda i: self.handles[i]
        m.nvmlDeviceGetHandleByUUID.side_effect = by_uuid
        m.nvmlDeviceGetUUID.side_effect = lambda h: self.uuids[h.i]
        m.nvmlDeviceGetName.side_effect = lambda h: self.names[h.i]
        m.nvmlDeviceGetTotalEnergyConsumption.side_effect = energy
        m.nvmlDeviceGetFieldValues.side_effect = fields
        def power(h):
            if not self.power_readable[h.i]:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
            return int(self.power_w[h.i] * 1000)

        m.nvmlDeviceGetPowerUsage.side_effect = power
        m.nvmlDeviceGetMemoryInfo.side_effect = lambda h: SimpleNamespace(used=self.mem_used[h.i], total=141 * GIB)
        m.nvmlDeviceGetComputeRunningProcesses.side_effect = lambda h: [
            SimpleNamespace(pid=os.getpid(), usedGpuMemory=self.proc_used[h.i]), *self.others[h.i],
        ]

        def proc_util(h, since_us):
            if not self.proc_util[h.i]:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
            return self.proc_util[h.i]

        m.nvmlDeviceGetProcessUtilization.side_effect = proc_util
        m.nvmlDeviceGetPciInfo.side_effect = lambda h: SimpleNamespace(busId=self.pci[h.i].encode())
        m.nvmlDeviceGetGraphicsRunningProcesses.side_effect = lambda h: []
        m.nvmlDeviceGetUtilizationRates.side_effect = lambda h: SimpleNamespace(gpu=self.util[h.i], memory=0)
        m.nvmlDeviceGetEnforcedPowerLimit.side_effect = lambda h: 700_000
        m.nvmlSystemGetDriverVersion.side_effect = lambda: "580.1"
        m.nvmlSystemGetCudaDriverVersion.side_effect = lambda: 13000
        return m


@pytest.fixture
def gpus(monkeypatch):
    fake = FakeGpus()
    mod = fake.module()
    monkeypatch.setattr(nvml_mod, "_import_pynvml", lambda: mod)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    fake.mock = mod
    return fake
