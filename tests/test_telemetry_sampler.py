"""Sampler, trapezoid integration and clock: scripted, no wall-clock assertions."""

from __future__ import annotations

import threading

import pytest

from harness.telemetry.clock import FakeClock, MonotonicClock, monotonic_s
from harness.telemetry.sampler import Sample, Sampler, achieved_period_s, skip_overdue, trapezoid_energy_j


def test_trapezoid_hand_computed():
    # 0.5*(10+20)*1 + 0.5*(20+20)*2 = 15 + 40
    assert trapezoid_energy_j([0.0, 1.0, 3.0], [10.0, 20.0, 20.0]) == pytest.approx(55.0)
    # uneven steps and a ramp: 0.5*(0+100)*0.5 + 0.5*(100+50)*0.25 = 25 + 18.75
    assert trapezoid_energy_j([2.0, 2.5, 2.75], [0.0, 100.0, 50.0]) == pytest.approx(43.75)


def test_trapezoid_skips_missing_and_unknown_is_none():
    # the interval touching None is dropped: only [2,3] counts -> 0.5*(30+50)*1
    assert trapezoid_energy_j([0, 1, 2, 3], [10, None, 30, 50]) == pytest.approx(40.0)
    assert trapezoid_energy_j([0, 1, 2], [10, None, 30]) is None
    assert trapezoid_energy_j([0.0], [10.0]) is None
    assert trapezoid_energy_j([], []) is None
    with pytest.raises(ValueError):
        trapezoid_energy_j([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError):
        trapezoid_energy_j([0.0, 1.0], [1.0])


def test_skip_overdue():
    assert skip_overdue(1.0, 0.5, 1.0) == (1.0, 0)  # early: wait
    assert skip_overdue(1.0, 1.9, 1.0) == (1.0, 0)  # late < 1 period: served late
    assert skip_overdue(1.0, 2.0, 1.0) == (2.0, 1)  # exactly one period behind
    assert skip_overdue(1.0, 4.5, 1.0) == (4.0, 3)


def test_sampler_missed_ticks_with_fake_clock():
    clock = FakeClock(0.0)
    durations = iter([0.2, 2.5, 0.1, 0.1])  # the second probe call stalls 2.5 periods

    def slow_probe():
        clock.advance(next(durations))
        return 42.0

    s = Sampler({"power_w": slow_probe}, period_s=1.0, clock=clock)

    def wait(timeout: float) -> bool:
        clock.advance(timeout)
        return s.tick_count >= 4

    s.run(wait)
    samples = s.samples_between(-1.0, 100.0)
    # ticks at 0, 1, then the tick due at 2 is missed and 3 is served late at 3.5, then 4
    assert [x.t for x in samples] == pytest.approx([0.0, 1.0, 3.5, 4.0])
    assert s.missed_ticks == 1
    assert achieved_period_s(samples) == pytest.approx(4.0 / 3.0)
    assert all(x.values["power_w"] == 42.0 for x in samples)


def test_sampler_no_miss_when_on_time():
    clock = FakeClock(10.0)
    s = Sampler({"x": lambda: 1}, period_s=0.05, clock=clock)

    def wait(timeout: float) -> bool:
        clock.advance(timeout)
        return s.tick_count >= 10

    s.run(wait)
    assert s.missed_ticks == 0
    ticks = s.samples_between(0, 1e9)
    assert achieved_period_s(ticks) == pytest.approx(0.05)
    assert len(s.samples_between(10.099, 10.201)) == 3  # 10.10, 10.15, 10.20


def test_probe_errors_give_none_and_are_counted():
    def bad():
        raise RuntimeError("sensor gone")

    s = Sampler({"ok": lambda: 3, "bad": bad}, period_s=1.0, clock=FakeClock())
    sample = s.tick()
    assert sample.values == {"ok": 3, "bad": None}
    assert s.probe_errors == {"bad": 1}


def test_achieved_period_needs_two_ticks():
    assert achieved_period_s([]) is None
    assert achieved_period_s([Sample(1.0)]) is None


def test_thread_starts_and_stops():
    seen = threading.Event()
    calls = []

    def probe():
        calls.append(1)
        if len(calls) >= 2:
            seen.set()
        return 1

    s = Sampler({"p": probe}, period_s=0.01)
    s.start()
    assert s.running
    assert seen.wait(10.0)
    s.stop()
    assert not s.running
    assert s.tick_count >= 2


def test_clocks():
    c = FakeClock(5.0)
    c.sleep(1.5)
    assert c.now() == 6.5
    with pytest.raises(ValueError):
        c.advance(-1)
    a = monotonic_s()
    assert MonotonicClock().now() >= a
    with pytest.raises(ValueError):
        Sampler({}, period_s=0)


def test_series_rows_one_row_per_reading_and_device():
    from harness.results.schema import telemetry_series_table
    from harness.telemetry.sampler import Sample
    from harness.telemetry.series import series_rows

    gpu = [
        Sample(10.0, {"rss_bytes": 100, "power_w": [50.0, 60.0], "mem_used_bytes": [1, 2], "util": [0.5, None]}),
        Sample(10.5, {"rss_bytes": 110, "power_w": [55.0, None], "mem_used_bytes": [3, 4], "util": [0.6, 0.7]}),
    ]
    rows = series_rows(gpu, "h")
    assert [(r["t_s"], r["device_index"], r["power_w"]) for r in rows] == [
        (0.0, 0, 50.0), (0.0, 1, 60.0), (0.5, 0, 55.0), (0.5, 1, None)
    ]
    assert rows[3]["device_used_bytes"] == 4 and rows[1]["gpu_util"] is None
    cpu = series_rows([Sample(1.0, {"rss_bytes": 7, "rapl_j": 2.5}), Sample(1.25, {"rss_bytes": None})], "h")
    assert [(r["t_s"], r["device_index"], r["rss_bytes"], r["cpu_energy_counter_j"]) for r in cpu] == [
        (0.0, None, 7, 2.5), (0.25, None, None, None)
    ]
    assert telemetry_series_table(rows + cpu).num_rows == 6
    assert series_rows([], "h") == []
