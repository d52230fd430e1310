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

Device mapping (NVML ↔ CUDA) is by UUID or PCI bus id, never by index alone: NVML's index order
is not guaranteed (not even across reboots) and CUDA's default order (``CUDA_DEVICE_ORDER`` unset
= ``FASTEST_FIRST``) need not be PCI order. :meth:`Nvml.select` maps a CUDA device to NVML with
the CUDA runtime's own identity of it (:mod:`.cuda_devices`: UUID, else PCI bus id) when it is
known. Without it (no CUDA runtime in this process) ``CUDA_VISIBLE_DEVICES`` is read: UUID
entries (or unique UUID prefixes, MIG UUIDs) match NVML's UUIDs; integer entries index the GPUs
sorted by PCI bus id, which is CUDA's order when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and, for
identical GPUs, the order ``FASTEST_FIRST`` ties resolve to; on mixed GPUs without
``PCI_BUS_ID`` an integer entry is ambiguous and maps to nothing. As in CUDA, the list ends at
the first entry that names no device.

Other processes (:mod:`.interference`): :meth:`Nvml.other_processes` lists the processes other
than ours on a device; :meth:`Nvml.process_utilization` their SM utilisation since a timestamp
(``nvmlDeviceGetProcessUtilization``).
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


def pci_key(bus_id: Any) -> tuple[int, int, int, int] | None:
    """``(domain, bus, device, function)`` of a PCI bus id (``"00000000:3B:00.0"`` as NVML writes
    it, ``"0000:3b:00.0"`` as sysfs does); ``None`` when it does not parse."""
    try:
        domain, bus, rest = _text(bus_id).strip().split(":")
        device, function = rest.split(".")
        return int(domain, 16), int(bus, 16), int(device, 16), int(function, 16)
    except (ValueError, AttributeError):
        return None


def uuid_key(uuid: Any) -> str:
    """A UUID compared case-blind and without NVML's ``GPU-`` prefix (CUDA's own form lacks it)."""
    text = _text(uuid).strip().lower()
    return text[4:] if text.startswith("gpu-") else text


def parse_visible_devices(value: str | None) -> list[str] | None:
    """Entries of a ``CUDA_VISIBLE_DEVICES`` value; ``None`` when unset (= all)."""
    if value is None:
        return None
    return [e.strip() for e in value.split(",") if e.strip()]


@dataclass
class NvmlDevice:
    """One physical (or MIG) device as NVML sees it.

    Attributes:
        nvml_index: NVML index (no order guaranteed; never used to map), ``None`` for MIG handles.
        uuid: NVML UUID, e.g. ``GPU-8f0c...``.
        name: product name.
        handle: the NVML handle.
        pci_bus_id: e.g. ``00000000:3B:00.0``; ``None`` when NVML cannot say.
        cuda_index: the CUDA index this device was selected as (:meth:`Nvml.select`).
        mapped_by: how it was matched to CUDA: ``uuid`` | ``pci_bus_id`` (the CUDA runtime's
            identity), ``visible_devices_uuid`` | ``pci_order`` (``CUDA_VISIBLE_DEVICES`` read
            without a CUDA runtime).
        counter_supported: ``False`` once the energy counter said NotSupported.
        instant_power_supported: ``False`` once the instant-power field failed.
    """

    nvml_index: int | None
    uuid: str
    name: str
    handle: Any = field(repr=False)
    pci_bus_id: str | None = None
    cuda_index: int | None = None
    mapped_by: str | None = None
    counter_supported: bool = True
    instant_power_supported: bool = True


