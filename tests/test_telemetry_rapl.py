"""RAPL against a fake /sys/class/powercap tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.telemetry import Telemetry
from harness.telemetry import codecarbon_cpu
from harness.telemetry.clock import FakeClock
from harness.telemetry.rapl import RaplCounter, RaplUnavailable, find_package_zones, wrapped_delta_uj

MAX_UJ = 262_143_328_850


def make_zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    z = root / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


def set_energy(zone: Path, uj: int) -> None:
    (zone / "energy_uj").write_text(f"{uj}\n")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "powercap"
    p0 = make_zone(root, "intel-rapl:0", "package-0", 1_000_000)
    p1 = make_zone(root, "intel-rapl:1", "package-1", 5_000_000)
    core = make_zone(root, "intel-rapl:0:0", "core", 100)  # subzone: never summed
    psys = make_zone(root, "intel-rapl:2", "psys", 7)  # platform: overlaps packages
    (root / "intel-rapl").mkdir()  # the control-type folder, not a zone
    return root, p0, p1, core, psys


def test_wrapped_delta():
    assert wrapped_delta_uj(10, 25, 100) == 15
    assert wrapped_delta_uj(90, 5, 100) == 15


def test_only_top_level_packages(tree):
    root, *_ = tree
    assert [z.name for z in find_package_zones(root)] == ["package-0", "package-1"]


def test_rapl_window_normal_delta(tree):
    root, p0, p1, core, psys = tree
    clock = FakeClock()
    tel = Telemetry("cpu", sample_period_s=None, clock=clock, rapl_root=root)
    assert tel.cpu_energy_source == "rapl"
    tel.begin("k")
    clock.advance(2.0)
    set_energy(p0, 1_000_000 + 30_000_000)  # +30 J
    set_energy(p1, 5_000_000 + 20_000_000)  # +20 J
    set_energy(core, 10**9)  # ignored
    set_energy(psys, 10**9)  # ignored
    res = tel.end("k")
    tel.close()
    assert res.energy_source == "rapl"
    assert res.energy_j == pytest.approx(50.0)
    assert res.energy_counter_j == pytest.approx(50.0)
    assert res.energy_estimated is False and res.flag_short_window is False
    assert res.avg_power_w == pytest.approx(25.0)


def test_rapl_wraparound(tree):
    root, p0, p1, *_ = tree
    set_energy(p0, MAX_UJ - 1_000_000)
    clock = FakeClock()
    tel = Telemetry("cpu", sample_period_s=None, clock=clock, rapl_root=root)
    tel.begin("k")
    clock.advance(1.0)
    set_energy(p0, 2_000_000)  # wrapped: 1 J before the wrap + 2 J after
    res = tel.end("k")
    tel.close()
    assert res.energy_j == pytest.approx(3.0)


def test_sampler_ticks_catch_multiple_wraps(tree):
    root, p0, p1, *_ = tree
    counter = RaplCounter(root)
    e0 = counter.advance()
    for uj in (MAX_UJ - 10, 5, MAX_UJ - 10, 5):  # two wraps, seen by ticks in between
        set_energy(p0, uj)
        counter.advance()
    assert counter.advance() - e0 == pytest.approx((2 * MAX_UJ - 1_000_000 + 5) / 1e6)


def test_rapl_idle_power(tree):
    root, p0, *_ = tree
    clock = FakeClock()
    tel = Telemetry("cpu", sample_period_s=None, clock=clock, rapl_root=root, idle_seconds=4.0)

    def sleep(dt):
        clock.advance(dt)
        set_energy(p0, 1_000_000 + 40_000_000)

    clock.sleep = sleep
    assert tel.measure_idle() == pytest.approx(10.0)
    assert tel.idle_power_source == "rapl"
    tel.close()


@pytest.mark.parametrize("breakage", ["energy_is_dir", "garbage", "missing_root", "no_package"])
def test_unreadable_rapl_falls_through(tmp_path, monkeypatch, breakage):
    root = tmp_path / "powercap"
    if breakage != "missing_root":
        z = make_zone(root, "intel-rapl:0", "package-0" if breakage != "no_package" else "psys", 1)
        if breakage == "energy_is_dir":
            (z / "energy_uj").unlink()
            (z / "energy_uj").mkdir()  # reading raises IsADirectoryError, like EACCES would
        elif breakage == "garbage":
            (z / "energy_uj").write_text("n/a\n")
    with pytest.raises(RaplUnavailable):
        find_package_zones(root)

    def no_codecarbon():
        raise ImportError("codecarbon missing")

    monkeypatch.setattr(codecarbon_cpu, "_tracker_class", no_codecarbon)
    clock = FakeClock()
    tel = Telemetry("cpu", sample_period_s=None, clock=clock, rapl_root=root)
    assert tel.rapl is None and tel.cpu_energy_source == "codecarbon_estimate"
    tel.begin("k")
    clock.advance(1.0)
    res = tel.end("k")
    tel.close()
    # RAPL gone, codecarbon gone: honest unavailable, never 0 J
    assert res.energy_source == "unavailable" and res.energy_j is None
    assert res.co2_kg is None and res.co2_source == "unavailable"
