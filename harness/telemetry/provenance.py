"""Run provenance: code version, software versions and the machine.

Everything returned is JSON-serialisable. Identifying host facts are hashed
(sha256, first 16 hex digits), never stored raw: the hostname and
``/etc/machine-id``. GPU facts come from NVML (:mod:`.nvml`) for the GPUs the run's
device uses (``cuda:N``: CUDA device N; ``cuda``: the current CUDA device; ``cpu``: none), not
every visible one, each mapped from CUDA to NVML by UUID or PCI bus id (``mapped_by``), with
``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` recorded beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .cuda_devices import CudaDevice, cuda_devices, current_index, device_order
from .nvml import Nvml, NvmlUnavailable

HASH_CHARS = 16
MACHINE_ID_PATHS = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
PACKAGES = {  # provenance key -> distribution name
    "harness": "harness",
    "torch": "torch",
    "transformers": "transformers",
    "lm_eval": "lm_eval",
    "codecarbon": "codecarbon",
    "nvidia_ml_py": "nvidia-ml-py",
}


def short_hash(text: str) -> str:
    """sha256 hex prefix of ``text`` (HASH_CHARS digits)."""
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(cwd: Path | str | None = None) -> dict[str, Any]:
    """``{"git_sha", "git_dirty"}`` of the repo at ``cwd``; both ``None`` outside git
    (``git_sha`` alone is ``None`` in a repo with no commit yet).

    Dirty means ``git status --porcelain`` lists anything, untracked files
    included (ignored files excluded): code that is not committed.
    """
    cwd = Path(cwd or os.getcwd())
    if (_git(["rev-parse", "--is-inside-work-tree"], cwd) or "").strip() != "true":
        return {"git_sha": None, "git_dirty": None}
    sha = _git(["rev-parse", "--verify", "-q", "HEAD"], cwd)  # None before the first commit
    status = _git(["status", "--porcelain"], cwd)
    return {"git_sha": sha.strip() if sha else None, "git_dirty": None if status is None else bool(status.strip())}


def package_versions() -> dict[str, str | None]:
    """Installed distribution versions (``None`` where not installed)."""
    out: dict[str, str | None] = {}
    for key, dist in PACKAGES.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    if out["harness"] is None:
        try:
            from harness import __version__

            out["harness"] = __version__
        except Exception:
            pass
    return out


def cpu_model() -> str | None:
    """CPU model name from ``/proc/cpuinfo``, else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_id_hash(paths: tuple[Path, ...] = MACHINE_ID_PATHS) -> str | None:
    for p in paths:
        try:
            mid = p.read_text().strip()
        except OSError:
            continue
        if mid:
            return short_hash(mid)
    return None


def _cuda_runtime_version() -> str | None:
    torch = sys.modules.get("torch")  # only if the caller already imported it
    return getattr(getattr(torch, "version", None), "cuda", None) if torch else None


def gpu_provenance(device: str = "cuda", cuda: list[CudaDevice] | None = None, current: int = 0) -> dict[str, Any]:
    """Driver, CUDA driver version and the GPUs ``device`` uses, from NVML; ``gpus=[]`` without it.

    Args:
        device: ``cpu`` (no GPU), ``cuda`` (the current CUDA device, ``current``) or ``cuda:N``.
        cuda: the CUDA runtime's devices (:func:`~harness.telemetry.cuda_devices.cuda_devices`)
            for the UUID / PCI bus id mapping; ``None``: ``CUDA_VISIBLE_DEVICES`` is read.
    """
    try:
        nv = Nvml.open()
    except NvmlUnavailable as exc:
        return {"nvml": False, "nvml_error": str(exc), "gpus": [], "gpu_driver": None, "cuda_driver": None}
    try:
        gpus = [nv.device_info(d) for d in nv.select(device, cuda=cuda, current=current)]
        return {"nvml": True, "gpus": gpus, "gpu_driver": nv.driver_version(), "cuda_driver": nv.cuda_driver_version()}
    except Exception as exc:
        return {"nvml": False, "nvml_error": repr(exc), "gpus": [], "gpu_driver": None, "cuda_driver": None}
    finally:
        nv.close()


def collect_provenance(device: str, cwd: Path | str | None = None) -> dict[str, Any]:
    """Everything needed to tell runs and machines apart (JSON-serialisable)."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        ram = int(psutil.virtual_memory().total)
    except Exception:
        physical, ram = None, None
    prov: dict[str, Any] = {
        **git_state(cwd),
        "versions": package_versions(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": physical,
        "ram_bytes": ram,
        "hostname_hash": short_hash(socket.gethostname()),
        "machine_id_hash": machine_id_hash(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_device_order": device_order(),
        "cuda_runtime": _cuda_runtime_version(),
        **_gpus_of(device),
    }
    prov["hardware_id"] = hardware_id(prov)
    json.dumps(prov)  # fail here, not when the run is written
    return prov


def _gpus_of(device: str) -> dict[str, Any]:
    """:func:`gpu_provenance` for a cell's device; a cuda device asks the CUDA runtime (torch)."""
    if device.partition(":")[0] != "cuda":
        return gpu_provenance("cpu")  # driver facts only: a cpu cell uses no GPU
    return gpu_provenance(device, cuda_devices(), current_index())


TEST_NODE_ENV = "HARNESS_TEST_NODE_ID"
"""Tests only: a fake node name that enters the hardware id (two workers on one machine posing
as two kinds of machine)."""


def hardware_id(prov: dict[str, Any]) -> str:
    """Short stable hash of the machine's *hardware class*: CPU model and cores, RAM, the GPU
    models and the GPU driver — not the host or a device's UUID, so eight identical GPUs (or
    eight nodes of one cloud type) are one Pareto slice, and cells of a cluster run compare.
    """
    ident = {
        "cpu_model": prov.get("cpu_model"),
        "cpu_logical_cores": prov.get("cpu_logical_cores"),
        "cpu_physical_cores": prov.get("cpu_physical_cores"),
        "ram_bytes": prov.get("ram_bytes"),
        "gpus": sorted(g.get("name") or "" for g in prov.get("gpus") or []),
        "gpu_driver": prov.get("gpu_driver"),
    }
    node = os.environ.get(TEST_NODE_ENV)
    if node:
        ident["test_node"] = node
    return short_hash(json.dumps(ident, sort_keys=True, default=str))