class Nvml:
    """An initialised NVML session. Create with :meth:`open`; call :meth:`close`."""

    def __init__(self, nv: Any) -> None:
        self.nv = nv
        self._closed = False
        self.selection_error: str | None = None  # why the last :meth:`select` found no device

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
        try:
            key = pci_key(nv.nvmlDeviceGetPciInfo(handle).busId)
        except Exception:
            key = None
        return NvmlDevice(
            nvml_index=index,
            uuid=_text(nv.nvmlDeviceGetUUID(handle)),
            name=_text(nv.nvmlDeviceGetName(handle)),
            handle=handle,
            pci_bus_id="%08X:%02X:%02X.%X" % key if key else None,
        )

    def all_devices(self) -> list[NvmlDevice]:
        """Every device NVML reports, in NVML index order."""
        nv = self.nv
        return [self._device_from_handle(nv.nvmlDeviceGetHandleByIndex(i), i) for i in range(nv.nvmlDeviceGetCount())]

    def visible_devices(
        self,
        cuda_visible_devices: str | None = None,
        *,
        use_env: bool = True,
        cuda_device_order: str | None = None,
    ) -> list[NvmlDevice]:
        """Devices visible to CUDA, in CUDA order, read from ``CUDA_VISIBLE_DEVICES`` without a
        CUDA runtime (see the module docstring). Both settings default to the environment."""
        if use_env:
            if cuda_visible_devices is None:
                cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
            if cuda_device_order is None:
                cuda_device_order = os.environ.get("CUDA_DEVICE_ORDER")
        entries = parse_visible_devices(cuda_visible_devices)
        devices = self.all_devices()
        in_pci_order = self._pci_order(devices, cuda_device_order)
        if entries is None:
            entries = [str(i) for i in range(len(devices))]
        chosen: list[NvmlDevice] = []
        for entry in entries:
            dev = self._resolve_entry(entry, devices, in_pci_order)
            if dev is None:
                break  # CUDA ignores this entry and everything after it
            if all(d.uuid != dev.uuid for d in chosen):
                chosen.append(dev)
        return chosen

    @staticmethod
    def _pci_order(devices: list[NvmlDevice], cuda_device_order: str | None) -> list[NvmlDevice] | None:
        """The devices in CUDA's index order when it can be known without CUDA: by PCI bus id
        under ``PCI_BUS_ID``, or on identical GPUs; ``None`` otherwise (ambiguous)."""
        if any(pci_key(d.pci_bus_id) is None for d in devices):
            return None
        if (cuda_device_order or "FASTEST_FIRST").upper() != "PCI_BUS_ID" and len({d.name for d in devices}) > 1:
            return None
        return sorted(devices, key=lambda d: pci_key(d.pci_bus_id))

    def _resolve_entry(self, entry: str, devices: list[NvmlDevice], in_pci_order: list[NvmlDevice] | None) -> NvmlDevice | None:
        if entry.lstrip("-").isdigit():
            i = int(entry)
            if in_pci_order is None:
                self.selection_error = (
                    f"CUDA index {entry} cannot be mapped to NVML without the CUDA runtime: the GPUs differ "
                    "(or have no PCI bus id) and CUDA_DEVICE_ORDER is not PCI_BUS_ID")
                return None
            if not 0 <= i < len(in_pci_order):
                return None
            in_pci_order[i].mapped_by = "pci_order"
            return in_pci_order[i]
        matches = [d for d in devices if d.uuid == entry or d.uuid.startswith(entry) or d.uuid == "GPU-" + entry]
        if len(matches) == 1:
            matches[0].mapped_by = "visible_devices_uuid"
            return matches[0]
        if not matches:  # MIG UUIDs are not in the index list; ask NVML directly
            try:
                dev = self._device_from_handle(self.nv.nvmlDeviceGetHandleByUUID(entry), None)
            except Exception:
                return None
            dev.mapped_by = "visible_devices_uuid"
            return dev
        return None  # ambiguous prefix

    def match_cuda(self, cuda: Any) -> NvmlDevice | None:
        """The NVML device of one CUDA device (:class:`~harness.telemetry.cuda_devices.CudaDevice`:
        ``uuid``, ``pci_bus_id``), by UUID, else by a unique PCI bus id; ``None`` if neither matches."""
        devices = self.all_devices()
        if cuda.uuid:
            hits = [d for d in devices if uuid_key(d.uuid) == uuid_key(cuda.uuid)]
            if not hits:  # a MIG instance: NVML resolves its UUID directly
                for form in (cuda.uuid, "GPU-" + cuda.uuid, "MIG-" + cuda.uuid):
                    try:
                        hits = [self._device_from_handle(self.nv.nvmlDeviceGetHandleByUUID(form), None)]
                        break
                    except Exception:
                        continue
            if hits:
                hits[0].mapped_by = "uuid"
                return hits[0]
        key = pci_key(cuda.pci_bus_id) if cuda.pci_bus_id else None
        hits = [d for d in devices if key is not None and pci_key(d.pci_bus_id) == key]
        if len(hits) == 1:
            hits[0].mapped_by = "pci_bus_id"
            return hits[0]
        return None

    def select(
        self,
        device: str,
        cuda_visible_devices: str | None = None,
        *,
        cuda: list[Any] | None = None,
        current: int | None = None,
    ) -> list[NvmlDevice]:
        """The NVML device a torch device string runs on: ``cuda:N`` = CUDA device N, ``cuda`` =
        the current CUDA device (``current``, default 0: where ``.to("cuda")`` puts a model).

        Args:
            cuda: the CUDA runtime's devices in CUDA order
                (:func:`harness.telemetry.cuda_devices.cuda_devices`); mapped by UUID / PCI bus
                id. ``None``: read ``cuda_visible_devices`` (default: the environment) instead.
        """
        kind, _, idx = device.partition(":")
        self.selection_error = None
        if kind != "cuda":
            return []
        i = int(idx) if idx else int(current or 0)
        if cuda is not None:
            dev = self.match_cuda(cuda[i]) if 0 <= i < len(cuda) else None
            if dev is None:
                self.selection_error = (f"CUDA device {i} matches no NVML device by UUID or PCI bus id"
                                        if 0 <= i < len(cuda) else f"the CUDA runtime has no device {i}")
        else:
            visible = self.visible_devices(cuda_visible_devices)
            dev = visible[i] if 0 <= i < len(visible) else None
        if dev is None:
            return []
        dev.cuda_index = i
        return [dev]

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

    def _processes(self, dev: NvmlDevice) -> dict[int, int | None] | None:
        """pid -> device memory (bytes) of every process NVML lists on ``dev``; ``None`` if unreadable."""
        nv = self.nv
        procs: dict[int, int | None] = {}
        read = False
        for fn_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(nv, fn_name, None)
            if fn is None:
                continue
            try:
                listed = fn(dev.handle)
            except nv.NVMLError:
                continue
            read = True
            for p in listed:
                used = int(p.usedGpuMemory) if p.usedGpuMemory is not None else None
                old = procs.get(int(p.pid))
                procs[int(p.pid)] = used if old is None else max(old, used or 0)
        return procs if read else None

    def other_processes(self, dev: NvmlDevice, pid: int) -> list[list[int | None]] | None:
        """``[[pid, used_bytes], ...]`` of the processes on ``dev`` other than ``pid``.

        ``None`` when NVML cannot list them, or lists processes but not ``pid`` (a container
        without the host's pid namespace: ours cannot be told apart)."""
        procs = self._processes(dev)
        if procs is None or (procs and pid not in procs):
            return None
        return [[p, used] for p, used in sorted(procs.items()) if p != pid]

    def process_utilization(self, dev: NvmlDevice, since_us: int, pid: int) -> dict[int, float] | None:
        """Largest SM utilisation (0..1) per process other than ``pid`` in NVML's samples since
        ``since_us`` (µs, CPU wall-clock timestamp, NVML's convention); ``{}`` when NVML has no
        sample since then; ``None`` when unsupported or unreadable."""
        nv = self.nv
        try:
            samples = nv.nvmlDeviceGetProcessUtilization(dev.handle, int(since_us))
        except nv.NVMLError as exc:
            if getattr(exc, "value", None) == getattr(nv, "NVML_ERROR_NOT_FOUND", object()):
                return {}
            return None
        except Exception:
            return None
        out: dict[int, float] = {}
        for s in samples:
            if int(s.pid) != pid:
                out[int(s.pid)] = max(out.get(int(s.pid), 0.0), float(s.smUtil) / 100.0)
        return out

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
        info: dict[str, Any] = {"nvml_index": dev.nvml_index, "name": dev.name, "uuid": dev.uuid,
                                "pci_bus_id": dev.pci_bus_id, "cuda_index": dev.cuda_index, "mapped_by": dev.mapped_by}
        try:
            info["power_limit_w"] = nv.nvmlDeviceGetEnforcedPowerLimit(dev.handle) / MW_PER_W
        except Exception:
            info["power_limit_w"] = None
        try:
            info["memory_total_bytes"] = int(nv.nvmlDeviceGetMemoryInfo(dev.handle).total)
        except Exception:
            info["memory_total_bytes"] = None
        return info
