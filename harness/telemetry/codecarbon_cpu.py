"""CPU energy *estimate* and CO2 from codecarbon, strictly offline.

Used for CPU energy only when RAPL is unreadable. codecarbon 3.x's
``OfflineEmissionsTracker`` is started and stopped once per window; on a Linux
machine without RAPL it models CPU power as ``TDP * (0.1 + 0.9 * load**3)``
("cpu_load" mode, machine-wide load from ``psutil.cpu_times``) and RAM power
from an estimated DIMM count. The TDP constant comes from
``codecarbon/data/hardware/cpu_power.csv`` matched on the CPU model name
(``codecarbon.core.cpu.TDP``), or, for an unknown model, 4 W per logical CPU
(``DEFAULT_POWER_PER_CORE``). It is read off the tracker's CPU hardware object
(``_tdp``) and reported as ``energy_assumed_power_w``.

``energy_j`` = codecarbon's ``cpu_energy`` (kWh -> J): the CPU package, the same scope
as RAPL's package domain, so the two CPU sources mean the same thing. codecarbon's RAM
figure (a fixed ~20 W model here, which would dominate a small-CPU estimate and hide the
CPU's load model) is kept beside it in ``ram_energy_j``, not added. GPU energy is excluded
(``gpu_ids=[]``: GPUs are measured by NVML), and PUE is fixed at 1.

Tracking mode: ``"machine"``. It models the whole package like RAPL and NVML
measure whole devices, so every energy source means "device energy during the
window"; ``"process"`` would scale the TDP by this process's CPU share with no
idle floor, an attribution the other sources do not make.

Offline guarantees (checked against codecarbon 3.3.2's source):
- ``OfflineEmissionsTracker`` never calls the cloud-metadata probe
  (``core.cloud.get_env_cloud_details`` -> 169.254.169.254) nor the geo-IP
  lookup (``GeoMetadata.from_geo_js``); only the online ``EmissionsTracker``
  does. The country is given, never looked up.
- Network sinks are all switched off *explicitly*, because codecarbon reads
  ``~/.codecarbon.config``, ``./.codecarbon.config`` and ``CODECARBON_*``
  environment variables for every argument left unset: ``output_methods=[]``
  (no API/HTTP/Prometheus/Logfire output, and no CSV written into the cwd),
  ``emissions_endpoint=None``, ``api_call_interval=-1``, and
  ``electricitymaps_api_token=""`` (an empty token also stops the fallback to a
  configured ``co2_signal_api_token``; with no token the CO2 intensity comes
  from codecarbon's bundled data).
- ``allow_multiple_runs=True`` so no lock file is created in the temp folder
  (and nested windows can each have a tracker); ``output_dir`` points at the
  temp folder in case a hardware backend writes a log.
- Its logger ("codecarbon") is set to ERROR before a tracker is built, since
  the tracker logs at INFO before applying its own ``log_level``.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any

J_PER_KWH = 3.6e6
CO2_SOURCE = "codecarbon_offline"
TRACKING_MODE = "machine"
LOGGER_NAME = "codecarbon"


class CodecarbonUnavailable(RuntimeError):
    """codecarbon is missing or failed to produce an estimate."""


def _quiet() -> None:
    logging.getLogger(LOGGER_NAME).setLevel(logging.ERROR)


def _tracker_class() -> Any:
    """Return ``OfflineEmissionsTracker`` (tests monkeypatch this)."""
    _quiet()
    from codecarbon import OfflineEmissionsTracker  # noqa: PLC0415 - heavy, lazy

    _quiet()  # importing codecarbon resets its logger level from the env
    return OfflineEmissionsTracker


def offline_tracker_kwargs(country_iso_code: str) -> dict[str, Any]:
    """Every argument that matters for staying offline and quiet, set explicitly."""
    return dict(
        country_iso_code=country_iso_code,
        region=None,
        cloud_provider=None,
        cloud_region=None,
        country_2letter_iso_code=None,
        output_methods=[],
        emissions_endpoint=None,
        electricitymaps_api_token="",
        api_call_interval=-1,
        allow_multiple_runs=True,
        output_dir=tempfile.gettempdir(),
        log_level="error",
        tracking_mode=TRACKING_MODE,
        measure_power_secs=3600.0,  # one measurement at stop covers the window
        gpu_ids=[],
        pue=1.0,
        wue=0.0,
        project_name="harness",
    )


@dataclass(frozen=True)
class CodecarbonEstimate:
    """codecarbon's figures for one window (SI units).

    Attributes:
        energy_j: CPU (package) modelled energy, J.
        cpu_energy_j / ram_energy_j: the two parts, J.
        assumed_cpu_power_w: the CPU TDP constant the load model scales, W.
        cpu_power_w / ram_power_w: mean modelled power over the window, W.
        co2_kg: emissions for ``energy_j`` at the country's bundled intensity, kg.
    """

    energy_j: float
    cpu_energy_j: float
    ram_energy_j: float
    assumed_cpu_power_w: float | None
    cpu_power_w: float | None
    ram_power_w: float | None
    co2_kg: float | None


class CodecarbonWindow:
    """One offline tracker spanning one telemetry window."""

    def __init__(self, country_iso_code: str = "USA") -> None:
        try:
            cls = _tracker_class()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.tracker = cls(**offline_tracker_kwargs(country_iso_code))
        except Exception as exc:
            raise CodecarbonUnavailable(f"codecarbon tracker could not be built: {exc!r}") from exc
        if not hasattr(self.tracker, "_conf"):  # __init__ swallowed an exception
            raise CodecarbonUnavailable("codecarbon tracker init failed")

    def start(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.tracker.start()  # codecarbon swallows its own exceptions here
        if getattr(self.tracker, "_start_time", None) is None:
            raise CodecarbonUnavailable("codecarbon tracker did not start")

    def stop(self) -> CodecarbonEstimate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.tracker.stop()
        data = getattr(self.tracker, "final_emissions_data", None)
        if data is None:
            raise CodecarbonUnavailable("codecarbon produced no emissions data")
        cpu_j = float(data.cpu_energy) * J_PER_KWH
        ram_j = float(data.ram_energy) * J_PER_KWH
        energy_j = cpu_j
        total_kwh = float(data.energy_consumed or 0.0)
        co2 = None
        if data.emissions is not None:
            # emissions cover energy_consumed; with gpu_ids=[] that is cpu+ram already
            co2 = float(data.emissions) * (energy_j / (total_kwh * J_PER_KWH)) if total_kwh > 0 else 0.0
        return CodecarbonEstimate(
            energy_j=energy_j,
            cpu_energy_j=cpu_j,
            ram_energy_j=ram_j,
            assumed_cpu_power_w=self.assumed_cpu_power_w(),
            cpu_power_w=_float_or_none(data.cpu_power),
            ram_power_w=_float_or_none(data.ram_power),
            co2_kg=co2,
        )

    def assumed_cpu_power_w(self) -> float | None:
        """The CPU TDP constant (W) of the tracker's CPU hardware object."""
        for hw in getattr(self.tracker, "_hardware", []) or []:
            if type(hw).__name__ == "CPU":
                return _float_or_none(getattr(hw, "_tdp", None))
        return None


