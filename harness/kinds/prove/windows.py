"""One set of telemetry columns for a cell measured in several generation windows (a cascade's
rounds, each with the checker between them outside any window)."""

from __future__ import annotations

from typing import Any

from harness.telemetry.result import combine_checks


def _sum(values: list[Any]) -> float | None:
    return None if any(v is None for v in values) else float(sum(values))


def _max(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def merge_windows(results: list) -> dict[str, Any]:
    """Telemetry columns (``WindowResult.as_columns()`` names) of consecutive windows.

    Durations, energies, CO2 and missed ticks add up (an energy is ``None`` when any window's is
    unknown); peaks are the maximum; ``avg_power_w`` = total energy / total duration;
    ``gpu_util_mean`` and the achieved sampler period are duration-weighted means; flags are
    true when any window raised them and the ``other_*`` load figures are the largest
    (:func:`harness.telemetry.result.combine_checks`); sources and idle power come from the first
    window (the same telemetry measured all of them).

    Raises:
        ValueError: no window.
    """
    if not results:
        raise ValueError("no generation window was measured")
    cols = [r.as_columns() for r in results]
    if len(cols) == 1:
        return cols[0]
    first = dict(cols[0])
    duration = sum(c["duration_s"] for c in cols)

    def weighted(name: str) -> float | None:
        pairs = [(c[name], c["duration_s"]) for c in cols if c[name] is not None]
        return sum(v * d for v, d in pairs) / sum(d for _, d in pairs) if pairs and sum(d for _, d in pairs) > 0 else None

    energy = _sum([c["energy_j"] for c in cols])
    first.update({
        "duration_s": duration,
        "energy_j": energy,
        "energy_counter_j": _sum([c["energy_counter_j"] for c in cols]),
        "energy_integral_j": _sum([c["energy_integral_j"] for c in cols]),
        "energy_estimated": any(c["energy_estimated"] for c in cols),
        "energy_attributed": any(c["energy_attributed"] for c in cols),
        "avg_power_w": energy / duration if energy is not None and duration > 0 else None,
        "co2_kg": _sum([c["co2_kg"] for c in cols]),
        "gpu_util_mean": weighted("gpu_util_mean"),
        "sampler_achieved_period_s": weighted("sampler_achieved_period_s"),
        "sampler_missed_ticks": _sum([c["sampler_missed_ticks"] for c in cols]),
        "flag_short_window": any(c["flag_short_window"] for c in cols),
        "flag_counter_reset": any(c["flag_counter_reset"] for c in cols),
    })
    for name in ("peak_rss_bytes", "peak_allocated_bytes", "peak_reserved_bytes", "peak_device_used_bytes",
                 "peak_process_device_used_bytes"):
        first[name] = _max([c[name] for c in cols])
    if first["sampler_missed_ticks"] is not None:
        first["sampler_missed_ticks"] = int(first["sampler_missed_ticks"])
    if energy is None:
        first["energy_source"] = "unavailable"
    first.update(combine_checks(*cols))  # the window checks: a flag of any round flags the cell
    return first
