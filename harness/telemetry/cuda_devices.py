"""The CUDA runtime's own view of its devices: index, UUID and PCI bus id, in CUDA's order.

This is what maps a CUDA device (``cuda:N``, after ``CUDA_VISIBLE_DEVICES`` and
``CUDA_DEVICE_ORDER`` are applied) to its NVML device (:meth:`harness.telemetry.nvml.Nvml.select`)
without trusting indices: torch reads ``cudaDeviceProp.uuid`` and ``pciDomainID``/``pciBusID``/
``pciDeviceID`` (CUDA Runtime API, ``cudaGetDeviceProperties``) for each device it sees.
Querying them initialises CUDA in this process, so only cuda cells ask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CudaDevice:
    """One device as CUDA numbers it.

    Attributes:
        index: CUDA index (``cuda:<index>``).
        uuid: e.g. ``8f0c1d2e-...`` (CUDA's form: no ``GPU-`` prefix); ``None`` if unknown.
        pci_bus_id: ``DDDDDDDD:BB:DD.0`` (hex); ``None`` if unknown.
    """

    index: int
    uuid: str | None
    pci_bus_id: str | None


def _props_device(index: int, props: Any) -> CudaDevice:
    uuid = getattr(props, "uuid", None)
    bus, dev, dom = (getattr(props, f"pci_{k}_id", None) for k in ("bus", "device", "domain"))
    pci = "%08X:%02X:%02X.0" % (dom, bus, dev) if None not in (bus, dev, dom) else None
    return CudaDevice(index, str(uuid) if uuid is not None and str(uuid) else None, pci)


def cuda_devices(torch: Any = None) -> list[CudaDevice] | None:
    """Every device the CUDA runtime sees, in CUDA order; ``None`` without a CUDA runtime.

    Args:
        torch: the ``torch`` module (imported here when ``None``; tests pass a fake).
    """
    try:
        if torch is None:
            import torch  # noqa: PLC0415 - only cuda cells need it

        if not torch.cuda.is_available():
            return None
        return [_props_device(i, torch.cuda.get_device_properties(i)) for i in range(torch.cuda.device_count())]
    except Exception:
        return None


def current_index(torch: Any = None) -> int:
    """The current CUDA device (where ``.to("cuda")`` puts tensors); 0 without a CUDA runtime."""
    try:
        if torch is None:
            import torch  # noqa: PLC0415

        return int(torch.cuda.current_device()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


def device_order() -> str | None:
    """``CUDA_DEVICE_ORDER`` (``None`` = CUDA's default, ``FASTEST_FIRST``)."""
    return os.environ.get("CUDA_DEVICE_ORDER")