def _float_or_none(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


class Co2Estimator:
    """CO2 (kg) for a measured energy, from codecarbon's bundled offline data.

    Uses ``codecarbon.core.emissions.Emissions.get_private_infra_emissions``
    with no Electricity Maps token, i.e. the country's average intensity from
    ``data/private_infra/global_energy_mix.json``; no network.
    """

    def __init__(self, country_iso_code: str = "USA") -> None:
        self.country_iso_code = country_iso_code
        self._engine: Any = None
        self._failed = False

    def co2_kg(self, energy_j: float | None) -> float | None:
        if energy_j is None or self._failed:
            return None
        try:
            if self._engine is None:
                _quiet()
                from codecarbon.core.emissions import Emissions  # noqa: PLC0415
                from codecarbon.core.units import Energy  # noqa: PLC0415
                from codecarbon.external.geography import GeoMetadata  # noqa: PLC0415
                from codecarbon.input import DataSource  # noqa: PLC0415

                _quiet()
                self._engine = (Emissions(DataSource(), electricitymaps_api_token=None), Energy, GeoMetadata)
            engine, energy_cls, geo_cls = self._engine
            geo = geo_cls(country_iso_code=self.country_iso_code)
            return float(engine.get_private_infra_emissions(energy_cls.from_energy(kWh=energy_j / J_PER_KWH), geo))
        except Exception:
            self._failed = True
            return None
