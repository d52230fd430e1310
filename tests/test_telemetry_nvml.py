"""GPU telemetry against a scripted, autospecced pynvml (no GPU needed)."""

from __future__ import annotations

import os
from types import SimpleNamespace
from unittest.mock import create_autospec

import pynvml
import pytest

from harness.telemetry import TELEMETRY_COLUMNS, Telemetry
from harness.telemetry import nvml as nvml_mod
from harness.telemetry import provenance
from harness.telemetry.clock import FakeClock
from harness.telemetry.process_sampler import ProcessSampler
from harness.telemetry.sampler import Sampler
from harness.telemetry.window import NVML_MIN_COUNTER_WINDOW_S, combine_gpu_energy

GIB = 1024**3


class FakeGpus:
    """Scripted NVML state: energy counters integrate power over fake time."""

    def __init__(self, n: int = 4, power_w: float = 100.0) -> None:
        self.n = n
        self.handles = [SimpleNamespace(i=i) for i in range(n)]
        self.uuids = [f"GPU-fake-{i}" for i in range(n)]
        self.power_w = [power_w + 10 * i for i in range(n)]
        self.energy_mj = [1_000_000.0 * (i + 1) for i in range(n)]
        self.counter_supported = [True] * n
        self.instant_supported = [True] * n
        self.mem_used = [GIB * (i + 1) for i in range(n)]
        self.proc_used = [GIB // 2] * n
        self.util = [50] * n
        self.init_error: Exception | None = None

    def step(self, clock: FakeClock, dt: float) -> None:
        clock.advance(dt)
        for i in range(self.n):
            self.energy_mj[i] += self.power_w[i] * dt * 1000.0

    def module(self):
        m = create_autospec(pynvml)
        for name in ("NVMLError", "NVMLError_NotSupported", "NVMLError_LibraryNotFound",
                     "NVML_SUCCESS", "NVML_FI_DEV_POWER_INSTANT"):
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
            ok = self.instant_supported[h.i]
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
        m.nvmlDeviceGetName.side_effect = lambda h: "Fake H200"
        m.nvmlDeviceGetTotalEnergyConsumption.side_effect = energy
        m.nvmlDeviceGetFieldValues.side_effect = fields
        m.nvmlDeviceGetPowerUsage.side_effect = lambda h: int(self.power_w[h.i] * 1000)
        m.nvmlDeviceGetMemoryInfo.side_effect = lambda h: SimpleNamespace(used=self.mem_used[h.i], total=141 * GIB)
        m.nvmlDeviceGetComputeRunningProcesses.side_effect = lambda h: [
            SimpleNamespace(pid=os.getpid(), usedGpuMemory=self.proc_used[h.i]),
            SimpleNamespace(pid=1, usedGpuMemory=7 * GIB),
        ]
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
    fake.mock = mod
    return fake


def _tel(clock, device="cuda", cvd="0"):
    return Telemetry(device, sample_period_s=None, clock=clock, cuda_visible_devices=cvd)


def _run(tel, fake, clock, steps=(1.0, 1.0), key="k"):
    tel.begin(key)
    for dt in steps:
        fake.step(clock, dt)
        tel.sampler.tick()
    return tel.end(key)


def test_counter_rises(gpus):
    clock = FakeClock()
    tel = _tel(clock)
    res = _run(tel, gpus, clock)
    tel.close()
    assert res.duration_s == pytest.approx(2.0)
    assert res.energy_source == "nvml_counter"
    assert res.energy_j == pytest.approx(200.0)  # 100 W x 2 s
    assert res.energy_counter_j == pytest.approx(200.0)
    assert res.energy_integral_j == pytest.approx(200.0)
    assert res.energy_estimated is False and res.energy_attributed is False
    assert res.avg_power_w == pytest.approx(100.0)
    assert not res.flag_short_window and not res.flag_counter_reset
    assert res.peak_device_used_bytes == GIB
    assert res.peak_process_device_used_bytes == GIB // 2
    assert res.gpu_util_mean == pytest.approx(0.5)
    assert set(res.as_columns()) == set(TELEMETRY_COLUMNS)
    assert res.co2_source in ("codecarbon_offline", "unavailable")


def test_counter_reset_falls_back_to_integral(gpus):
    clock = FakeClock()
    tel = _tel(clock)
    tel.begin("k")
    gpus.step(clock, 1.0)
    tel.sampler.tick()
    gpus.energy_mj[0] = 5.0  # driver reload: counter restarts
    gpus.step(clock, 1.0)
    res = tel.end("k")
    tel.close()
    assert res.flag_counter_reset is True
    assert res.energy_counter_j is None
    assert res.energy_source == "nvml_power_integral"
    assert res.energy_j == pytest.approx(200.0)
    assert res.energy_estimated is False


def test_device_without_counter_uses_power_integral(gpus):
    gpus.counter_supported[0] = False
    clock = FakeClock()
    tel = _tel(clock)
    tel.begin("k")
    gpus.step(clock, 0.5)
    tel.sampler.tick()
    gpus.power_w[0] = 300.0
    gpus.step(clock, 1.0)
    tel.sampler.tick()
    gpus.step(clock, 0.5)
    res = tel.end("k")
    tel.close()
    # points (0,100) (0.5,100) (1.5,300) (2.0,300): 50 + 200 + 150
    assert res.energy_source == "nvml_power_integral"
    assert res.energy_counter_j is None
    assert res.energy_integral_j == pytest.approx(400.0)
    assert res.energy_j == pytest.approx(400.0)
    assert res.energy_estimated is False
    assert gpus.mock.nvmlDeviceGetTotalEnergyConsumption.call_count == 1  # not asked again


def test_short_window_flagged_and_estimated(gpus):
    clock = FakeClock()
    tel = _tel(clock)
    res = _run(tel, gpus, clock, steps=(0.25, 0.25))
    tel.close()
    assert res.duration_s < NVML_MIN_COUNTER_WINDOW_S
    assert res.flag_short_window is True
    assert res.energy_estimated is True
    assert res.energy_source == "nvml_power_integral"
    assert res.energy_j == pytest.approx(50.0)  # 100 W x 0.5 s
    assert res.energy_assumed_power_w == pytest.approx(100.0)
    assert res.energy_counter_j == pytest.approx(50.0)  # still recorded


def test_cuda_visible_devices_selects_only_those(gpus):
    clock = FakeClock()
    tel = _tel(clock, device="cuda", cvd="1,3")
    assert [d.nvml_index for d in tel.gpus] == [1, 3]
    res = _run(tel, gpus, clock)
    tel.close()
    # devices 1 and 3 draw 110 W and 130 W for 2 s
    assert res.energy_j == pytest.approx(480.0)
    assert [g["uuid"] for g in res.details["gpus"]] == ["GPU-fake-1", "GPU-fake-3"]
    assert res.peak_device_used_bytes == 2 * GIB + 4 * GIB


def test_cuda_visible_devices_from_env_and_uuids(gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-fake-3,1")
    tel = Telemetry("cuda:1", sample_period_s=None, clock=FakeClock())
    assert [d.nvml_index for d in tel.gpus] == [1]  # cuda:1 = second visible entry
    tel.close()
    nv = nvml_mod.Nvml.open()
    assert [d.uuid for d in nv.visible_devices("GPU-fake-2,7,0")] == ["GPU-fake-2"]  # list ends at 7
    assert [d.uuid for d in nv.visible_devices("GPU-fake-0")] == ["GPU-fake-0"]
    assert nv.visible_devices("") == []


def test_instant_power_field_fallback(gpus):
    gpus.instant_supported[0] = False
    nv = nvml_mod.Nvml.open()
    dev = nv.select("cuda:0", "0")[0]
    assert nv.power_w(dev) == pytest.approx(100.0)
    assert dev.instant_power_supported is False
    assert gpus.mock.nvmlDeviceGetPowerUsage.call_count == 1


@pytest.mark.parametrize("failure", ["import", "library"])
def test_nvml_missing_is_unavailable(monkeypatch, failure):
    if failure == "import":
        def loader():
            raise ImportError("No module named pynvml")
    else:
        fake = FakeGpus()
        fake.init_error = pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        mod = fake.module()
        def loader():
            return mod
    monkeypatch.setattr(nvml_mod, "_import_pynvml", loader)
    clock = FakeClock()
    tel = Telemetry("cuda", sample_period_s=None, clock=clock)
    assert tel.gpus == [] and tel.nvml_error
    tel.begin("k")
    clock.advance(2.0)
    res = tel.end("k")
    assert tel.measure_idle() is None
    tel.close()
    cols = res.as_columns()
    assert cols["energy_j"] is None and cols["energy_source"] == "unavailable"
    assert cols["peak_device_used_bytes"] is None and cols["gpu_util_mean"] is None
    assert cols["idle_power_source"] == "unavailable" and cols["co2_source"] == "unavailable"
    prov = provenance.gpu_provenance()
    assert prov["nvml"] is False and prov["gpus"] == []


def test_measure_idle_uses_counter(gpus):
    clock = FakeClock()
    tel = Telemetry("cuda:0", sample_period_s=None, clock=clock, cuda_visible_devices="0", idle_seconds=2.0)

    def sleep(dt):
        gpus.step(clock, dt)

    clock.sleep = sleep  # idle draws 100 W as fake time passes
    assert tel.measure_idle() == pytest.approx(100.0)
    assert tel.idle_power_source == "nvml_counter"
    res = _run(tel, gpus, clock)
    assert res.idle_power_w == pytest.approx(100.0)
    assert res.energy_j == pytest.approx(200.0)  # reported, not subtracted
    tel.close()


def test_nested_windows(gpus):
    clock = FakeClock()
    tel = _tel(clock)
    tel.begin("outer")
    gpus.step(clock, 1.0)
    tel.begin("inner")
    gpus.step(clock, 1.5)
    inner = tel.end("inner")
    gpus.step(clock, 1.0)
    outer = tel.end("outer")
    tel.close()
    assert inner.energy_j == pytest.approx(150.0)
    assert outer.energy_j == pytest.approx(350.0)
    with pytest.raises(ValueError):
        tel.end("outer")


def test_combine_gpu_energy_mixed_devices():
    # device 0 has a counter, device 1 only power samples
    g = combine_gpu_energy(
        2.0, [10.0, None], [30.0, None],
        [([0.0, 2.0], [10.0, 10.0]), ([0.0, 1.0, 2.0], [5.0, 15.0, 5.0])],
    )
    assert g.energy_j == pytest.approx(20.0 + 20.0)
    assert g.source == "nvml_power_integral"
    assert g.counter_j is None and g.integral_j == pytest.approx(40.0)
    g = combine_gpu_energy(2.0, [None], [None], [([0.0], [None])])
    assert g.energy_j is None and g.source == "unavailable"


def test_gpu_provenance_from_nvml(gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    prov = provenance.gpu_provenance()
    assert prov["nvml"] is True
    assert prov["gpu_driver"] == "580.1" and prov["cuda_driver"] == "13.0"
    assert prov["gpus"] == [{"nvml_index": 2, "name": "Fake H200", "uuid": "GPU-fake-2",
                             "power_limit_w": 700.0, "memory_total_bytes": 141 * GIB}]


def test_gpu_telemetry_samples_in_a_child_process_and_cpu_in_a_thread(gpus):
    tel = Telemetry("cuda", sample_period_s=0.05, cuda_visible_devices="1,3")
    try:
        assert isinstance(tel.sampler, ProcessSampler)
        assert tel.sampler.spec["uuids"] == ["GPU-fake-1", "GPU-fake-3"]  # only the devices the run uses
        assert tel.sampler.spec["pid"] == os.getpid()
        assert set(tel.sampler.probes) >= {"power_w", "mem_used_bytes", "proc_mem_bytes", "util"}
    finally:
        tel.close()
    cpu = Telemetry("cpu", sample_period_s=0.05)
    assert type(cpu.sampler) is Sampler
    cpu.close()
