"""Process resident memory (RSS) and its per-window peak.

Sources (Linux ``proc(5)``):
- ``/proc/self/status`` ``VmRSS`` (current RSS) and ``VmHWM`` (peak RSS,
  "high-water mark"), in kB, converted to bytes here.
- Writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` to the current
  RSS (Linux >= 4.0). It touches nothing else of the process.

Per-window peak: when the reset works, each window's peak is ``VmHWM`` read
at its end after a reset at its start (``peak_rss_source='vmhwm_window'``).
Resets are process-wide, so before every reset the current ``VmHWM`` is folded
into every window still open: nested and overlapping windows keep correct
peaks. When the reset is refused the peak is the largest RSS seen by the
sampler and at the window edges (``'sampled_rss'``), which can miss a spike
between samples. The process-lifetime ``ru_maxrss`` is never used for a window.
"""

from __future__ import annotations

import threading
from pathlib import Path

PROC_STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
SOURCE_VMHWM = "vmhwm_window"
SOURCE_SAMPLED = "sampled_rss"


def read_status_bytes(field: str, status_path: Path | str = PROC_STATUS) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` in bytes; ``None`` if unreadable."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes(status_path: Path | str = PROC_STATUS) -> int | None:
    """Current resident set size in bytes (``VmRSS``, else psutil)."""
    v = read_status_bytes("VmRSS", status_path)
    if v is not None:
        return v
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


def reset_hwm(clear_refs_path: Path | str = CLEAR_REFS) -> bool:
    """Reset ``VmHWM`` to the current RSS; ``False`` if the kernel refused."""
    try:
        with open(clear_refs_path, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakRssTracker:
    """Peak RSS per window key, nested windows allowed (see module docstring)."""

    def __init__(self, status_path: Path | str = PROC_STATUS, clear_refs_path: Path | str = CLEAR_REFS) -> None:
        self.status_path = status_path
        self.clear_refs_path = clear_refs_path
        self._lock = threading.Lock()
        self._peak: dict[str, int | None] = {}  # key -> running VmHWM peak (bytes)
        self._edge_rss: dict[str, list[int]] = {}
        self._hwm_ok: dict[str, bool] = {}

    def _fold_hwm(self) -> None:
        hwm = read_status_bytes("VmHWM", self.status_path)
        if hwm is None:
            return
        for k in self._peak:
            if self._hwm_ok[k]:
                self._peak[k] = max(self._peak[k] or 0, hwm)

    def begin(self, key: str) -> None:
        with self._lock:
            self._fold_hwm()
            ok = reset_hwm(self.clear_refs_path) and read_status_bytes("VmHWM", self.status_path) is not None
            self._hwm_ok[key] = ok
            self._peak[key] = read_status_bytes("VmHWM", self.status_path) if ok else None
            r = rss_bytes(self.status_path)
            self._edge_rss[key] = [r] if r is not None else []

    def end(self, key: str, sampled_rss: list[int | None] = ()) -> tuple[int | None, str]:
        """Return ``(peak_bytes, source)`` for ``key`` and forget it."""
        with self._lock:
            self._fold_hwm()
            ok = self._hwm_ok.pop(key)
            peak = self._peak.pop(key)
            edges = self._edge_rss.pop(key)
            if ok and peak is not None:
                return peak, SOURCE_VMHWM
            r = rss_bytes(self.status_path)
            seen = [v for v in list(sampled_rss) + edges + [r] if v is not None]
            if not seen:
                return None, "unavailable"
            return max(seen), SOURCE_SAMPLED
