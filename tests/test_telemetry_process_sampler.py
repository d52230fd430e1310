"""The child-process sampler (GPU runs): real child processes, an RSS-only probe spec."""

from __future__ import annotations

import os
import time

import pytest

from harness.telemetry.memory import rss_bytes
from harness.telemetry.process_sampler import ProcessSampler, build_probes


def _rss_sampler(period_s: float = 0.01) -> ProcessSampler:
    return ProcessSampler({"kind": "rss", "pid": os.getpid()}, {"rss_bytes": rss_bytes}, period_s)


def _wait_for(pred, limit_s: float = 60.0) -> None:
    """Poll until ``pred()``; a generous limit, so a loaded machine only makes it slower."""
    end = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_child_samples_this_process_and_hands_them_over():
    s = _rss_sampler()
    t0 = time.perf_counter()
    try:
        s.start()
        assert s.running
        _wait_for(lambda: len(s.samples_between(t0, time.perf_counter())) >= 3)
        t1 = time.perf_counter()
        got = s.samples_between(t0, t1)
        times = [x.t for x in got]
        assert times == sorted(times) and t0 <= times[0] and times[-1] <= t1  # one clock for both processes
        own = rss_bytes()
        for x in got:  # the child reads *this* process's RSS, not its own (a fresh interpreter is far smaller)
            assert abs(x.values["rss_bytes"] - own) < 0.5 * own
        assert s.tick_count >= len(got)
    finally:
        s.close()
    assert s._proc is None and not s.running


def test_pause_stops_ticks_and_restart_clears_old_samples():
    s = _rss_sampler()
    try:
        s.start()
        _wait_for(lambda: s.tick_count >= 2)
        s.stop()
        paused_at = s.tick_count
        time.sleep(0.1)  # ten periods: a child still sampling would have ticked
        s.pull()
        assert s.tick_count == paused_at
        t_restart = time.perf_counter()
        s.start()
        _wait_for(lambda: s.tick_count > paused_at)
        assert all(x.t >= t_restart for x in s.samples_between(0.0, time.perf_counter()))
    finally:
        s.close()


def test_a_dead_child_loses_no_stored_samples_and_is_counted():
    s = _rss_sampler()
    try:
        s.start()
        _wait_for(lambda: len(s.samples_between(0.0, time.perf_counter())) >= 2)
        kept = s.samples_between(0.0, time.perf_counter())
        s._proc.kill()
        s._proc.wait()
        after = s.samples_between(0.0, time.perf_counter())  # no exception
        assert after[: len(kept)] == kept
        assert not s.running
        assert s.probe_errors.get("sampler_process", 0) >= 1
    finally:
        s.close()


def test_edges_are_read_in_the_parent():
    calls = []
    s = ProcessSampler({"kind": "rss", "pid": os.getpid()}, {"x": lambda: calls.append(1) or 42}, 0.05)
    assert s.read_probes().values == {"x": 42} and calls == [1]
    assert s._proc is None  # reading an edge starts no child


def test_unknown_spec_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown sampler spec kind"):
        build_probes({"kind": "bogus", "pid": os.getpid()})
