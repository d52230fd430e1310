"""NVML access: the only module of the harness that imports ``pynvml``.

``pynvml`` (package ``nvidia-ml-py``) is imported lazily through
:func:`_import_pynvml`, which tests replace with a fake module. Every value
leaves this module in SI units: NVML's millijoules and milliwatts are converted
here and nowhere else.

Sources (NVML API reference):
- energy: ``nvmlDeviceGetTotalEnergyConsumption`` -- mJ since the driver was
  loaded, Volta and newer; raises ``NVMLError_NotSupported`` on older parts.
  The counter advances at the driver's update period (often ~100 ms on
  datacenter parts), so short windows read it coarsely.
- power: ``nvmlDeviceGetFieldValues(handle, [NVML_FI_DEV_POWER_INSTANT])``
  (mW, instantaneous) where the driver supports it, else
  ``nvmlDeviceGetPowerUsage`` (mW). On Ampere and newer ``GetPowerUsage`` is
  an average over the last ~1 s, so it lags and smooths short bursts.
- memory: ``nvmlDeviceGetMemoryInfo(...).used`` (bytes, device-wide: other
  processes included) and ``nvmlDeviceGetComputeRunningProcesses`` /
  ``...GraphicsRunningProcesses`` (bytes for one pid; NVML reports host pids,
  so inside some containers our pid is not found and the value is ``None``).
- utilisation: ``nvmlDeviceGetUtilizationRates(...).gpu`` -- the share of the
  last sample period in which one or more kernels ran ("kernel-busy"), as 0..1.
  It is not a FLOP or SM-occupancy utilisation.

Device selection follows ``CUDA_VISIBLE_DEVICES``: integer entries are NVML
indices (PCI bus order; this equals CUDA's numbering when
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or the GPUs are identical), other entries are
GPU/MIG UUIDs or unique UUID prefixes. As in CUDA, the list ends at the first
entry that names no device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

MJ_PER_J = 1000.0  # NVML energy unit: millijoule
MW_PER_W = 1000.0  # NVML power unit: milliwatt


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here (library missing, init failed, no device)."""


def _import_pynvml() -> Any:
    """Import and return the ``pynvml`` module (tests monkeypatch this)."""
    import pynvml  # noqa: PLC0415 - lazy on purpose

    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_visible_devices(value: str | None) -> list[str] | None:
    """Entries of a ``CUDA_VISIBLE_DEVICES`` value; ``None`` when unset (= all)."""
    if value is None:
        return None
    return [e.strip() for e in value.split(",") if e.strip()]


@dataclass
class NvmlDevice:
    """One physical (or MIG) device as NVML sees it.

    Attributes:
        nvml_index: NVML index (PCI bus order), ``None`` for MIG handles.
        uuid: NVML UUID, e.g. ``GPU-8f0c...``.
        name: product name.
        handle: the NVML handle.
        counter_supported: ``False`` once the energy counter said NotSupported.
        instant_power_supported: ``False`` once the instant-power field failed.
    """

    nvml_index: int | None
    uuid: str
    name: str
    handle: Any = field(repr=False)
    counter_supported: bool = True
    instant_power_supported: bool = True


