"""GPU energy of one window: the NVML counter, checked against the integral of sampled power.

Per used device (pure functions; the window passes the counter readings at its edges and the
power samples between them):

- the counter delta (``nvmlDeviceGetTotalEnergyConsumption``, mJ → J in :mod:`.nvml`); a counter
  that went down (driver reload) is dropped and flagged ``counter_reset``;
- the trapezoidal integral of sampled power (:func:`~harness.telemetry.sampler.trapezoid_energy_j`).

Which figure is reported (``source`` names it):

- window shorter than :data:`NVML_MIN_COUNTER_WINDOW_S` (~10 updates of a ~100 ms counter, which
  reads coarsely over a few updates: 0 J or a whole update too much): mean sampled power ×
  duration (``nvml_power_integral``, estimated, ``short_window``); with no power reading at all
  the energy is ``unavailable`` (``None``), never the counter's 0 J;
- otherwise the counter, and for a device without a usable counter the integral. The two are
  compared where both exist: when they differ by more than :data:`ENERGY_DISAGREE_SHARE` of the
  larger, the counter's figure is kept and ``disagree`` is set (public case: an idle window read
  187.4 J on the counter and 326.9 J integrated). A counter that reads 0 J while the integral is
  above 0 is not trusted (a stuck counter): that device's integral is used (``source``
  ``nvml_power_integral``) and ``disagree`` is set.

The power integral is ``estimated=False``: the board's sensor *measures* power, only its
integration between samples is approximate (Zeus, ``zeus/monitor/energy.py``, does the same
fallback). On Ampere and newer ``nvmlDeviceGetPowerUsage`` is a ~1 s average (:mod:`.nvml`), so
the integral lags bursts: a disagreement says "look at this window", not which figure is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .result import UNAVAILABLE
from .sampler import Sample, trapezoid_energy_j

NVML_MIN_COUNTER_WINDOW_S = 1.0
"""Shortest window (s) trusted to the NVML counter: ~10 updates of a ~100 ms counter."""

ENERGY_DISAGREE_SHARE = 0.05
"""Counter and power integral disagree when ``|counter − integral| > 5 % × max(counter, integral)``."""


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
    disagree: bool = False


def disagree(counter_j: float, integral_j: float, share: float = ENERGY_DISAGREE_SHARE) -> bool:
    """``|counter − integral| > share × max(counter, integral)`` (J; symmetric, 0 J safe)."""
    return abs(counter_j - integral_j) > share * max(abs(counter_j), abs(integral_j))


def power_series(samples: Sequence[Sample], n_devices: int) -> list[tuple[list[float], list[float | None]]]:
    """Per device ``(times_s, power_w)`` from a window's samples (``None`` where unread)."""
    series = []
    for i in range(n_devices):
        times, powers = [], []
        for s in samples:
            p = s.values.get("power_w")
            times.append(s.t)
            powers.append(p[i] if p is not None and i < len(p) else None)
        series.append((times, powers))
    return series


def _device(c0: float | None, c1: float | None, times: Sequence[float], powers: Sequence[float | None]) -> dict[str, Any]:
    d: dict[str, Any] = {"counter_j": None, "integral_j": None, "mean_power_w": None}
    if c0 is not None and c1 is not None:
        if c1 < c0:
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
    return d


def combine_gpu_energy(
    duration_s: float,
    counters0: Sequence[float | None],
    counters1: Sequence[float | None],
    power_series: Sequence[tuple[Sequence[float], Sequence[float | None]]],
    min_counter_window_s: float = NVML_MIN_COUNTER_WINDOW_S,
    disagree_share: float = ENERGY_DISAGREE_SHARE,
) -> GpuEnergy:
    """Pick each device's energy (pure function; rules in the module docstring).

    Args:
        duration_s: window length, s.
        counters0/counters1: per device counter reading (J) at start/end, ``None``
            when the device has no counter.
        power_series: per device ``(times_s, power_w)`` including the window edges.
        min_counter_window_s: shorter windows use mean power × duration.
        disagree_share: relative gap above which counter and integral disagree.
    """
    per = [_device(c0, c1, *power_series[i]) for i, (c0, c1) in enumerate(zip(counters0, counters1))]
    reset = any(d.get("counter_reset") for d in per)

    def total(name: str) -> float | None:
        vals = [d[name] for d in per]
        return sum(vals) if per and all(v is not None for v in vals) else None

    counter_j, integral_j = total("counter_j"), total("integral_j")
    short = duration_s < min_counter_window_s
    if short:
        mean_power = total("mean_power_w")
        if mean_power is None:  # no power reading: unknown, never the coarse counter's 0 J
            return GpuEnergy(None, UNAVAILABLE, False, counter_j, integral_j, None, True, reset, per)
        return GpuEnergy(mean_power * duration_s, "nvml_power_integral", True, counter_j, integral_j,
                         mean_power, True, reset, per)
    chosen: list[float | None] = []
    any_disagree = False
    for d in per:
        c, i = d["counter_j"], d["integral_j"]
        if c is not None and i is not None:
            if c == 0 and i > 0:  # a stuck counter: not trusted
                d["counter_untrusted"] = True
                c = None
            d["disagree"] = disagree(d["counter_j"], i, disagree_share)
            any_disagree = any_disagree or d["disagree"]
        d["used"] = "counter" if c is not None else ("integral" if i is not None else None)
        chosen.append(c if c is not None else i)
    if not per or any(v is None for v in chosen):
        return GpuEnergy(None, UNAVAILABLE, False, counter_j, integral_j, None, short, reset, per, any_disagree)
    source = "nvml_counter" if all(d["used"] == "counter" for d in per) else "nvml_power_integral"
    return GpuEnergy(sum(chosen), source, False, counter_j, integral_j, None, short, reset, per, any_disagree)
