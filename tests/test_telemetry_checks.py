"""The window's checks against a scripted NVML: counter vs integral (energy), the memory order,
and the NVML <-> CUDA device mapping (issue 16, items 7, 10, 11)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from harness.telemetry import Telemetry, collect_provenance, provenance
from harness.telemetry.clock import FakeClock
from harness.telemetry.cuda_devices import CudaDevice, cuda_devices
from harness.telemetry.gpu_energy import ENERGY_DISAGREE_SHARE, combine_gpu_energy, disagree
from harness.telemetry.gpu_memory import memory_order_broken
from harness.telemetry.nvml import Nvml, pci_key

from fake_nvml import GIB, gpus  # noqa: F401  (gpus is a fixture)


def _tel(clock, device="cuda:0", cvd="0", **kw):
    return Telemetry(device, sample_period_s=None, clock=clock, cuda_visible_devices=cvd, **kw)


def _run(tel, fake, clock, steps=(1.0, 1.0)):
    tel.begin("k")
    for dt in steps:
        fake.step(clock, dt)
        tel.sampler.tick()
    res = tel.end("k")
    tel.close()
    return res


# -- item 7: counter against integral ---------------------------------------------------------
def test_public_idle_case_keeps_the_counter_and_flags(gpus):
    """An idle window: counter 187.4 J, integrated power 326.9 J over 2 s."""
    gpus.power_w[0] = 326.9 / 2.0
    gpus.counter_scale[0] = 187.4 / 326.9
    clock = FakeClock()
    res = _run(_tel(clock), gpus, clock)
    assert res.energy_counter_j == pytest.approx(187.4, abs=1e-3)
    assert res.energy_integral_j == pytest.approx(326.9)
    assert res.energy_j == pytest.approx(187.4, abs=1e-3) and res.energy_source == "nvml_counter"
    assert res.flag_energy_disagree is True
    assert res.as_columns()["flag_energy_disagree"] is True


@pytest.mark.parametrize("scale, flagged", [(1.0, False), (0.97, False), (1.04, False), (0.94, True), (1.06, True)])
def test_disagreement_threshold_is_5_percent_of_the_larger(gpus, scale, flagged):
    gpus.counter_scale[0] = scale
    clock = FakeClock()
    res = _run(_tel(clock), gpus, clock)
    assert res.energy_source == "nvml_counter" and res.energy_j == pytest.approx(200.0 * scale, abs=1e-3)
    assert res.flag_energy_disagree is flagged


def test_a_counter_stuck_at_zero_is_not_trusted(gpus):
    gpus.counter_scale[0] = 0.0  # the counter never moves while the board draws 100 W
    clock = FakeClock()
    res = _run(_tel(clock), gpus, clock)
    assert res.energy_counter_j == 0.0  # kept, for the record
    assert res.energy_j == pytest.approx(200.0) and res.energy_source == "nvml_power_integral"
    assert res.flag_energy_disagree is True and res.energy_estimated is False
    assert res.details["gpus"][0]["counter_untrusted"] is True


def test_short_window_without_power_is_unavailable_not_zero(gpus):
    gpus.power_readable[0] = False
    gpus.counter_scale[0] = 0.0  # a coarse counter that did not update within 0.5 s
    clock = FakeClock()
    res = _run(_tel(clock), gpus, clock, steps=(0.25, 0.25))
    assert res.flag_short_window is True
    assert res.energy_j is None and res.energy_source == "unavailable"
    assert res.energy_counter_j == 0.0 and res.avg_power_w is None


def test_long_window_without_power_keeps_the_counter(gpus):
    gpus.power_readable[0] = False  # nothing to compare with: the counter stands, unflagged
    clock = FakeClock()
    res = _run(_tel(clock), gpus, clock)
    assert res.energy_j == pytest.approx(200.0) and res.energy_source == "nvml_counter"
    assert res.flag_energy_disagree is False


def test_combine_flags_the_device_that_disagrees():
    series = [([0.0, 2.0], [100.0, 100.0]), ([0.0, 2.0], [50.0, 50.0]), ([0.0, 2.0], [10.0, 10.0])]
    g = combine_gpu_energy(2.0, [0.0, 0.0, 0.0], [201.0, 150.0, 0.0], series)
    assert [d.get("disagree") for d in g.per_device] == [False, True, True]
    assert g.per_device[2]["counter_untrusted"] is True  # 0 J counter vs 20 J integrated
    assert g.energy_j == pytest.approx(201.0 + 150.0 + 20.0) and g.source == "nvml_power_integral"
    assert g.disagree is True
    agree = combine_gpu_energy(2.0, [0.0], [203.0], series[:1])
    assert agree.disagree is False and agree.source == "nvml_counter"
    assert disagree(0.0, 0.0) is False and disagree(100.0, 94.0) is True and ENERGY_DISAGREE_SHARE == 0.05


# -- item 10: memory order --------------------------------------------------------------------
class FakeTorch:
    """torch.cuda as the window uses it, with scripted peaks (bytes) and CUDA's own device list."""

    def __init__(self, allocated: int, reserved: int, props: list[SimpleNamespace] | None = None):
        props = props or [SimpleNamespace(uuid="fake-0", pci_bus_id=0x18, pci_device_id=0, pci_domain_id=0)]
        cuda = SimpleNamespace()
        cuda.is_available = lambda: True
        cuda.synchronize = lambda d=None: None
        cuda.max_memory_allocated = lambda d: allocated
        cuda.max_memory_reserved = lambda d: reserved
        cuda.reset_peak_memory_stats = lambda d: None
        cuda.current_device = lambda: 0
        cuda.device_count = lambda: len(props)
        cuda.get_device_properties = lambda i: props[i]
        self.cuda = cuda


