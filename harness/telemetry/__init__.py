"""Telemetry: time, energy, memory and provenance for benchmark cells.

Public API::

    tel = Telemetry(device="cpu" | "cuda" | "cuda:0", sample_period_s="auto",
                    country_iso_code="USA", idle_seconds=0.0)
    tel.measure_idle()
    with tel.window("cell-key") as w:
        ...
    w.result.as_columns()   # the telemetry columns of docs/CONTRACTS.md
    tel.begin("k"); ...; tel.end("k")   # the same without a with-block
    tel.close()
    collect_provenance(device) -> dict;  hardware_id(prov) -> str
"""

from .clock import Clock, FakeClock, monotonic_s
from .provenance import collect_provenance, hardware_id
from .sampler import Sampler, trapezoid_energy_j
from .window import ENERGY_SOURCES, TELEMETRY_COLUMNS, Telemetry, WindowHandle, WindowResult

__all__ = [
    "Clock",
    "ENERGY_SOURCES",
    "FakeClock",
    "Sampler",
    "TELEMETRY_COLUMNS",
    "Telemetry",
    "WindowHandle",
    "WindowResult",
    "collect_provenance",
    "hardware_id",
    "monotonic_s",
    "trapezoid_energy_j",
]
