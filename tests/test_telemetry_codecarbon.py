"""codecarbon fallback: mapping of its figures, failure, and no network at all."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import pytest

from harness.telemetry import Telemetry
from harness.telemetry import codecarbon_cpu
from harness.telemetry.clock import FakeClock


class FakeTracker:
    """Stands in for OfflineEmissionsTracker: records kwargs, returns set figures."""

    last_kwargs: dict = {}

    def __init__(self, **kwargs):
        FakeTracker.last_kwargs = kwargs
        self._conf = {}
        self._start_time = None
        self._hardware = [SimpleNamespace(), type("CPU", (), {"_tdp": 65.0})()]

    def start(self):
        self._start_time = 1.0

    def stop(self):
        self.final_emissions_data = SimpleNamespace(
            cpu_energy=2e-6, ram_energy=1e-6, gpu_energy=0.0, energy_consumed=3e-6,
            emissions=1.2e-6, cpu_power=20.0, ram_power=5.0,
        )
        return 1.2e-6


def _no_rapl(tmp_path):
    return tmp_path / "no-powercap"


def test_codecarbon_figures_are_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(codecarbon_cpu, "_tracker_class", lambda: FakeTracker)
    clock = FakeClock()
    tel = Telemetry("cpu", sample_period_s=None, clock=clock, rapl_root=_no_rapl(tmp_path), country_iso_code="FRA")
    with tel.window("k") as w:
        clock.advance(1.0)
    tel.close()
    res = w.result
    assert res.energy_source == "codecarbon_estimate" and res.energy_estimated is True
    assert res.energy_j == pytest.approx(2e-6 * 3.6e6)  # the CPU package only, kWh -> J (RAPL's scope)
    assert res.energy_assumed_power_w == 65.0
    # CO2 for the CPU share of codecarbon's emissions (2 of its 3 modelled kWh)
    assert res.co2_kg == pytest.approx(1.2e-6 * 2 / 3) and res.co2_source == "codecarbon_offline"
    assert res.details["codecarbon"]["ram_energy_j"] == pytest.approx(3.6)
    kw = FakeTracker.last_kwargs
    assert kw["country_iso_code"] == "FRA" and kw["output_methods"] == []
    assert kw["emissions_endpoint"] is None and kw["electricitymaps_api_token"] == ""
    assert kw["tracking_mode"] == "machine" and kw["allow_multiple_runs"] is True


def test_short_codecarbon_window_uses_modelled_power(tmp_path, monkeypatch):
    monkeypatch.setattr(codecarbon_cpu, "_tracker_class", lambda: FakeTracker)
    clock = FakeClock()
    tel = Telemetry("cpu", sample_period_s=None, clock=clock, rapl_root=_no_rapl(tmp_path))
    tel.begin("k")
    clock.advance(0.02)
    res = tel.end("k")
    tel.close()
    assert res.flag_short_window is True
    assert res.energy_j == pytest.approx(20.0 * 0.02)  # modelled CPU power (20 W) x duration


def test_codecarbon_failure_is_unavailable(tmp_path, monkeypatch):
    class Broken(FakeTracker):
        def stop(self):  # codecarbon swallows errors and leaves no data
            return None

    monkeypatch.setattr(codecarbon_cpu, "_tracker_class", lambda: Broken)
    clock = FakeClock()
    tel = Telemetry("cpu", sample_period_s=None, clock=clock, rapl_root=_no_rapl(tmp_path))
    tel.begin("k")
    clock.advance(1.0)
    res = tel.end("k")
    tel.close()
    assert res.energy_j is None and res.energy_source == "unavailable"
    assert "codecarbon_error" in res.details


def test_real_codecarbon_makes_no_network_call(tmp_path, monkeypatch):
    """A real offline tracker window with every socket connect refused.

    Also sets the codecarbon config variables that would turn on network sinks
    if the harness left them to codecarbon's config lookup.
    """
    pytest.importorskip("codecarbon")
    from codecarbon.core import hardware_cache

    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for var, value in {
        "CODECARBON_SAVE_TO_API": "true",
        "CODECARBON_SAVE_TO_FILE": "true",
        "CODECARBON_OUTPUT_METHODS": "api,csv",
        "CODECARBON_EMISSIONS_ENDPOINT": "http://collector.invalid/emissions",
        "CODECARBON_ELECTRICITYMAPS_API_TOKEN": "token",
        "CODECARBON_CO2_SIGNAL_API_TOKEN": "token",
        "CODECARBON_API_CALL_INTERVAL": "1",
        "CODECARBON_LOG_LEVEL": "debug",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    hardware_cache.clear_cache()  # run the hardware probing under the patch too

    tel = Telemetry("cpu", sample_period_s=0.05, rapl_root=tmp_path / "no-powercap")
    with tel.window("k") as w:
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            sum(i * i for i in range(1000))
    tel.close()
    res = w.result
    assert attempts == []
    assert res.energy_source == "codecarbon_estimate"
    assert res.energy_j is not None and res.energy_j > 0
    assert res.energy_assumed_power_w is not None and res.energy_assumed_power_w > 0
    assert res.co2_source == "codecarbon_offline" and res.co2_kg > 0
    assert list(tmp_path.iterdir()) == []  # no emissions.csv or other files in the cwd
