"""GPU telemetry against a scripted, autospecced pynvml (no GPU needed)."""

from __future__ import annotations

import os

import pynvml
import pytest

from harness.telemetry import TELEMETRY_COLUMNS, Telemetry
from harness.telemetry import nvml as nvml_mod
from harness.telemetry import provenance
from harness.telemetry.clock import FakeClock
from harness.telemetry.process_sampler import ProcessSampler
from harness.telemetry.sampler import Sampler
from harness.telemetry.window import NVML_MIN_COUNTER_WINDOW_S, combine_gpu_energy

from fake_nvml import GIB, FakeGpus, gpus  # noqa: F401  (gpus is a fixture)


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


def test_cuda_visible_devices_selects_only_the_used_gpu(gpus):
    clock = FakeClock()
    tel = _tel(clock, device="cuda:1", cvd="1,3")
    assert [d.nvml_index for d in tel.gpus] == [3]
    res = _run(tel, gpus, clock)
    tel.close()
    assert res.energy_j == pytest.approx(260.0)  # device 3 draws 130 W for 2 s; device 1 is not ours
    assert [g["uuid"] for g in res.details["gpus"]] == ["GPU-fake-3"]
    assert res.peak_device_used_bytes == 4 * GIB
    # "cuda" is the current CUDA device (where .to("cuda") puts the model), not every visible GPU
    tel = _tel(clock, device="cuda", cvd="1,3")
    assert [d.nvml_index for d in tel.gpus] == [1]
    tel.close()


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
                             "pci_bus_id": "00000000:38:00.0", "cuda_index": 0, "mapped_by": "pci_order",
                             "power_limit_w": 700.0, "memory_total_bytes": 141 * GIB}]


def test_gpu_telemetry_samples_in_a_child_process_and_cpu_in_a_thread(gpus):
    tel = Telemetry("cuda", sample_period_s=0.05, cuda_visible_devices="1,3")
    try:
        assert isinstance(tel.sampler, ProcessSampler)
        assert tel.sampler.spec["uuids"] == ["GPU-fake-1"]  # only the device the run uses (cuda = cuda:0)
        assert tel.sampler.spec["pid"] == os.getpid()
        assert set(tel.sampler.probes) >= {"power_w", "mem_used_bytes", "proc_mem_bytes", "util"}
    finally:
        tel.close()
    cpu = Telemetry("cpu", sample_period_s=0.05)
    assert type(cpu.sampler) is Sampler
    cpu.close()