def _torch_tel(monkeypatch, clock, torch, **kw):
    monkeypatch.setattr(Telemetry, "_find_torch", lambda self: (torch, [0]))
    return _tel(clock, **kw)


def test_memory_in_order_is_not_flagged(gpus, monkeypatch):
    clock = FakeClock()  # allocated 0.2 ≤ reserved 0.4 ≤ process 0.5 ≤ device 1 GiB
    res = _run(_torch_tel(monkeypatch, clock, FakeTorch(GIB // 5, 2 * GIB // 5)), gpus, clock)
    assert (res.peak_allocated_bytes, res.peak_reserved_bytes) == (GIB // 5, 2 * GIB // 5)
    assert res.flag_memory_order is False


@pytest.mark.parametrize("allocated, reserved, process, device, broken", [
    (GIB // 5, GIB // 10, GIB // 2, GIB, "peak_allocated_bytes > peak_reserved_bytes"),
    (GIB // 5, 3 * GIB // 4, GIB // 2, GIB, "peak_reserved_bytes > peak_process_device_used_bytes"),
    (GIB // 5, GIB // 4, 2 * GIB, GIB, "peak_process_device_used_bytes > peak_device_used_bytes"),
])
def test_memory_order_violations_are_flagged_with_the_figures_kept(gpus, monkeypatch, allocated, reserved,
                                                                  process, device, broken):
    gpus.proc_used[0], gpus.mem_used[0] = process, device
    clock = FakeClock()
    res = _run(_torch_tel(monkeypatch, clock, FakeTorch(allocated, reserved)), gpus, clock)
    assert res.flag_memory_order is True and broken in res.details["memory_order"]
    assert (res.peak_allocated_bytes, res.peak_reserved_bytes) == (allocated, reserved)
    assert (res.peak_process_device_used_bytes, res.peak_device_used_bytes) == (process, device)


def test_memory_order_skips_unknown_figures():
    assert memory_order_broken(1, 2, 3, 4) == []
    assert memory_order_broken(None, 5, None, 4) == ["peak_reserved_bytes > peak_device_used_bytes"]
    assert memory_order_broken(3, None, None, None) == []
    assert memory_order_broken(None, None, None, None) == []
    assert memory_order_broken(2, 1, 4, 3) == ["peak_allocated_bytes > peak_reserved_bytes",
                                               "peak_process_device_used_bytes > peak_device_used_bytes"]


# -- item 11: which GPUs, mapped how ----------------------------------------------------------
def test_integer_devices_follow_pci_order_not_nvml_index(gpus, monkeypatch):
    gpus.pci = ["00000000:48:00.0", "00000000:38:00.0", "00000000:28:00.0", "00000000:18:00.0"]
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    nv = Nvml.open()
    assert [d.nvml_index for d in nv.visible_devices()] == [3, 2, 1, 0]
    assert [d.nvml_index for d in nv.select("cuda:0")] == [3]
    # CUDA_VISIBLE_DEVICES=2,0: the 3rd and 1st GPU by PCI bus id = NVML 1 and 3; cuda:1 is the second
    assert [d.nvml_index for d in nv.select("cuda:1", "2,0")] == [3]
    nv.close()
    tel = Telemetry("cuda:0", sample_period_s=None, clock=FakeClock())
    assert [(d.nvml_index, d.mapped_by) for d in tel.gpus] == [(3, "pci_order")]
    tel.close()


def test_cuda_runtime_uuids_map_devices_in_cudas_own_order(gpus):
    runtime = [CudaDevice(0, "fake-2", None), CudaDevice(1, "fake-0", None)]  # FASTEST_FIRST: not PCI order
    gpus.uuids = [f"GPU-fake-{i}" for i in range(4)]
    clock = FakeClock()
    tel = Telemetry("cuda:0", sample_period_s=None, clock=clock, cuda_visible_devices="0,1", cuda_runtime=runtime)
    assert [(d.uuid, d.cuda_index, d.mapped_by) for d in tel.gpus] == [("GPU-fake-2", 0, "uuid")]
    res = _run(tel, gpus, clock)
    assert res.energy_j == pytest.approx(2 * 120.0)  # device 2 draws 120 W


def test_cuda_runtime_pci_bus_ids_map_when_uuids_are_unknown(gpus):
    runtime = [CudaDevice(0, None, "0000:38:00.0")]  # sysfs-style spelling of NVML 2's bus id
    tel = Telemetry("cuda:0", sample_period_s=None, clock=FakeClock(), cuda_runtime=runtime)
    assert [(d.nvml_index, d.mapped_by) for d in tel.gpus] == [(2, "pci_bus_id")]
    tel.close()
    assert pci_key("00000000:3B:00.0") == pci_key("0000:3b:00.0") == (0, 0x3B, 0, 0)


def test_mixed_gpus_without_pci_bus_id_order_are_not_guessed(gpus, monkeypatch):
    gpus.names = ["Fake H200", "Fake A100", "Fake H200", "Fake A100"]
    clock = FakeClock()
    tel = Telemetry("cuda:1", sample_period_s=None, clock=clock, cuda_visible_devices="0,1")
    assert tel.gpus == [] and "no NVML device" in tel.nvml_error and "CUDA_DEVICE_ORDER" in tel.nvml_error
    res = _run(tel, gpus, clock)
    assert res.energy_j is None and res.energy_source == "unavailable"
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # now CUDA's order is the PCI order
    tel = Telemetry("cuda:1", sample_period_s=None, clock=FakeClock(), cuda_visible_devices="0,1")
    assert [d.nvml_index for d in tel.gpus] == [1]
    tel.close()


def test_cuda_devices_from_torch_properties():
    props = [SimpleNamespace(uuid="5a1d", pci_bus_id=0x3B, pci_device_id=0, pci_domain_id=0),
             SimpleNamespace(uuid=None, pci_bus_id=0x18, pci_device_id=1, pci_domain_id=2)]
    torch = FakeTorch(0, 0, props)
    assert cuda_devices(torch) == [CudaDevice(0, "5a1d", "00000000:3B:00.0"), CudaDevice(1, None, "00000002:18:01.0")]
    torch.cuda.is_available = lambda: False
    assert cuda_devices(torch) is None


def test_window_asks_the_cuda_runtime_when_torch_has_one(gpus, monkeypatch):
    props = [SimpleNamespace(uuid="fake-3", pci_bus_id=0x48, pci_device_id=0, pci_domain_id=0)]
    tel = _torch_tel(monkeypatch, FakeClock(), FakeTorch(0, 0, props), device="cuda", cvd=None)
    assert [(d.uuid, d.mapped_by) for d in tel.gpus] == [("GPU-fake-3", "uuid")]
    tel.close()


def test_provenance_lists_the_used_gpu_and_the_device_order(gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    prov = collect_provenance("cuda:1")
    assert [g["uuid"] for g in prov["gpus"]] == ["GPU-fake-3"]  # not GPU-fake-1: the cell did not use it
    assert prov["gpus"][0]["pci_bus_id"] == "00000000:48:00.0" and prov["gpus"][0]["cuda_index"] == 1
    assert prov["cuda_device_order"] == "PCI_BUS_ID" and prov["cuda_visible_devices"] == "1,3"
    current = collect_provenance("cuda")
    assert [g["uuid"] for g in current["gpus"]] == ["GPU-fake-1"]  # the current device, cuda:0
    assert current["hardware_id"] == prov["hardware_id"]  # another GPU of the same model: one hardware class
    cpu = collect_provenance("cpu")
    assert cpu["gpus"] == [] and cpu["gpu_driver"] == "580.1"
    json.dumps(prov)
    assert provenance.gpu_provenance("cuda:5")["gpus"] == []