class Nvml:
    """An initialised NVML session. Create with :meth:`open`; call :meth:`close`."""

    def __init__(self, nv: Any) -> None:
        self.nv = nv
        self._closed = False

    @classmethod
    def open(cls) -> "Nvml":
        """Import pynvml and ``nvmlInit``; raise :class:`NvmlUnavailable` on any failure."""
        try:
            nv = _import_pynvml()
        except Exception as exc:  # ImportError, or a broken install
            raise NvmlUnavailable(f"pynvml not importable: {exc!r}") from exc
        try:
            nv.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            raise NvmlUnavailable(f"nvmlInit failed: {exc!r}") from exc
        return cls(nv)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.nv.nvmlShutdown()
            except Exception:
                pass

    # -- devices -------------------------------------------------------------
    def _device_from_handle(self, handle: Any, index: int | None) -> NvmlDevice:
        nv = self.nv
        return NvmlDevice(
            nvml_index=index,
            uuid=_text(nv.nvmlDeviceGetUUID(handle)),
            name=_text(nv.nvmlDeviceGetName(handle)),
            handle=handle,
        )

    def all_devices(self) -> list[NvmlDevice]:
        """Every device NVML reports, in NVML index order."""
        nv = self.nv
        return [self._device_from_handle(nv.nvmlDeviceGetHandleByIndex(i), i) for i in range(nv.nvmlDeviceGetCount())]

    def visible_devices(self, cuda_visible_devices: str | None = None, *, use_env: bool = True) -> list[NvmlDevice]:
        """Devices visible to CUDA, in CUDA order (see module docstring).

        ``cuda_visible_devices`` defaults to the environment variable.
        """
        if cuda_visible_devices is None and use_env:
            cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        entries = parse_visible_devices(cuda_visible_devices)
        devices = self.all_devices()
        if entries is None:
            return devices
        chosen: list[NvmlDevice] = []
        for entry in entries:
            dev = self._resolve_entry(entry, devices)
            if dev is None:
                break  # CUDA ignores this entry and everything after it
            if all(d.uuid != dev.uuid for d in chosen):
                chosen.append(dev)
        return chosen

    def _resolve_entry(self, entry: str, devices: list[NvmlDevice]) -> NvmlDevice | None:
        if entry.lstrip("-").isdigit():
            i = int(entry)
            return devices[i] if 0 <= i < len(devices) else None
        matches = [d for d in devices if d.uuid == entry or d.uuid.startswith(entry) or d.uuid == "GPU-" + entry]
        if len(matches) == 1:
            return matches[0]
        if not matches:  # MIG UUIDs are not in the index list; ask NVML directly
            try:
                return self._device_from_handle(self.nv.nvmlDeviceGetHandleByUUID(entry), None)
            except Exception:
                return None
        return None  # ambiguous prefix

    def select(self, device: str, cuda_visible_devices: str | None = None) -> list[NvmlDevice]:
        """Devices a torch device string uses: ``cuda`` = all visible, ``cuda:N`` = visible[N]."""
        visible = self.visible_devices(cuda_visible_devices)
        kind, _, idx = device.partition(":")
        if kind != "cuda":
            return []
        if not idx:
            return visible
        i = int(idx)
        return [visible[i]] if 0 <= i < len(visible) else []

    # -- readings (SI units) ---------------------------------------------------
    def energy_j(self, dev: NvmlDevice) -> float | None:
        """Total-energy counter in J; ``None`` if unsupported (flag set) or unreadable."""
        if not dev.counter_supported:
            return None
        nv = self.nv
        try:
            return nv.nvmlDeviceGetTotalEnergyConsumption(dev.handle) / MJ_PER_J
        except nv.NVMLError_NotSupported:
            dev.counter_supported = False
            return None
        except nv.NVMLError:
            return None

    def power_w(self, dev: NvmlDevice) -> float | None:
        """Power draw in W: instantaneous field where supported, else ``GetPowerUsage``."""
        nv = self.nv
        if dev.instant_power_supported:
            try:
                fv = nv.nvmlDeviceGetFieldValues(dev.handle, [nv.NVML_FI_DEV_POWER_INSTANT])[0]
                if fv.nvmlReturn == nv.NVML_SUCCESS:
                    return fv.value.uiVal / MW_PER_W
                dev.instant_power_supported = False
            except Exception:
                dev.instant_power_supported = False
        try:
            return nv.nvmlDeviceGetPowerUsage(dev.handle) / MW_PER_W
        except nv.NVMLError:
            return None

    def memory_used_bytes(self, dev: NvmlDevice) -> int | None:
        """Device memory in use by all processes (bytes)."""
        try:
            return int(self.nv.nvmlDeviceGetMemoryInfo(dev.handle).used)
        except self.nv.NVMLError:
            return None

    def process_memory_bytes(self, dev: NvmlDevice, pid: int) -> int | None:
        """Device memory used by ``pid`` (bytes); ``None`` when NVML does not list it."""
        nv = self.nv
        best: int | None = None
        for fn_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(nv, fn_name, None)
            if fn is None:
                continue
            try:
                procs = fn(dev.handle)
            except nv.NVMLError:
                continue
            used = [p.usedGpuMemory for p in procs if p.pid == pid and p.usedGpuMemory is not None]
            if used:  # a process in both lists is counted once (max, not sum)
                best = max(best or 0, int(sum(used)))
        return best

    def utilization(self, dev: NvmlDevice) -> float | None:
        """Kernel-busy share of NVML's last sample period, 0..1 (not FLOP utilisation)."""
        try:
            return self.nv.nvmlDeviceGetUtilizationRates(dev.handle).gpu / 100.0
        except self.nv.NVMLError:
            return None

    # -- static info -------------------------------------------------------------
    def driver_version(self) -> str | None:
        try:
            return _text(self.nv.nvmlSystemGetDriverVersion())
        except Exception:
            return None

    def cuda_driver_version(self) -> str | None:
        """CUDA version the driver supports, e.g. ``"12.4"``."""
        try:
            v = int(self.nv.nvmlSystemGetCudaDriverVersion())
        except Exception:
            return None
        return f"{v // 1000}.{(v % 1000) // 10}"

    def device_info(self, dev: NvmlDevice) -> dict[str, Any]:
        """JSON-ready static facts of one device (power limit in W, memory in bytes)."""
        nv = self.nv
        info: dict[str, Any] = {"nvml_index": dev.nvml_index, "name": dev.name, "uuid": dev.uuid}
        try:
            info["power_limit_w"] = nv.nvmlDeviceGetEnforcedPowerLimit(dev.handle) / MW_PER_W
        except Exception:
            info["power_limit_w"] = None
        try:
            info["memory_total_bytes"] = int(nv.nvmlDeviceGetMemoryInfo(dev.handle).total)
        except Exception:
            info["memory_total_bytes"] = None
        return info
