"""What a measurement window returns: :class:`WindowResult` and its column contract.

The columns (:data:`TELEMETRY_COLUMNS`) are the telemetry columns of ``docs/CONTRACTS.md``, in
that order; SI units in every name. How each is measured: :mod:`harness.telemetry.window`
(energy: :mod:`.gpu_energy`; GPU memory order: :mod:`.gpu_memory`; other processes:
:mod:`.interference`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .sampler import Sample

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
    "flag_energy_disagree",
    "flag_memory_order",
    "other_cpu_share",
    "other_gpu_processes",
    "other_gpu_memory_bytes",
    "other_gpu_util_max",
    "flag_interference",
)
ENERGY_SOURCES = ("nvml_counter", "nvml_power_integral", "rapl", "codecarbon_estimate", "unavailable")
UNAVAILABLE = "unavailable"


@dataclass
class WindowResult:
    """What one window measured. Units are SI and in the names; see CONTRACTS.md.

    Flags (``False`` when the check does not apply, e.g. GPU checks on a CPU window):

    - ``flag_energy_disagree``: on a window of at least ``NVML_MIN_COUNTER_WINDOW_S`` the NVML
      energy counter and the integral of sampled power differ by more than
      ``ENERGY_DISAGREE_SHARE`` (the counter's figure is kept), or a counter read 0 J while the
      integral was above 0 (the integral is used) (:mod:`.gpu_energy`).
    - ``flag_memory_order``: the peaks break allocated ≤ reserved ≤ NVML process ≤ NVML device
      used (:mod:`.gpu_memory`; the four figures are kept).
    - ``flag_interference``: other processes took more of the machine than
      :mod:`.interference`'s documented thresholds (``other_cpu_share``,
      ``other_gpu_processes`` / ``other_gpu_util_max``).

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
    flag_energy_disagree: bool = False
    flag_memory_order: bool = False
    other_cpu_share: float | None = None
    other_gpu_processes: int | None = None
    other_gpu_memory_bytes: int | None = None
    other_gpu_util_max: float | None = None
    flag_interference: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list, repr=False)  # edges + ticks, time order

    def as_columns(self) -> dict[str, Any]:
        """Exactly the telemetry columns of CONTRACTS.md, in that order."""
        return {k: getattr(self, k) for k in TELEMETRY_COLUMNS}


CHECK_FLAGS = ("flag_energy_disagree", "flag_memory_order", "flag_interference")
OTHER_LOAD = ("other_cpu_share", "other_gpu_processes", "other_gpu_memory_bytes", "other_gpu_util_max")


def combine_checks(*windows: dict[str, Any]) -> dict[str, Any]:
    """The flags and other-load figures of one cell measured in several windows (``as_columns()``
    dicts, e.g. a training cell's train and eval windows): a flag is set if any window set it;
    each ``other_*`` figure is the largest known (``None`` if no window knew it)."""
    out: dict[str, Any] = {k: any(bool(w.get(k)) for w in windows) for k in CHECK_FLAGS}
    for k in OTHER_LOAD:
        known = [w[k] for w in windows if w.get(k) is not None]
        out[k] = max(known) if known else None
    return out


class WindowHandle:
    """What ``with telemetry.window(key) as w`` yields; ``w.result`` is set on exit."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.result: WindowResult | None = None
