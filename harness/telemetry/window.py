"""Measurement windows: time, energy, memory and utilisation of a block of code.

Modelled on Zeus's ``ZeusMonitor.begin_window/end_window``: a window snapshots
counters at its start, reads them again at its end and returns a
:class:`~harness.telemetry.result.WindowResult`. Windows are keyed; nested and overlapping
windows with different keys are supported.

Energy, per device kind (``energy_source`` names what fed ``energy_j``):

- ``cuda``: the NVML counter of the used GPU, checked against the integral of sampled power,
  with the power integral as fallback and for short windows (rules: :mod:`.gpu_energy`;
  ``flag_energy_disagree``, ``flag_short_window``, ``flag_counter_reset``).
  ``energy_counter_j`` and ``energy_integral_j`` are both kept where available.
- ``cpu``: RAPL package energy (``rapl``), else codecarbon's offline model
  (``codecarbon_estimate``, ``energy_estimated=True``; windows under
  :data:`CODECARBON_MIN_WINDOW_S` are flagged short and use its modelled
  power x duration), else ``unavailable``.

Unknown energy is ``None`` with ``energy_source='unavailable'``, never 0 J.
``idle_power_w`` is reported from :meth:`Telemetry.measure_idle`, never
subtracted. ``energy_attributed`` is always ``False`` here: a window measures
whole devices; sharing a window among cells is the caller's business.

GPU memory: four peaks and their order check (:mod:`.gpu_memory`, ``flag_memory_order``).
Other processes: ``other_cpu_share``, ``other_gpu_*`` and ``flag_interference``
(:mod:`.interference`).

Which GPU: ``cuda:N`` is CUDA device N and ``cuda`` the current CUDA device (where
``.to("cuda")`` puts the model), mapped to NVML by UUID or PCI bus id (:mod:`.nvml`).
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .clock import SYSTEM_CLOCK, Clock
from .codecarbon_cpu import CO2_SOURCE, Co2Estimator, CodecarbonEstimate, CodecarbonUnavailable, CodecarbonWindow
from .cuda_devices import CudaDevice, cuda_devices, current_index
from .gpu_energy import NVML_MIN_COUNTER_WINDOW_S, GpuEnergy, combine_gpu_energy, power_series
from .gpu_memory import memory_order_broken, peak_of_totals
from .interference import PROC, CpuProbe, CpuSnapshot, describe, gpu_others, interference_flag, other_cpu_share
from .memory import PeakRssTracker, rss_bytes
from .nvml import Nvml, NvmlDevice, NvmlUnavailable
from .process_sampler import ProcessSampler
from .rapl import DEFAULT_ROOT, RaplCounter, RaplUnavailable
from .result import ENERGY_SOURCES, TELEMETRY_COLUMNS, UNAVAILABLE, WindowHandle, WindowResult
from .sampler import DEFAULT_CPU_PERIOD_S, DEFAULT_PERIOD_S, Sample, Sampler, achieved_period_s

__all__ = [  # re-exported: the public names of the telemetry window API
    "CODECARBON_MIN_WINDOW_S", "ENERGY_SOURCES", "GpuEnergy", "NVML_MIN_COUNTER_WINDOW_S", "RAPL_MIN_WINDOW_S",
    "TELEMETRY_COLUMNS", "Telemetry", "UNAVAILABLE", "WindowHandle", "WindowResult", "combine_gpu_energy",
]

RAPL_MIN_WINDOW_S = 0.01
"""Shortest window (s) trusted to RAPL: ~10 updates of its ~1 ms counter."""
CODECARBON_MIN_WINDOW_S = 0.1
"""Shortest window (s) trusted to codecarbon's own integration: it skips its
closing measurement when the last one is under 50 ms old (so a very short
window reads ~0 J), and its CPU load comes from 10 ms ``cpu_times`` ticks.
Shorter windows get ``(modelled CPU + RAM power) x duration``, flagged short."""


@dataclass
class _OpenWindow:
    key: str
    t0: float
    edge0: Sample
    counters0: list[float | None]
    missed0: int
    codecarbon: CodecarbonWindow | None
    cpu0: CpuSnapshot | None = None
    wall_us0: int = 0  # NVML's per-process utilisation is keyed by wall-clock µs (not a duration)
    torch_peaks: dict[int, list[int]] = field(default_factory=dict)  # dev -> [alloc, reserved]


class Telemetry:
    """Opens measurement windows on one device.

    Args:
        device: ``"cpu"``, ``"cuda"`` (the current CUDA device) or ``"cuda:N"``.
        sample_period_s: sampler period in s; ``"auto"`` (default) = 0.05 s on GPUs
            (:data:`~harness.telemetry.sampler.DEFAULT_PERIOD_S`) and 0.5 s on the CPU
            (:data:`~harness.telemetry.sampler.DEFAULT_CPU_PERIOD_S`, which says why); ``None``
            or ``<= 0`` disables background sampling (tests then call ``telemetry.sampler.tick()``).
        country_iso_code: 3-letter country for codecarbon's offline CO2 intensity.
        idle_seconds: how long :meth:`measure_idle` measures.
        clock: time source (a FakeClock in tests).
        rapl_root: powercap root (a fake tree in tests).
        cuda_visible_devices: override for ``CUDA_VISIBLE_DEVICES`` (tests).
        cuda_runtime: the CUDA runtime's devices in CUDA order (tests); default: asked from
            torch (:func:`~harness.telemetry.cuda_devices.cuda_devices`), else
            ``CUDA_VISIBLE_DEVICES`` is read.
        proc_root: ``/proc`` (a fake tree in tests) for the CPU interference figures.
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
        cuda_runtime: list[CudaDevice] | None = None,
        proc_root: Path | str = PROC,
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
        self._cpu = CpuProbe(self.pid, proc_root)

        self.nvml: Nvml | None = None
        self.gpus: list[NvmlDevice] = []
        self.nvml_error: str | None = None
        self.rapl: RaplCounter | None = None
        self.rapl_error: str | None = None
        self._torch, self._torch_devices = self._find_torch()
        if self.is_cuda:
            if cuda_runtime is None and self._torch is not None:
                cuda_runtime = cuda_devices(self._torch)
            self._open_nvml(cuda_visible_devices, cuda_runtime)
        else:
            try:
                self.rapl = RaplCounter(rapl_root)
            except (RaplUnavailable, OSError, ValueError) as exc:
                self.rapl_error = str(exc)

        probes: dict[str, Any] = {"rss_bytes": rss_bytes}
        if self.gpus:
            nv, gpus, pid = self.nvml, self.gpus, self.pid
            probes["power_w"] = lambda: [nv.power_w(d) for d in gpus]
            probes["mem_used_bytes"] = lambda: [nv.memory_used_bytes(d) for d in gpus]
            probes["proc_mem_bytes"] = lambda: [nv.process_memory_bytes(d, pid) for d in gpus]
            probes["util"] = lambda: [nv.utilization(d) for d in gpus]
            probes["other_procs"] = lambda: [nv.other_processes(d, pid) for d in gpus]
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
    def _open_nvml(self, cuda_visible_devices: str | None, cuda_runtime: list[CudaDevice] | None) -> None:
        try:
            nvml = Nvml.open()
        except NvmlUnavailable as exc:
            self.nvml_error = str(exc)
            return
        current = self._torch_devices[0] if self._torch_devices else 0
        try:
            gpus = nvml.select(self.device, cuda_visible_devices, cuda=cuda_runtime, current=current)
        except Exception as exc:
            gpus, self.nvml_error = [], f"device selection failed: {exc!r}"
        if not gpus:
            why = f": {nvml.selection_error}" if nvml.selection_error else ""
            self.nvml_error = self.nvml_error or f"no NVML device for {self.device!r}{why}"
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
            return torch, [int(idx) if idx else current_index(torch)]
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
            cpu0 = self._cpu.snapshot()
            wall_us0 = int(time.time() * 1e6)
            counters0 = self._gpu_counters()
            t0 = self.clock.now()
            edge0 = self.sampler.read_probes()
            w = _OpenWindow(key, t0, edge0, counters0, self.sampler.missed_ticks, cc, cpu0, wall_us0)
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
            cpu1 = self._cpu.snapshot()
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
        self._fill_interference(res, w, cpu1, samples)
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
            self._check_memory_order(res)
            return
        g = combine_gpu_energy(res.duration_s, w.counters0, counters1, power_series(samples, len(self.gpus)))
        res.energy_j, res.energy_source, res.energy_estimated = g.energy_j, g.source, g.estimated
        res.energy_counter_j, res.energy_integral_j = g.counter_j, g.integral_j
        res.energy_assumed_power_w = g.assumed_power_w
        res.flag_short_window, res.flag_counter_reset = g.short_window, g.counter_reset
        res.flag_energy_disagree = g.disagree
        res.details["gpus"] = [{"uuid": d.uuid, "name": d.name, "cuda_index": d.cuda_index, **pd}
                               for d, pd in zip(self.gpus, g.per_device)]
        res.peak_device_used_bytes = peak_of_totals(samples, "mem_used_bytes", require_all=True)
        res.peak_process_device_used_bytes = peak_of_totals(samples, "proc_mem_bytes", require_all=False)
        self._check_memory_order(res)
        utils = []
        for s in samples:
            u = [x for x in (s.values.get("util") or []) if x is not None]
            if u:
                utils.append(sum(u) / len(u))
        res.gpu_util_mean = sum(utils) / len(utils) if utils else None

    @staticmethod
    def _check_memory_order(res: WindowResult) -> None:
        broken = memory_order_broken(res.peak_allocated_bytes, res.peak_reserved_bytes,
                                     res.peak_process_device_used_bytes, res.peak_device_used_bytes)
        res.flag_memory_order = bool(broken)
        if broken:
            res.details["memory_order"] = broken

    def _fill_interference(self, res: WindowResult, w: _OpenWindow, cpu1: CpuSnapshot | None,
                           samples: list[Sample]) -> None:
        res.other_cpu_share = other_cpu_share(w.cpu0, cpu1)
        gpu = None
        if self.gpus and self.nvml is not None:
            utils = [self.nvml.process_utilization(d, w.wall_us0, self.pid) for d in self.gpus]
            merged: dict[int, float] | None = {}
            for u in utils:
                if u is None:
                    merged = None
                    break
                for pid, share in u.items():
                    merged[pid] = max(merged.get(pid, 0.0), share)
            gpu = gpu_others(samples, merged)
            res.other_gpu_processes, res.other_gpu_memory_bytes = gpu.processes, gpu.memory_bytes
            res.other_gpu_util_max = gpu.util_max
        res.flag_interference = interference_flag(res.other_cpu_share, res.other_gpu_processes, res.other_gpu_util_max)
        res.details["interference"] = describe(res.other_cpu_share, gpu)

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

