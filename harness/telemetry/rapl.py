"""CPU package energy from Linux RAPL (``/sys/class/powercap``).

Source: the powercap sysfs interface. Each top-level zone
``intel-rapl:<N>`` with a ``name`` of ``package-<N>`` is one CPU socket's
package domain; its subzones (``intel-rapl:<N>:<M>``: core, uncore, dram) are
parts of the package or separate rails and are NOT added, nor is a top-level
``psys`` zone (platform energy that already contains the packages), so nothing
is counted twice. ``energy_uj`` is a counter in microjoules that wraps to 0
after ``max_energy_range_uj``; a read that went down is taken as one wrap.

Reading ``energy_uj`` needs root on most kernels since 2020 (CVE-2020-8694);
when any package file is unreadable the reader is unavailable and the caller
falls through to the next source. The root path is injectable for tests.

A counter that wraps more than once between two reads cannot be told from one
that wrapped once, so the telemetry advances :class:`RaplCounter` from every
sampler tick as well as at window edges (a wrap takes tens of minutes).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/sys/class/powercap")
UJ_PER_J = 1e6
_TOP_ZONE = re.compile(r"^intel-rapl:(\d+)$")


class RaplUnavailable(RuntimeError):
    """No readable RAPL package domain."""


@dataclass(frozen=True)
class RaplZone:
    """One package domain: its sysfs folder, name and wrap range (uJ)."""

    path: Path
    name: str
    max_energy_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def wrapped_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Counter increase from ``before`` to ``after`` allowing one wrap-around."""
    if after >= before:
        return after - before
    return (max_range_uj - before) + after


def find_package_zones(root: Path | str = DEFAULT_ROOT) -> list[RaplZone]:
    """Readable top-level package zones under ``root``; raise :class:`RaplUnavailable`."""
    root = Path(root)
    zones: list[RaplZone] = []
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise RaplUnavailable(f"cannot list {root}: {exc}") from exc
    for entry in entries:
        if not _TOP_ZONE.match(entry.name):
            continue
        try:
            name = (entry / "name").read_text().strip()
            if not name.startswith("package"):
                continue  # psys and others overlap the packages
            zone = RaplZone(entry, name, int((entry / "max_energy_range_uj").read_text().strip()))
            zone.read_uj()  # permission check
        except (OSError, ValueError) as exc:
            raise RaplUnavailable(f"{entry} unreadable: {exc}") from exc
        zones.append(zone)
    if not zones:
        raise RaplUnavailable(f"no package zone under {root}")
    return zones


class RaplCounter:
    """Monotonic package energy (J) accumulated from wrap-aware RAPL reads.

    :meth:`advance` reads every zone, adds the wrap-corrected increase since the
    previous read and returns the running total in joules since construction.
    Thread-safe (the sampler thread and window edges both call it).
    """

    def __init__(self, root: Path | str = DEFAULT_ROOT) -> None:
        self.zones = find_package_zones(root)
        self._lock = threading.Lock()
        self._last = [z.read_uj() for z in self.zones]
        self._total_uj = 0

    def advance(self) -> float:
        with self._lock:
            for i, z in enumerate(self.zones):
                now = z.read_uj()
                self._total_uj += wrapped_delta_uj(self._last[i], now, z.max_energy_range_uj)
                self._last[i] = now
            return self._total_uj / UJ_PER_J
