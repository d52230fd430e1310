"""Results writer: the on-disk layout of a run and its atomic, resumable writes (DESIGN section 6).

Layout under a results root::

    <root>/runs/<run_id>/run.json                   run metadata (provenance, suite hash, times)
    <root>/runs/<run_id>/cells/<cell_hash>.parquet   one row: the cell's summary (completion marker)
    <root>/runs/<run_id>/samples/<cell_hash>.parquet one row per sample of that cell
    <root>/runs/<run_id>/telemetry/<cell_hash>.parquet  opt-in: the probes' time series (--telemetry-series)
    <root>/runs/<run_id>/cells_index.parquet         derived read cache of cells/ (harness.results.index)

Every file is written to a temporary name in its own directory (``.<name>.<pid>.<rand>.tmp``),
flushed, fsync'ed and renamed over the final name with ``os.replace``: a crash never leaves a half
file under a final name. The samples file is written before the cell file, so a cell file on disk
means the cell's samples are there too. A cell whose file holds ``status == "ok"`` is complete and
is never rewritten unless ``overwrite=True``; a cell recorded with ``status == "error"`` is not
complete and is re-run (and rewritten) on resume.

``run.json`` keys this module relies on: ``run_id``, ``suite`` (name), ``suite_hash``; the runner
adds ``started_at``/``finished_at`` and provenance. :meth:`RunStore.write_run_json` merges.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from harness.results.schema import (
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    cell_table,
    parse_version,
    sample_table,
    telemetry_series_table,
)

__all__ = [
    "RunStore",
    "CellExistsError",
    "ResultsReadWarning",
    "find_run",
    "new_run_id",
    "is_temp_name",
    "RUNS_DIR",
    "RUN_JSON",
    "CELLS_DIR",
    "SAMPLES_DIR",
]

RUNS_DIR = "runs"
RUN_JSON = "run.json"
CELLS_DIR = "cells"
SAMPLES_DIR = "samples"
TELEMETRY_DIR = "telemetry"
TMP_SUFFIX = ".tmp"
STALE_TMP_AGE_S = 3600.0
"""Temp files older than this (seconds) are removed by any write in the same directory."""

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CELL_HASH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class CellExistsError(FileExistsError):
    """Raised when writing a cell whose completed (status ok) file exists and overwrite is off."""


class ResultsReadWarning(UserWarning):
    """A results file was skipped (unreadable, corrupt, unversioned, wrong identity)."""


def is_temp_name(name: str) -> bool:
    """True for names the writer uses for in-flight files (and any hidden file): readers skip them."""
    return name.startswith(".") or name.endswith(TMP_SUFFIX)


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(suite_name: str) -> str:
    """A fresh, sortable run id: ``<UTC yyyymmddThhmmssZ>-<suite slug>-<4 hex>``.

    Example: ``20261129T190500Z-reasoning-3fa2``.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", suite_name).strip("-.") or "suite"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def _clean_temps(directory: Path, final_name: str | None = None) -> None:
    """Remove leftover temp files: those of ``final_name`` (any age) and any stale one."""
    if not directory.is_dir():
        return
    now = time.time()
    for p in directory.iterdir():
        if not p.name.endswith(TMP_SUFFIX):
            continue
        mine = final_name is not None and p.name.startswith(f".{final_name}.")
        try:
            stale = now - p.stat().st_mtime > STALE_TMP_AGE_S
            if mine or stale:
                p.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # e.g. permission: not worth failing a write for
            warnings.warn(f"could not remove temp file {p}: {exc}", ResultsReadWarning, stacklevel=3)


