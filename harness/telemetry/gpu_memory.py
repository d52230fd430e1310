"""GPU memory of one window: sampled NVML peaks and the order check of the four figures.

Four figures, each a peak over the window, summed over the used devices (bytes):

1. ``peak_allocated_bytes``: ``torch.cuda.max_memory_allocated`` (tensors; exact peak, reset at
   the window start);
2. ``peak_reserved_bytes``: ``torch.cuda.max_memory_reserved`` (the caching allocator's segments;
   exact peak);
3. ``peak_process_device_used_bytes``: NVML's memory of this process (reserved + the CUDA context
   and libraries); sampled;
4. ``peak_device_used_bytes``: NVML's device-wide used memory (every process + the driver's own);
   sampled.

In one consistent instant 1 ≤ 2 ≤ 3 ≤ 4. :func:`memory_order_broken` checks the peaks (figures
that are unknown are skipped; the order is transitive, so consecutive known figures are
compared). A violation sets ``flag_memory_order`` and the four figures are kept as measured.
Why it can break without a bug: 1 and 2 are exact peaks while 3 and 4 are sampled, so a peak
between two samples (e.g. a burst freed by ``torch.cuda.empty_cache()`` before the next tick) is
missed by NVML; in containers without the host's pid namespace NVML does not list our process
(3 is then unknown). A violation on a window that did not empty the cache points at a
measurement (or device-mapping) bug.
"""

from __future__ import annotations

from typing import Sequence

from .sampler import Sample

MEMORY_ORDER = ("peak_allocated_bytes", "peak_reserved_bytes", "peak_process_device_used_bytes", "peak_device_used_bytes")
"""The four figures, smallest first."""


def peak_of_totals(samples: Sequence[Sample], name: str, require_all: bool) -> int | None:
    """Largest per-sample sum over devices of probe ``name`` (bytes)."""
    best: int | None = None
    for s in samples:
        vals = s.values.get(name)
        if not vals:
            continue
        known = [v for v in vals if v is not None]
        if not known or (require_all and len(known) != len(vals)):
            continue
        total = int(sum(known))
        best = total if best is None else max(best, total)
    return best


def memory_order_broken(
    allocated: int | None, reserved: int | None, process: int | None, device: int | None
) -> list[str]:
    """The broken links of allocated ≤ reserved ≤ process ≤ device (bytes), e.g.
    ``["peak_reserved_bytes > peak_process_device_used_bytes"]``; ``[]`` when in order."""
    known = [(n, v) for n, v in zip(MEMORY_ORDER, (allocated, reserved, process, device)) if v is not None]
    return [f"{a} > {b}" for (a, va), (b, vb) in zip(known, known[1:]) if va > vb]
