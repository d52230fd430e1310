"""Real CPU windows on this machine, the column contract, and peak RSS."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from harness.telemetry import ENERGY_SOURCES, TELEMETRY_COLUMNS, Telemetry, WindowResult
from harness.telemetry import memory
from harness.telemetry.memory import PeakRssTracker, read_status_bytes, reset_hwm

CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md"


def contract_telemetry_keys() -> list[str]:
    text = CONTRACTS.read_text()
    m = re.search(r"Telemetry \(keys of `WindowResult.as_columns\(\)`\):(.*?)\.\s*\n", text, re.S)
    assert m, "telemetry paragraph not found in CONTRACTS.md"
    return [k.strip() for k in m.group(1).replace("\n", " ").rstrip(". ").split(",") if k.strip()]


def test_columns_match_contract():
    assert list(TELEMETRY_COLUMNS) == contract_telemetry_keys()
    assert list(WindowResult("k", 1.0).as_columns()) == list(TELEMETRY_COLUMNS)


def _check_honest(cols: dict) -> None:
    assert list(cols) == list(TELEMETRY_COLUMNS)
    assert cols["energy_source"] in ENERGY_SOURCES
    if cols["energy_source"] == "unavailable":
        assert cols["energy_j"] is None
    else:
        assert cols["energy_j"] is not None and cols["energy_j"] > 0
    if cols["co2_source"] == "unavailable":
        assert cols["co2_kg"] is None
    for k in ("peak_allocated_bytes", "peak_reserved_bytes", "peak_device_used_bytes",
              "peak_process_device_used_bytes", "gpu_util_mean"):
        assert cols[k] is None  # a CPU window knows nothing of GPUs
    assert cols["peak_rss_source"] in ("vmhwm_window", "sampled_rss")
    assert cols["peak_rss_bytes"] > 0
    assert cols["duration_s"] > 0


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(1000))


def test_real_cpu_window_on_this_machine():
    tel = Telemetry("cpu", sample_period_s=0.02)
    tel.measure_idle()
    with tel.window("cell-a") as w:
        _busy(0.25)
    tel.close()
    cols = w.result.as_columns()
    _check_honest(cols)
    assert cols["sampler_period_s"] == 0.02
    assert cols["sampler_missed_ticks"] >= 0
    if tel.rapl is None:  # this development machine: no readable RAPL
        assert cols["idle_power_w"] is None and cols["idle_power_source"] == "unavailable"
        assert cols["energy_source"] in ("codecarbon_estimate", "unavailable")


def test_nested_and_overlapping_real_windows():
    tel = Telemetry("cpu", sample_period_s=0.02)
    tel.begin("outer")
    with tel.window("inner") as inner:
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch the pages
        _busy(0.12)
    del block
    tel.begin("overlap")
    outer = tel.end("outer")
    _busy(0.12)
    overlap = tel.end("overlap")
    with pytest.raises(ValueError):
        tel.end("overlap")
    tel.begin("again")
    with pytest.raises(ValueError):
        tel.begin("again")
    tel.end("again")
    assert not tel.sampler.running  # stopped with the last window
    tel.close()
    for r in (inner.result, outer, overlap):
        _check_honest(r.as_columns())
    if inner.result.peak_rss_source == "vmhwm_window":
        assert outer.peak_rss_bytes >= inner.result.peak_rss_bytes


PEAK_SCRIPT = """
from harness.telemetry import Telemetry
tel = Telemetry("cpu", sample_period_s=0.02)
tel.begin("outer")
with tel.window("inner") as inner:
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
del block
tel.begin("overlap")
outer = tel.end("outer")
overlap = tel.end("overlap")
tel.close()
print(inner.result.peak_rss_source, inner.result.peak_rss_bytes, outer.peak_rss_bytes, overlap.peak_rss_bytes)
"""


def test_window_peak_rss_separates_windows_in_a_fresh_process():
    # A fresh interpreter: the peak of a process that already holds a large model (other
    # tests in this session) would hide a 64 MiB block.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=True)
    source, inner, outer, overlap = out.stdout.split()[-4:]
    if source != "vmhwm_window":
        pytest.skip(f"peak RSS reset not permitted here ({source})")
    # the inner 64 MiB block is in the outer window's peak, not the later one's
    assert int(outer) >= int(inner)
    assert int(inner) - int(overlap) > 32 * 1024 * 1024


def test_window_result_set_even_when_block_raises():
    tel = Telemetry("cpu", sample_period_s=None)
    with pytest.raises(RuntimeError):
        with tel.window("boom") as w:
            raise RuntimeError("cell failed")
    tel.close()
    assert w.result is not None and w.result.key == "boom"


def _status(path: Path, rss_kb: int, hwm_kb: int) -> None:
    path.write_text(f"Name:\tpython\nVmHWM:\t{hwm_kb} kB\nVmRSS:\t{rss_kb} kB\n")


def test_peak_rss_vmhwm_nested(tmp_path, monkeypatch):
    status, clear = tmp_path / "status", tmp_path / "clear_refs"
    resets = []

    def fake_reset(path):  # the kernel sets VmHWM to the current VmRSS
        resets.append(path)
        _status(status, read_status_bytes("VmRSS", status) // 1024, read_status_bytes("VmRSS", status) // 1024)
        return True

    monkeypatch.setattr(memory, "reset_hwm", fake_reset)
    _status(status, 100, 900)  # lifetime peak 900 kB before any window
    t = PeakRssTracker(status, clear)
    t.begin("outer")
    assert resets == [clear]
    _status(status, 100, 500)  # a spike inside outer only
    t.begin("inner")  # resets the HWM: the spike must be kept for outer
    _status(status, 120, 300)
    inner = t.end("inner")
    _status(status, 100, 300)
    outer = t.end("outer")
    assert inner == (300 * 1024, "vmhwm_window")
    assert outer == (500 * 1024, "vmhwm_window")  # not the pre-window 900 kB


def test_clear_refs_resets_hwm_here():
    """On this machine (Linux >= 4.0) the per-window reset is expected to work."""
    if not reset_hwm():
        pytest.skip("kernel refused /proc/self/clear_refs")
    assert read_status_bytes("VmHWM") <= read_status_bytes("VmRSS") + 1024 * 1024


def test_peak_rss_falls_back_to_samples_when_reset_refused(tmp_path):
    status = tmp_path / "status"
    refused = tmp_path / "clear_refs_dir"
    refused.mkdir()  # opening a folder for writing fails like EPERM
    assert reset_hwm(refused) is False
    _status(status, 100, 10_000)
    t = PeakRssTracker(status, refused)
    t.begin("k")
    _status(status, 150, 10_000)
    peak, source = t.end("k", sampled_rss=[120, None, 400 * 1024])
    assert source == "sampled_rss"
    assert peak == 400 * 1024  # the sampled max, never the lifetime VmHWM


def test_read_status_bytes_real():
    assert read_status_bytes("VmRSS") > 0
