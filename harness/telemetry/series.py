"""A window's probe readings as rows of a time series (``<run>/telemetry/<cell_hash>.parquet``).

Opt-in (``harness run --telemetry-series``): the per-cell figures never depend on it. One row
per reading and device (CPU runs: one row per reading, ``device_index`` null). Columns follow
:data:`harness.results.schema.TELEMETRY_SERIES_SCHEMA`; SI units in the names; a probe that
failed or does not exist on this machine is null, never 0.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.telemetry.sampler import Sample

__all__ = ["series_rows"]

_PER_DEVICE = {"power_w": "power_w", "mem_used_bytes": "device_used_bytes", "proc_mem_bytes": "process_device_used_bytes", "util": "gpu_util"}


def _at(values: Any, i: int) -> Any:
    if isinstance(values, (list, tuple)):
        return values[i] if i < len(values) else None
    return None


def series_rows(samples: Sequence[Sample], cell_hash: str) -> list[dict[str, Any]]:
    """Rows for ``samples`` (one window's readings, time order).

    ``t_s`` is seconds since the window's first reading; ``cpu_energy_counter_j`` is the RAPL
    total since the telemetry started (differences between rows are energy over that span).
    """
    if not samples:
        return []
    t0 = samples[0].t
    rows = []
    for s in samples:
        v = s.values
        n_dev = max((len(v[k]) for k in _PER_DEVICE if isinstance(v.get(k), (list, tuple))), default=0)
        for d in range(n_dev) if n_dev else [None]:
            row = {
                "cell_hash": cell_hash,
                "t_s": s.t - t0,
                "device_index": d,
                "rss_bytes": v.get("rss_bytes"),
                "cpu_energy_counter_j": v.get("rapl_j"),
            }
            for probe, column in _PER_DEVICE.items():
                row[column] = _at(v.get(probe), d) if d is not None else None
            rows.append(row)
    return rows
