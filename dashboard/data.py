"""Cached, read-only access to a results root through :mod:`harness.results`.

Cells are read per run with :func:`harness.results.read_cells` and cached with
``st.cache_data`` under a key made of the run's files (name, mtime, size): a run added or
completed while the app is open is read on the next refresh, and only that run is read again.
Samples are read per cell (:func:`harness.results.read_samples`) keyed by their file's mtime.

Nothing here writes a file; only Parquet and JSON are read (no pickle). A run whose files have
another schema MAJOR version is left out with its error shown, never a crash; skipped files are
reported as warnings.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from harness.results import ResultsReadWarning, SchemaVersionError, read_cells, read_runs, read_samples
from harness.results.reader import run_dirs
from harness.results.summary import with_energy_per_sample

__all__ = [
    "RESULTS_ENV",
    "FILTERS",
    "Loaded",
    "results_root",
    "load",
    "load_samples",
    "apply_filters",
    "best_per_variant",
    "ok_cells",
    "col",
    "limit_text",
    "limit_order",
    "FULL_SPLIT",
]

RESULTS_ENV = "HARNESS_RESULTS"
"""Environment variable naming the results root (``--results`` after ``--`` wins over it)."""

FILTERS: dict[str, str] = {
    "suite": "suite",
    "task": "task",
    "model": "model",
    "hardware": "hardware",
    "batch size": "batch_size",
    "limit": "limit_text",
    "run": "run_id",
    "adapter": "adapter",
}
"""Sidebar filters: label -> cell column (``hardware`` is a readable label of ``hardware_id``;
``limit_text`` the samples per task as text, ``all`` for a full split)."""

FULL_SPLIT = "all"
"""``limit_text`` of a cell run on its task's full split (``limit`` null)."""

VARIANT_KEY = ("suite", "task", "task_version", "limit_text", "model", "hardware_id", "batch_size", "variant", "params_hash")
"""What makes two cells the same variant in the same comparable setting: the limit is a slice key
like the batch size (an 8-sample cell never hides behind a 2-sample one)."""


def limit_text(limits: pd.Series) -> pd.Series:
    """Samples per task as text (``"8"``), :data:`FULL_SPLIT` for a null limit (the full split)."""
    values = pd.to_numeric(limits, errors="coerce")
    return pd.Series([FULL_SPLIT if pd.isna(v) else str(int(v)) for v in values], index=limits.index, dtype="object")


def limit_order(values) -> list[str]:
    """``limit_text`` values from the fewest samples to the most (the full split last)."""
    return sorted(values, key=lambda v: (v == FULL_SPLIT, int(v) if str(v).isdigit() else 0, str(v)))


def results_root(argv: list[str] | None = None) -> Path:
    """The results root: ``--results`` in the script's arguments, else ``$HARNESS_RESULTS``,
    else ``results``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--results")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return Path(args.results or os.environ.get(RESULTS_ENV) or "results").expanduser().resolve()


def _stat_key(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for p in paths:
        try:
            s = p.stat()
        except OSError:
            continue
        out.append((p.name, s.st_mtime_ns, s.st_size))
    return tuple(out)


def _digest(key: object) -> str:
    # a short string: Streamlit hashes cache arguments itself, slowly for long tuples
    return hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()


def run_fingerprint(run_dir: Path) -> str:
    """What changes when a run's cells or metadata change (a digest of names, mtimes, sizes)."""
    cells = sorted((run_dir / "cells").glob("*.parquet")) if (run_dir / "cells").is_dir() else []
    return _digest(_stat_key([run_dir / "run.json", *cells]))


