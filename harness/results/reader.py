"""The one reader of results: all cells / samples under a results root as pandas DataFrames.

The summary, the dashboard and the gate all read through here. ``root`` may be a results root
(holding ``runs/<run_id>/``), a single run directory (holding ``run.json`` and/or ``cells/``), or a
directory of run directories (e.g. ``results/baselines/<suite>/``).

Rules:

- a file of a different schema MAJOR version raises :class:`SchemaVersionError` naming the file,
  its version and the supported one;
- a file of an older MINOR version reads with the columns it lacks as null (a newer MINOR file
  reads too: columns unknown to this code are kept as they are), except the sample rows'
  ``sample`` (1.4), read as 0 where absent or null (:data:`harness.results.files.ZERO_FILLED`): every row written before
  it is its doc's only sample;
- temp files (``.*``, ``*.tmp``), unreadable/corrupt files and files without a schema version are
  skipped with a :class:`ResultsReadWarning` and never counted.

Reading and conforming one file is :mod:`harness.results.files` (shared with the cells index).

Dtypes: integer and bool columns come back as pandas' nullable ``Int64`` / ``boolean``; floats as
``float64`` with NaN for null; ``itl_s`` as an object column of arrays.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from harness.results.files import conform, read_conformed
from harness.results.index import cell_files, load_cells_index
from harness.results.schema import CELL_SCHEMA, SAMPLE_SCHEMA, SchemaVersionError
from harness.results.store import (
    CELLS_DIR,
    RUN_JSON,
    RUNS_DIR,
    SAMPLES_DIR,
    ResultsReadWarning,
    is_temp_name,
    read_json,
)

__all__ = [
    "read_cells",
    "read_samples",
    "read_run",
    "read_runs",
    "run_dirs",
    "SchemaVersionError",
    "ResultsReadWarning",
]


def _is_run_dir(path: Path) -> bool:
    return (path / RUN_JSON).is_file() or (path / CELLS_DIR).is_dir() or (path / SAMPLES_DIR).is_dir()


def run_dirs(root: Path | str) -> list[Path]:
    """The run directories under ``root`` (see the module docstring), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    if (root / RUNS_DIR).is_dir():
        return sorted(p for p in (root / RUNS_DIR).iterdir() if p.is_dir() and not is_temp_name(p.name))
    if _is_run_dir(root):
        return [root]
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not is_temp_name(p.name) and _is_run_dir(p)
    )


def read_run(run_dir: Path | str) -> dict[str, Any]:
    """The ``run.json`` of one run directory as a dict.

    Raises:
        FileNotFoundError: if the run directory has no ``run.json``.
        ValueError: if it is not a JSON object (``json.JSONDecodeError`` is a ``ValueError``).
    """
    return read_json(Path(run_dir) / RUN_JSON)


def read_runs(root: Path | str) -> pd.DataFrame:
    """One row per run under ``root`` with its ``run.json`` top-level keys (nested values as is).

    Runs without a readable ``run.json`` are skipped with a warning.
    """
    records = []
    for d in run_dirs(root):
        try:
            meta = read_run(d)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"skipping run {d}: {exc}", ResultsReadWarning, stacklevel=2)
            continue
        meta.setdefault("run_id", d.name)
        meta["run_dir"] = str(d)
        records.append(meta)
    return pd.DataFrame.from_records(records)


def _files(root: Path | str, sub: str, run_id: str | None, cell_hash: str | None) -> Iterator[Path]:
    for d in run_dirs(root):
        if run_id is not None and d.name != run_id:
            continue
        folder = d / sub
        if not folder.is_dir():
            continue
        if cell_hash is not None:
            candidates = [folder / f"{cell_hash}.parquet"]
        else:
            candidates = sorted(folder.glob("*.parquet"))
        for p in candidates:
            if p.is_file() and not is_temp_name(p.name):
                yield p


_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def _to_pandas(tables: list[pa.Table], expected: pa.Schema) -> pd.DataFrame:
    if tables:
        table = pa.concat_tables(tables, promote_options="permissive")
    else:
        table = expected.empty_table()
    table = table.replace_schema_metadata(None)
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get)


def read_cells(root: Path | str, run_id: str | None = None) -> pd.DataFrame:
    """All cell rows under ``root`` (optionally one run), one row per cell file.

    A run's ``cells_index.parquet`` (:mod:`harness.results.index`) supplies the rows of the cell
    files it still matches; the other cell files are read directly.

    Columns: every column of ``CELL_SCHEMA`` in order, then any ``counter_*`` (and newer) columns.
    An empty root gives an empty frame with those columns.

    Raises:
        SchemaVersionError: if a file has a different schema MAJOR version.
    """
    tables: list[pa.Table] = []
    for d in run_dirs(root):
        if run_id is not None and d.name != run_id:
            continue
        indexed, rest = load_cells_index(d, cell_files(d))
        if indexed is not None:
            tables.append(conform(indexed, CELL_SCHEMA))
        tables.extend(read_conformed(iter(rest), CELL_SCHEMA))
    return _to_pandas(tables, CELL_SCHEMA)


def read_samples(
    root: Path | str, run_id: str | None = None, cell_hash: str | None = None
) -> pd.DataFrame:
    """All sample rows under ``root``, optionally only one run's and/or one cell's.

    Raises:
        SchemaVersionError: if a file has a different schema MAJOR version.
    """
    return _to_pandas(read_conformed(_files(root, SAMPLES_DIR, run_id, cell_hash), SAMPLE_SCHEMA), SAMPLE_SCHEMA)
