"""Measurement windows: time, energy, memory and utilisation of a block of code.

Modelled on Zeus's ``ZeusMonitor.begin_window/end_window``: a window snapshots
counters at its start, reads them again at its end and returns a
:class:`WindowResult`. Windows are keyed; nested and overlapping windows with
different keys are supported.

Energy, per device kind (``energy_source`` names what fed ``energy_j``):

- ``cuda``: the NVML total-energy counter delta per used device
  (``nvml_counter``). A device without the counter, or whose counter went down
  (reset: dropped and ``flag_counter_reset``), falls back to the trapezoidal
  integral of sampled power (``nvml_power_integral``). That integral is
  ``energy_estimated=False``: power is *measured* by the board sensor, only its
  integration between samples is approximate. A window shorter than
  :data:`NVML_MIN_COUNTER_WINDOW_S` (~10 counter updates) is
  ``flag_short_window`` and gets ``energy_j = mean sampled power x duration``
  (``nvml_power_integral``, ``energy_estimated=True``) because a coarse counter
  read over few updates can be 0 J or a whole update too much.
  ``energy_counter_j`` and ``energy_integral_j`` are both kept where available.
- ``cpu``: RAPL package energy (``rapl``), else codecarbon's offline model
  (``codecarbon_estimate``, ``energy_estimated=True``; windows under
  :data:`CODECARBON_MIN_WINDOW_S` are flagged short and use its modelled
  power x duration), else ``unavailable``.

Unknown energy is ``None`` with ``energy_source='unavailable'``, never 0 J.
``idle_power_w`` is reported from :meth:`Telemetry.measure_idle`, never
subtracted. ``energy_attributed`` is always ``False`` here: a window measures
whole devices; sharing a window among cells is the caller's business.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .clock import SYSTEM_CLOCK, Clock
from .codecarbon_cpu import CO2_SOURCE, Co2Estimator, CodecarbonEstimate, CodecarbonUnavailable, CodecarbonWindow
from .memory import PeakRssTracker, rss_bytes
from .nvml import Nvml, NvmlDevice, NvmlUnavailable
from .rapl import DEFAULT_ROOT, RaplCounter, RaplUnavailable
from .process_sampler import ProcessSampler
from .sampler import DEFAULT_CPU_PERIOD_S, DEFAULT_PERIOD_S, Sample, Sampler, achieved_period_s, trapezoid_energy_j

TELEMETRY_COLUMNS: tuple[str, ...] = (
    "duration_s",
    "energy_j",
    "energy_source",
    "energy_estimated",
    "energy_attributed",
    "energy_counter_j",
    "energy_integral_j",
    "energy_assumed_power_w",
    "avg_power_w",
    "idle_power_w",
    "idle_power_source",
    "co2_kg",
    "co2_source",
    "peak_rss_bytes",
    "peak_rss_source",
    "peak_allocated_bytes",
    "peak_reserved_bytes",
    "peak_device_used_bytes",
    "peak_process_device_used_bytes",
    "gpu_util_mean",
    "sampler_period_s",
    "sampler_achieved_period_s",
    "sampler_missed_ticks",
    "flag_short_window",
    "flag_counter_reset",
)
ENERGY_SOURCES = ("nvml_counter", "nvml_power_integral", "rapl", "codecarbon_estimate", "unavailable")
UNAVAILABLE = "unavailable"

NVML_MIN_COUNTER_WINDOW_S = 1.0
"""Shortest window (s) trusted to the NVML counter: ~10 updates of a ~100 ms counter."""
RAPL_MIN_WINDOW_S = 0.01
"""Shortest window (s) trusted to RAPL: ~10 updates of its ~1 ms counter."""
CODECARBON_MIN_WINDOW_S = 0.1
"""Shortest window (s) trusted to codecarbon's own integration: it skips its
closing measurement when the last one is under 50 ms old (so a very short
window reads ~0 J), and its CPU load comes from 10 ms ``cpu_times`` ticks.
Shorter windows get ``(modelled CPU + RAM power) x duration``, flagged short."""


@dataclass
class WindowResult:
    """What one window measured. Units are SI and in the names; see CONTRACTS.md.

    ``details`` holds per-device figures for debugging; ``samples`` the window's probe
    readings (its two edges and the sampler's ticks between them); neither is a column.
    """

    key: str
    duration_s: float
    energy_j: float | None = None
    energy_source: str = UNAVAILABLE
    energy_estimated: bool = False
    energy_attributed: bool = False
    energy_counter_j: float | None = None
    energy_integral_j: float | None = None
    energy_assumed_power_w: float | None = None
    avg_power_w: float | None = None
    idle_power_w: float | None = None
    idle_power_source: str = UNAVAILABLE
    co2_kg: float | None = None
    co2_source: str = UNAVAILABLE
    peak_rss_bytes: int | None = None
    peak_rss_source: str = UNAVAILABLE
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    peak_device_used_bytes: int | None = None
    peak_process_device_used_bytes: int | None = None
    gpu_util_mean: float | None = None
    sampler_period_s: float | None = None
    sampler_achieved_period_s: float | None = None
    sampler_missed_ticks: int | None = None
    flag_short_window: bool = False
    flag_counter_reset: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list, repr=False)  # edges + ticks, time order

    def as_columns(self) -> dict[str, Any]:
        """Exactly the telemetry columns of CONTRACTS.md, in that order."""
        return {k: getattr(self, k) for k in TELEMETRY_COLUMNS}


@dataclass
class GpuEnergy:
    """Energy of the used GPUs over one window (see :func:`combine_gpu_energy`)."""

    energy_j: float | None
    source: str
    estimated: bool
    counter_j: float | None
    integral_j: float | None
    assumed_power_w: float | None
    short_window: bool
    counter_reset: bool
    per_device: list[dict[str, Any]]


def combine_gpu_energy(
    duration_s: float,
    counters0: Sequence[float | None],
    counters1: Sequence[float | None],
    power_series: Sequence[tuple[Sequence[float], Sequence[float | None]]],
    min_counter_window_s: float = NVML_MIN_COUNTER_WINDOW_S,
) -> GpuEnergy:
    """Pick each device's energy: counter delta, else power integral (pure function).

    Args:
        duration_s: window length, s.
        counters0/counters1: per device counter reading (J) at start/end, ``None``
            when the device has no counter.
        power_series: per device ``(times_s, power_w)`` including the window edges.
    """
    per: list[dict[str, Any]] = []
    reset = False
    for i, (c0, c1) in enumerate(zip(counters0, counters1)):
        times, powers = power_series[i]
        d: dict[str, Any] = {"counter_j": None, "integral_j": None, "mean_power_w": None}
        if c0 is not None and c1 is not None:
            if c1 < c0:
                reset = True
                d["counter_reset"] = True
            else:
                d["counter_j"] = c1 - c0
        d["integral_j"] = trapezoid_energy_j(times, powers)
        pts = [(t, p) for t, p in zip(times, powers) if p is not None]
        span = pts[-1][0] - pts[0][0] if len(pts) >= 2 else 0.0
        if d["integral_j"] is not None and span > 0:
            d["mean_power_w"] = d["integral_j"] / span
        elif pts:
            d["mean_power_w"] = sum(p for _, p in pts) / len(pts)
        per.append(d)

    def total(name: str) -> float | None:
        vals = [d[name] for d in per]
        return sum(vals) if per and all(v is not None for v in vals) else None

    counter_j, integral_j = total("counter_j"), total("integral_j")
    short = duration_s < min_counter_window_s
    mean_power = total("mean_power_w")
    if short and mean_power is not None:
        return GpuEnergy(mean_power * duration_s, "nvml_power_integral", True, counter_j, integral_j,
                         mean_power, True, reset, per)
    chosen = [d["counter_j"] if d["counter_j"] is not None else d["integral_j"] for d in per]
    if not per or any(v is None for v in chosen):
        return GpuEnergy(None, UNAVAILABLE, False, counter_j, integral_j, None, short, reset, per)
    source = "nvml_counter" if all(d["counter_j"] is not None for d in per) else "nvml_power_integral"
    return GpuEnergy(sum(chosen), source, False, counter_j, integral_j, None, short, reset, per)


@dataclass
class _OpenWindow:
    key: str
    t0: float
    edge0: Sample
    counters0: list[float | None]
    missed0: int
    codecarbon: CodecarbonWindow | None
    torch_peaks: dict[int, list[int]] = field(default_factory=dict)  # dev -> [alloc, reserved]


class WindowHandle:
    """What ``with telemetry.window(key) as w`` yields; ``w.result`` is set on exit."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.result: WindowResult | None = None


class Telemetry:
    """Opens measurement windows on one device.

    Args:
        device: ``"cpu"``, ``"cuda"`` (every visible GPU) or ``"cuda:N"``.
        sample_period_s: sampler period in s; ``"auto"`` (default) = 0.05 s on GPUs
            (:data:`~harness.telemetry.sampler.DEFAULT_PERIOD_S`) and 0.5 s on the CPU
            (:data:`~harness.telemetry.sampler.DEFAULT_CPU_PERIOD_S`, which says why); ``None``
            or ``<= 0`` disables background sampling (tests then call ``telemetry.sampler.tick()``).
        country_iso_code: 3-letter country for codecarbon's offline CO2 intensity.
        idle_seconds: how long :meth:`measure_idle` measures.
        clock: time source (a FakeClock in tests).
        rapl_root: powercap root (a fake tree in tests).
        cuda_visible_devices: override for ``CUDA_VISIBLE_DEVICES`` (tests).
    """

    def __init__(
        self,
        device: str = "cpu",
        sample_period_s: float | str | None = "auto",
        country_iso_code: str = "USA",
        idle_seconds: float = 0.0,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rapl_root: Path | str = DEFAULT_ROOT,
        cuda_visible_devices: str | None = None,
        rss_tracker: PeakRssTracker | None = None,
    ) -> None:
        self.device = device
        self.is_cuda = device.split(":")[0] == "cuda"
        self.country_iso_code = country_iso_code
        self.idle_seconds = float(idle_seconds)
        self.clock = clock
        if sample_period_s == "auto":
            sample_period_s = DEFAULT_PERIOD_S if self.is_cuda else DEFAULT_CPU_PERIOD_S
        self.background = bool(sample_period_s and sample_period_s > 0)
        self.sample_period_s = float(sample_period_s) if self.background else None
        self.idle_power_w: float | None = None
        self.idle_power_source: str = UNAVAILABLE
        self.pid = os.getpid()
        self._lock = threading.RLock()
        self._open: dict[str, _OpenWindow] = {}
        self._rss = rss_tracker or PeakRssTracker()
        self._co2 = Co2Estimator(country_iso_code)

        self.nvml: Nvml | None = None
        self.gpus: list[NvmlDevice] = []
        self.nvml_error: str | None = None
        self.rapl: RaplCounter | None = None
        self.rapl_error: str | None = None
        if self.is_cuda:
            self._open_nvml(cuda_visible_devices)
        else:
            try:
                self.rapl = RaplCounter(rapl_root)
            except (RaplUnavailable, OSError, ValueError) as exc:
                self.rapl_error = str(exc)
        self._torch, self._torch_devices = self._find_torch()

        probes: dict[str, Any] = {"rss_bytes": rss_bytes}
        if self.gpus:
            nv, gpus, pid = self.nvml, self.gpus, self.pid
            probes["power_w"] = lambda: [nv.power_w(d) for d in gpus]
            probes["mem_used_bytes"] = lambda: [nv.memory_used_bytes(d) for d in gpus]
            probes["proc_mem_bytes"] = lambda: [nv.process_memory_bytes(d, pid) for d in gpus]
            probes["util"] = lambda: [nv.utilization(d) for d in gpus]
        if self.rapl is not None:
            probes["rapl_j"] = self.rapl.advance
        period = self.sample_period_s or DEFAULT_PERIOD_S
        if self.gpus and self.background and clock is SYSTEM_CLOCK:
            # GPU decode loops are launch-bound: a sampling thread would compete for the GIL
            # (harness.telemetry.process_sampler), so the ticks run in a child process.
            spec = {"kind": "nvml", "uuids": [d.uuid for d in self.gpus], "pid": self.pid}
            self.sampler: Sampler = ProcessSampler(spec, probes, period)
        else:
            self.sampler = Sampler(probes, period, clock)

    # -- setup -----------------------------------------------------------------
    def _open_nvml(self, cuda_visible_devices: str | None) -> None:
        try:
            nvml = Nvml.open()
        except NvmlUnavailable as exc:
            self.nvml_error = str(exc)
            return
        try:
            gpus = nvml.select(self.device, cuda_visible_devices)
        except Exception as exc:
            gpus, self.nvml_error = [], f"device selection failed: {exc!r}"
        if not gpus:
            self.nvml_error = self.nvml_error or f"no NVML device for {self.device!r}"
            nvml.close()
            return
        self.nvml, self.gpus = nvml, gpus

    def _find_torch(self) -> tuple[Any, list[int]]:
        if not self.is_cuda:
            return None, []
        try:
            import torch  # noqa: PLC0415 - only cuda devices need it

            if not torch.cuda.is_available():
                return None, []
            _, _, idx = self.device.partition(":")
            devs = [int(idx)] if idx else list(range(torch.cuda.device_count()))
            return torch, devs
        except Exception:
            return None, []

    @property
    def cpu_energy_source(self) -> str:
        """Where CPU energy comes from on this machine (for a non-cuda device)."""
        return "rapl" if self.rapl is not None else "codecarbon_estimate"

    # -- helpers ---------------------------------------------------------------------
    def _sync(self) -> None:
        if self._torch is not None:
            for d in self._torch_devices:
                self._torch.cuda.synchronize(d)

    def _fold_torch_peaks(self) -> None:
        """Fold torch's peak stats since the last reset into every open window."""
        if self._torch is None:
            return
        for d in self._torch_devices:
            alloc = int(self._torch.cuda.max_memory_allocated(d))
            resv = int(self._torch.cuda.max_memory_reserved(d))
            for w in self._open.values():
                a, r = w.torch_peaks.get(d, [0, 0])
                w.torch_peaks[d] = [max(a, alloc), max(r, resv)]

    def _reset_torch_peaks(self) -> None:
        if self._torch is not None:
            for d in self._torch_devices:
                self._torch.cuda.reset_peak_memory_stats(d)

    def _gpu_counters(self) -> list[float | None]:
        assert self.nvml is not None or not self.gpus
        return [self.nvml.energy_j(d) for d in self.gpus] if self.nvml else []

    # -- windows ---------------------------------------------------------------------
    def begin(self, key: str) -> None:
        """Open window ``key`` (unique among open windows)."""
        with self._lock:
            if key in self._open:
                raise ValueError(f"window {key!r} is already open")
            self._sync()
            cc = None
            if not self.is_cuda and self.rapl is None:
                try:
                    cc = CodecarbonWindow(self.country_iso_code)
                    cc.start()
                except CodecarbonUnavailable:
                    cc = None
            if not self._open and self.background:
                self.sampler.start()
            self._fold_torch_peaks()
            self._reset_torch_peaks()
            self._rss.begin(key)
            counters0 = self._gpu_counters()
            t0 = self.clock.now()
            edge0 = self.sampler.read_probes()
            w = _OpenWindow(key, t0, edge0, counters0, self.sampler.missed_ticks, cc)
            if self._torch is not None:
                w.torch_peaks = {d: [0, 0] for d in self._torch_devices}
            self._open[key] = w

    def end(self, key: str) -> WindowResult:
        """Close window ``key`` and return its :class:`WindowResult`."""
        with self._lock:
            if key not in self._open:
                raise ValueError(f"window {key!r} is not open")
            self._sync()
            counters1 = self._gpu_counters()
            t1 = self.clock.now()
            edge1 = self.sampler.read_probes()
            ticks = self.sampler.samples_between(self._open[key].t0, t1)
            self._fold_torch_peaks()
            w = self._open.pop(key)
            missed = self.sampler.missed_ticks - w.missed0
            peak_rss, rss_source = self._rss.end(key, [s.values.get("rss_bytes") for s in ticks])
            if not self._open and self.background:
                self.sampler.stop()
                self.sampler.clear()
            estimate: CodecarbonEstimate | None = None
            cc_error = None
            if w.codecarbon is not None:
                try:
                    estimate = w.codecarbon.stop()
                except CodecarbonUnavailable as exc:
                    cc_error = str(exc)

        samples = sorted([w.edge0, *ticks, edge1], key=lambda s: s.t)
        res = WindowResult(key=key, duration_s=t1 - w.t0, samples=samples)
        res.peak_rss_bytes, res.peak_rss_source = peak_rss, rss_source
        res.idle_power_w, res.idle_power_source = self.idle_power_w, self.idle_power_source
        if self.background:
            res.sampler_period_s = self.sample_period_s
            res.sampler_achieved_period_s = achieved_period_s(ticks)
            res.sampler_missed_ticks = missed
        if self.is_cuda:
            self._fill_gpu(res, w, counters1, samples)
        else:
            self._fill_cpu(res, w, edge1, estimate, cc_error)
        if res.energy_j is not None and res.duration_s > 0:
            res.avg_power_w = res.energy_j / res.duration_s
        if res.co2_kg is None and res.energy_j is not None:
            res.co2_kg = self._co2.co2_kg(res.energy_j)
            res.co2_source = CO2_SOURCE if res.co2_kg is not None else UNAVAILABLE
        return res

    @contextmanager
    def window(self, key: str) -> Iterator[WindowHandle]:
        """``with tel.window(key) as w: ...`` then ``w.result``; closes on error too."""
        handle = WindowHandle(key)
        self.begin(key)
        try:
            yield handle
        finally:
            handle.result = self.end(key)

    # -- result assembly -----------------------------------------------------------
    def _fill_gpu(self, res: WindowResult, w: _OpenWindow, counters1: list[float | None], samples: list[Sample]) -> None:
        if self._torch is not None:
            res.peak_allocated_bytes = sum(p[0] for p in w.torch_peaks.values())
            res.peak_reserved_bytes = sum(p[1] for p in w.torch_peaks.values())
        if not self.gpus:
            res.details["nvml_error"] = self.nvml_error
            return
        n = len(self.gpus)
        series = []
        for i in range(n):
            times, powers = [], []
            for s in samples:
                p = s.values.get("power_w")
                times.append(s.t)
                powers.append(p[i] if p is not None else None)
            series.append((times, powers))
        g = combine_gpu_energy(res.duration_s, w.counters0, counters1, series)
        res.energy_j, res.energy_source, res.energy_estimated = g.energy_j, g.source, g.estimated
        res.energy_counter_j, res.energy_integral_j = g.counter_j, g.integral_j
        res.energy_assumed_power_w = g.assumed_power_w
        res.flag_short_window, res.flag_counter_reset = g.short_window, g.counter_reset
        res.details["gpus"] = [{"uuid": d.uuid, "name": d.name, **pd} for d, pd in zip(self.gpus, g.per_device)]
        res.peak_device_used_bytes = _peak_of_totals(samples, "mem_used_bytes", require_all=True)
        res.peak_process_device_used_bytes = _peak_of_totals(samples, "proc_mem_bytes", require_all=False)
        utils = []
        for s in samples:
            u = [x for x in (s.values.get("util") or []) if x is not None]
            if u:
                utils.append(sum(u) / len(u))
        res.gpu_util_mean = sum(utils) / len(utils) if utils else None

    def _fill_cpu(self, res: WindowResult, w: _OpenWindow, edge1: Sample,
                  estimate: CodecarbonEstimate | None, cc_error: str | None) -> None:
        if self.rapl is not None:
            e0, e1 = w.edge0.values.get("rapl_j"), edge1.values.get("rapl_j")
            if e0 is not None and e1 is not None:
                res.energy_j = res.energy_counter_j = e1 - e0
                res.energy_source = "rapl"
                res.flag_short_window = res.duration_s < RAPL_MIN_WINDOW_S
            return
        if estimate is not None:
            res.energy_j = estimate.energy_j
            res.energy_source = "codecarbon_estimate"
            res.energy_estimated = True
            res.energy_assumed_power_w = estimate.assumed_cpu_power_w
            res.co2_kg = estimate.co2_kg
            res.co2_source = CO2_SOURCE if estimate.co2_kg is not None else UNAVAILABLE
            if res.duration_s < CODECARBON_MIN_WINDOW_S:
                res.flag_short_window = True
                if estimate.cpu_power_w is not None:
                    res.energy_j = estimate.cpu_power_w * res.duration_s
                    res.co2_kg, res.co2_source = None, UNAVAILABLE  # recomputed for the new energy
            res.details["codecarbon"] = {
                "cpu_energy_j": estimate.cpu_energy_j,
                "ram_energy_j": estimate.ram_energy_j,
                "cpu_power_w": estimate.cpu_power_w,
                "ram_power_w": estimate.ram_power_w,
            }
        else:
            res.details["codecarbon_error"] = cc_error or "codecarbon unavailable"

    # -- idle power ------------------------------------------------------------------
    def measure_idle(self) -> float | None:
        """Measure idle power (W) for ``idle_seconds`` where NVML or RAPL exists.

        NVML: counter delta / elapsed (``idle_power_source='nvml_counter'``),
        else mean sampled power (``'nvml_power'``); with ``idle_seconds <= 0``
        one instant reading (``'nvml_instant'``). RAPL: counter delta / elapsed
        (``'rapl'``). Otherwise ``None`` and ``'unavailable'``. The value is
        reported in every later window, never subtracted.
        """
        if self.gpus and self.nvml is not None:
            nv = self.nvml
            if self.idle_seconds <= 0:
                ps = [nv.power_w(d) for d in self.gpus]
                self._set_idle(sum(ps) if all(p is not None for p in ps) else None, "nvml_instant")
                return self.idle_power_w
            self._sync()
            c0, t0 = self._gpu_counters(), self.clock.now()
            readings: list[float] = []
            period = self.sample_period_s or DEFAULT_PERIOD_S
            while self.clock.now() - t0 < self.idle_seconds:
                ps = [nv.power_w(d) for d in self.gpus]
                if all(p is not None for p in ps):
                    readings.append(sum(ps))
                self.clock.sleep(period)
            c1, elapsed = self._gpu_counters(), self.clock.now() - t0
            deltas = [b - a if a is not None and b is not None and b >= a else None for a, b in zip(c0, c1)]
            if elapsed >= NVML_MIN_COUNTER_WINDOW_S and all(d is not None for d in deltas):
                self._set_idle(sum(deltas) / elapsed, "nvml_counter")
            else:
                self._set_idle(sum(readings) / len(readings) if readings else None, "nvml_power")
        elif self.rapl is not None and self.idle_seconds > 0:
            try:
                e0, t0 = self.rapl.advance(), self.clock.now()
                self.clock.sleep(self.idle_seconds)
                e1, elapsed = self.rapl.advance(), self.clock.now() - t0
                self._set_idle((e1 - e0) / elapsed if elapsed > 0 else None, "rapl")
            except OSError:
                self._set_idle(None, UNAVAILABLE)
        else:
            self._set_idle(None, UNAVAILABLE)
        return self.idle_power_w

    def _set_idle(self, watts: float | None, source: str) -> None:
        self.idle_power_w = watts
        self.idle_power_source = source if watts is not None else UNAVAILABLE

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Stop the sampler and release NVML. Open windows are abandoned."""
        with self._lock:
            for w in self._open.values():
                if w.codecarbon is not None:
                    try:
                        w.codecarbon.stop()
                    except Exception:
                        pass
            self._open.clear()
            self.sampler.stop()
            self.sampler.clear()
            if isinstance(self.sampler, ProcessSampler):
                self.sampler.close()
            if self.nvml is not None:
                self.nvml.close()
                self.nvml = None
            self.gpus = []

    def __enter__(self) -> "Telemetry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _peak_of_totals(samples: Sequence[Sample], name: str, require_all: bool) -> int | None:
    """Largest per-sample sum over devices of probe ``name`` (bytes)."""
    best: int | None = None
    for s in samples:
        vals = s.values.get(name)
        if not vals:
            continue
        known = [v for v in vals if v is not None]
        if not known or (require_all and len(known) != len(vals)):
            continue
        total = int(sum(known))
        best = total if best is None else max(best, total)
    return best