def col(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` of ``df``, or an all-null float column when absent (older files)."""
    if name in df.columns:
        return df[name]
    return pd.Series(float("nan"), index=df.index, dtype="float64", name=name)


@st.cache_data(show_spinner=False, max_entries=2048)
def _run_cells(root: str, run_id: str, fingerprint: str) -> tuple[pd.DataFrame, list[str], str | None]:
    """One run's cells, the read warnings and a fatal error message (other MAJOR version)."""
    del fingerprint  # part of the cache key only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResultsReadWarning)
        try:
            df = read_cells(root, run_id=run_id)
            error = None
        except SchemaVersionError as exc:
            df, error = read_cells(Path(root) / "__none__"), str(exc)
    notes = [str(w.message) for w in caught if issubclass(w.category, ResultsReadWarning)]
    return df, notes, error


@st.cache_data(show_spinner=False, max_entries=64)
def _runs(root: str, fingerprint: str) -> tuple[pd.DataFrame, list[str]]:
    del fingerprint
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResultsReadWarning)
        df = read_runs(root)
    return df, [str(w.message) for w in caught]


def _hardware_labels(runs: pd.DataFrame) -> dict[str, str]:
    """``hardware_id -> "2× NVIDIA H200"`` or ``"Intel Xeon (2 cores)"`` from run provenance."""
    labels: dict[str, str] = {}
    if runs.empty or "provenance" not in runs.columns:
        return labels
    for _, run in runs.iterrows():
        prov = run.get("provenance")
        if not isinstance(prov, dict):
            continue
        hw = prov.get("hardware_id") or run.get("hardware_id")
        if not isinstance(hw, str) or hw in labels:
            continue
        gpus = [g.get("name") for g in prov.get("gpus") or [] if isinstance(g, dict) and g.get("name")]
        if gpus:
            names = sorted(set(gpus))
            text = " + ".join(f"{gpus.count(n)}× {n}" for n in names)
        else:
            cpu = prov.get("cpu_model") or "CPU"
            cores = prov.get("cpu_logical_cores")
            text = f"{cpu} ({cores} cores)" if cores else str(cpu)
        labels[hw] = text
    return labels


@dataclass(frozen=True)
class Loaded:
    """Everything read from a results root (unfiltered)."""

    root: Path
    cells: pd.DataFrame
    runs: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # skipped files
    errors: list[str] = field(default_factory=list)  # runs left out (schema MAJOR)

    @property
    def empty(self) -> bool:
        return self.cells.empty


def load(root: Path | str) -> Loaded:
    """All cells (with ``hardware`` and ``run_dir`` columns added) and runs under ``root``.

    Cached per run and as a whole; the key is the runs' files (names, mtimes, sizes), so a run
    added or grown since the last call is read (only it) and everything else comes from memory.
    """
    root = Path(root)
    dirs = run_dirs(root)
    return _load(str(root), tuple((d.name, str(d), run_fingerprint(d)) for d in dirs))


@st.cache_data(show_spinner="Reading results…", max_entries=16)
def _load(root_text: str, fingerprints: tuple[tuple[str, str, str], ...]) -> Loaded:
    root = Path(root_text)
    runs, run_notes = _runs(root_text, _digest(fingerprints))
    parts, notes, errors = [], list(run_notes), []
    for name, run_dir, fingerprint in fingerprints:
        # read_cells(root, run_id) selects a run by its directory name under ``root``
        df, n, err = _run_cells(root_text, name, fingerprint)
        notes += n
        if err:
            errors.append(err)
        elif not df.empty:
            df = df.copy()
            df["run_dir"] = run_dir
            parts.append(df)
    if parts:
        cells = pd.concat(parts, ignore_index=True, sort=False)
    else:
        cells = read_cells(root / "__no_runs__")  # an empty frame with every column
        cells["run_dir"] = pd.Series(dtype="object")
    cells["limit_text"] = limit_text(col(cells, "limit"))
    cells = with_energy_per_sample(cells)  # files before schema 1.1 lack it: energy_j / n
    labels = _hardware_labels(runs)
    hw = col(cells, "hardware_id")
    cells["hardware"] = [
        (f"{labels[h]} · {h[:8]}" if h in labels else str(h)) if isinstance(h, str) else "unknown"
        for h in hw
    ]
    return Loaded(root=root, cells=cells, runs=runs, notes=notes, errors=errors)


@st.cache_data(show_spinner=False, max_entries=32)
def _samples(root: str, run_id: str, cell_hash: str, fingerprint: str) -> pd.DataFrame:
    del fingerprint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultsReadWarning)
        return read_samples(root, run_id=run_id, cell_hash=cell_hash)


def load_samples(root: Path | str, run_dir: str, run_id: str, cell_hash: str) -> pd.DataFrame:
    """One cell's sample rows (empty when it has no samples file), cached on the file's mtime."""
    path = Path(run_dir) / "samples" / f"{cell_hash}.parquet"
    return _samples(str(root), run_id, cell_hash, _digest(_stat_key([path])))


def apply_filters(cells: pd.DataFrame, chosen: dict[str, list]) -> pd.DataFrame:
    """Rows whose value is among the chosen ones for every filter with a non-empty choice."""
    mask = pd.Series(True, index=cells.index)
    for label, values in chosen.items():
        column = FILTERS.get(label, label)
        if values and column in cells.columns:
            mask &= cells[column].astype("object").isin(list(values))
    return cells[mask]


def ok_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells recorded with ``status == "ok"``."""
    return cells[col(cells, "status") == "ok"]


def best_per_variant(cells: pd.DataFrame) -> pd.DataFrame:
    """One ok cell per variant and comparable setting (:data:`VARIANT_KEY`): the most accurate,
    ties broken by the larger ``n``, then the latest run."""
    ok = ok_cells(cells)
    if ok.empty:
        return ok
    if "limit_text" not in ok.columns:
        ok = ok.assign(limit_text=limit_text(col(ok, "limit")))
    key = [c for c in VARIANT_KEY if c in ok.columns]
    order = ok.assign(
        _acc=pd.to_numeric(col(ok, "accuracy"), errors="coerce").fillna(-1.0),
        _n=pd.to_numeric(col(ok, "n"), errors="coerce").fillna(-1),
        _run=col(ok, "run_id").astype("object").fillna(""),
    ).sort_values(["_acc", "_n", "_run"], ascending=[False, False, False], kind="stable")
    best = order.drop_duplicates(subset=key, keep="first") if key else order
    return best.drop(columns=["_acc", "_n", "_run"]).sort_index()