def _atomic_write_bytes(final: Path, data: bytes) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    _clean_temps(final.parent, final.name)
    tmp = _temp_path(final)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def atomic_write_parquet(final: Path, table: pa.Table) -> None:
    """Write ``table`` to ``final`` atomically: a temp file in the same folder, fsynced, renamed
    over ``final`` (readers see the old file or the new one, never half of one); stale temps of
    ``final`` are cleaned first and the temp file is removed when the write fails."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _clean_temps(final.parent, final.name)
    tmp = _temp_path(final)
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (e.g. a ``run.json``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, or JSON that is not an object.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def cell_file_status(path: Path) -> str | None:
    """The ``status`` recorded in a cell file, or None if it is missing, unreadable or unusable.

    A file of a different schema MAJOR version, or without a version, also gives None (with a
    :class:`ResultsReadWarning`), so its cell is not counted complete.
    """
    if not path.is_file() or is_temp_name(path.name):
        return None
    try:
        pf = pq.ParquetFile(path)
        meta = pf.schema_arrow.metadata or {}
        raw = meta.get(SCHEMA_VERSION_KEY.encode())
        if raw is None:
            raise ValueError(f"no {SCHEMA_VERSION_KEY} in its metadata")
        major, _ = parse_version(raw)
        if major != parse_version(SCHEMA_VERSION)[0]:
            raise ValueError(
                f"schema version {raw.decode()} has a different MAJOR than supported {SCHEMA_VERSION}"
            )
        statuses = pf.read(columns=["status"]).column("status").to_pylist()
    except Exception as exc:  # noqa: BLE001 - any unreadable file just means "not complete"
        warnings.warn(f"skipping cell file {path}: {exc}", ResultsReadWarning, stacklevel=2)
        return None
    if len(statuses) != 1:
        warnings.warn(
            f"skipping cell file {path}: expected 1 row, found {len(statuses)}",
            ResultsReadWarning,
            stacklevel=2,
        )
        return None
    return statuses[0]


class RunStore:
    """Writer (and resume oracle) for one run directory ``<root>/runs/<run_id>``.

    Args:
        root: the results root (the directory holding ``runs/``).
        run_id: the run's id (see :func:`new_run_id`, :func:`find_run`); letters, digits, ``._-``.
    """

    def __init__(self, root: Path | str, run_id: str) -> None:
        if not _RUN_ID_RE.match(run_id):
            raise ValueError(f"invalid run_id {run_id!r}: use letters, digits, '.', '_' and '-'")
        self.root = Path(root)
        self.run_id = run_id
        self.run_dir = self.root / RUNS_DIR / run_id
        self.cells_dir = self.run_dir / CELLS_DIR
        self.samples_dir = self.run_dir / SAMPLES_DIR

    def __repr__(self) -> str:
        return f"RunStore(root={str(self.root)!r}, run_id={self.run_id!r})"

    # ---- paths -------------------------------------------------------------------------------
    @staticmethod
    def _check_hash(cell_hash: str) -> str:
        if not isinstance(cell_hash, str) or not _CELL_HASH_RE.match(cell_hash):
            raise ValueError(f"invalid cell_hash {cell_hash!r}: use letters, digits, '.', '_' and '-'")
        return cell_hash

    def cell_path(self, cell_hash: str) -> Path:
        return self.cells_dir / f"{self._check_hash(cell_hash)}.parquet"

    def samples_path(self, cell_hash: str) -> Path:
        return self.samples_dir / f"{self._check_hash(cell_hash)}.parquet"

    def telemetry_path(self, cell_hash: str) -> Path:
        return self.run_dir / TELEMETRY_DIR / f"{self._check_hash(cell_hash)}.parquet"

    def write_telemetry_series(self, cell_hash: str, rows: Sequence[Mapping[str, Any]]) -> Path:
        """Write a cell's opt-in telemetry time series (atomic; a re-run cell replaces its own)."""
        path = self.telemetry_path(cell_hash)
        atomic_write_parquet(path, telemetry_series_table(rows))
        return path

    # ---- kept files --------------------------------------------------------------------------
    def _kept_path(self, name: str) -> Path:
        path = (self.run_dir / name).resolve()
        if self.run_dir.resolve() not in path.parents or name.startswith(("cells/", "samples/", RUN_JSON)):
            raise ValueError(f"kept file {name!r} must be a relative path inside the run, outside cells/ and samples/")
        return path

    def write_file(self, name: str, data: bytes) -> Path:
        """Write a file a cell keeps (a calibration, τ²'s raw results) at ``<run>/<name>``,
        atomically (the driver's job: workers hand files back, they never write here).

        Raises:
            ValueError: ``name`` leaves the run directory or names a results file.
        """
        path = self._kept_path(name)
        _atomic_write_bytes(path, data)
        return path

    def read_file(self, name: str) -> bytes | None:
        """A kept file's bytes, or ``None`` when it does not exist."""
        path = self._kept_path(name)
        return path.read_bytes() if path.is_file() else None

    @property
    def run_json_path(self) -> Path:
        return self.run_dir / RUN_JSON

    # ---- run.json ----------------------------------------------------------------------------
    def read_run_json(self) -> dict[str, Any]:
        """The run's metadata, or ``{}`` when ``run.json`` does not exist yet.

        Raises:
            ValueError / json.JSONDecodeError: if the file exists but is not a JSON object.
        """
        if not self.run_json_path.is_file():
            return {}
        return read_json(self.run_json_path)

    def write_run_json(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``meta`` into ``run.json`` (top-level keys overwrite) and write it atomically.

        ``run_id`` and ``harness_schema_version`` are filled in when absent. Returns the merged
        metadata. Values must be JSON-serialisable (paths, datetimes and the like go through str).

        Raises:
            ValueError: if ``meta['run_id']`` names another run.
        """
        if "run_id" in meta and meta["run_id"] != self.run_id:
            raise ValueError(f"run.json for run {self.run_id!r} got run_id {meta['run_id']!r}")
        merged = self.read_run_json()
        merged.update(meta)
        merged.setdefault("run_id", self.run_id)
        merged.setdefault(SCHEMA_VERSION_KEY, SCHEMA_VERSION)
        data = json.dumps(merged, indent=2, sort_keys=True, default=str).encode("utf-8") + b"\n"
        _atomic_write_bytes(self.run_json_path, data)
        return merged

    # ---- cells -------------------------------------------------------------------------------
    def cell_status(self, cell_hash: str) -> str | None:
        """``"ok"``/``"error"`` as recorded for the cell, or None if it has no readable file."""
        return cell_file_status(self.cell_path(cell_hash))

    def completed_cells(self) -> set[str]:
        """Hashes of the cells whose cell file exists, is readable and records ``status == "ok"``.

        Cells recorded with ``status == "error"``, temp files and unreadable/corrupt files are not
        complete (the latter with a :class:`ResultsReadWarning`), so they run again on resume.
        """
        if not self.cells_dir.is_dir():
            return set()
        done = set()
        for p in sorted(self.cells_dir.glob("*.parquet")):
            if is_temp_name(p.name):
                continue
            if cell_file_status(p) == "ok":
                done.add(p.stem)
        return done

    def write_cell(
        self,
        cell_row: Mapping[str, Any],
        sample_rows: Sequence[Mapping[str, Any]],
        *,
        overwrite: bool = False,
    ) -> Path:
        """Write one cell: its samples file first, then its cell file (the completion marker).

        ``run_id`` is filled in on the cell row and on sample rows when absent, and ``cell_hash``
        on sample rows; both are validated against the store and the cell row. Both tables are
        built (and so validated) before anything touches the disk. Returns the cell file's path.

        Raises:
            CellExistsError: if the cell is already complete (status ok) and ``overwrite`` is False.
            ValueError: on a schema violation (see :func:`~harness.results.schema.cell_table`) or
                a row that names another run or cell.
        """
        cell = dict(cell_row)
        cell_hash = cell.get("cell_hash")
        self._check_hash(cell_hash)  # type: ignore[arg-type]
        cell.setdefault("run_id", self.run_id)
        if cell["run_id"] != self.run_id:
            raise ValueError(f"cell {cell_hash}: run_id {cell['run_id']!r} != store's {self.run_id!r}")
        samples = []
        for i, row in enumerate(sample_rows):
            s = dict(row)
            s.setdefault("run_id", self.run_id)
            s.setdefault("cell_hash", cell_hash)
            if s["run_id"] != self.run_id or s["cell_hash"] != cell_hash:
                raise ValueError(
                    f"sample row {i} belongs to run {s['run_id']!r} cell {s['cell_hash']!r}, "
                    f"not run {self.run_id!r} cell {cell_hash!r}"
                )
            samples.append(s)
        cells_tbl = cell_table([cell])
        samples_tbl = sample_table(samples)

        if not overwrite and self.cell_status(cell_hash) == "ok":
            raise CellExistsError(
                f"cell {cell_hash} of run {self.run_id} is already complete "
                f"({self.cell_path(cell_hash)}); pass overwrite=True to replace it"
            )
        atomic_write_parquet(self.samples_path(cell_hash), samples_tbl)
        atomic_write_parquet(self.cell_path(cell_hash), cells_tbl)
        return self.cell_path(cell_hash)


def find_run(root: Path | str, suite_name: str, suite_hash: str) -> str | None:
    """The run id under ``root`` whose ``run.json`` has this ``suite`` name and ``suite_hash``.

    Used to resume: re-running the same suite into the same root continues its run. When several
    runs match, the latest run id (ids sort by creation time) wins. Unreadable ``run.json`` files
    are skipped with a :class:`ResultsReadWarning`. Returns None when nothing matches.
    """
    runs = Path(root) / RUNS_DIR
    if not runs.is_dir():
        return None
    found: list[str] = []
    for run_json in runs.glob(f"*/{RUN_JSON}"):
        try:
            meta = read_json(run_json)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"skipping {run_json}: {exc}", ResultsReadWarning, stacklevel=2)
            continue
        if meta.get("suite_hash") == suite_hash and meta.get("suite") == suite_name:
            found.append(run_json.parent.name)
    return max(found) if found else None
