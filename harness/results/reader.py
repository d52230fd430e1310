"""The one reader of results: all cells / samples under a results root as pandas DataFrames.

The summary, the dashboard and the gate all read through here. ``root`` may be a results root
(holding ``runs/<run_id>/``), a single run directory (holding ``run.json`` and/or ``cells/``), or a
directory of run directories (e.g. ``results/baselines/<suite>/``).

Rules:

- a file of a different schema MAJOR version raises :class:`SchemaVersionError` naming the file,
  its version and the supported one;
- a file of an older MINOR version reads with the columns it lacks as null (a newer MINOR file
  reads too: columns unknown to this code are kept as they are), except the sample rows'
  ``sample`` (1.4), read as 0 where absent or null (:data:`ZERO_FILLED`): every row written before
  it is its doc's only sample;
- temp files (``.*``, ``*.tmp``), unreadable/corrupt files and files without a schema version are
  skipped with a :class:`ResultsReadWarning` and never counted.

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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.results.index import cell_files, load_cells_index
from harness.results.schema import (
    CELL_SCHEMA,
    SAMPLE_SCHEMA,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    SchemaVersionError,
    parse_version,
)
from harness.results.store import (
    CELLS_DIR,
    RUN_JSON,
    RUNS_DIR,
    SAMPLES_DIR,
    ResultsReadWarning,
    _read_json,
    is_temp_name,
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
    return _read_json(Path(run_dir) / RUN_JSON)


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


def _skip(path: Path, why: object) -> None:
    warnings.warn(f"skipping results file {path}: {why}", ResultsReadWarning, stacklevel=3)


def _read_file(path: Path) -> pa.Table | None:
    """Read one file after its version check; None (with a warning) when it must be skipped.

    The file is opened once (schema and data); conforming to the expected schema happens per
    distinct column layout in :func:`_read_all`, not per file (the dashboard reads thousands).
    """
    try:
        handle = pq.ParquetFile(path)
        file_schema = handle.schema_arrow
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated, not parquet
        _skip(path, exc)
        return None
    raw = (file_schema.metadata or {}).get(SCHEMA_VERSION_KEY.encode())
    if raw is None:
        _skip(path, f"no '{SCHEMA_VERSION_KEY}' in its metadata (not written by harness.results)")
        return None
    try:
        major, minor = parse_version(raw)
    except ValueError as exc:
        _skip(path, exc)
        return None
    supported_major, _ = parse_version(SCHEMA_VERSION)
    if major != supported_major:
        raise SchemaVersionError(
            f"{path} was written with results schema version {major}.{minor}, but this harness "
            f"reads schema version {SCHEMA_VERSION} (MAJOR {supported_major} only). Read it with a "
            f"harness release of schema MAJOR {major}, or migrate the file."
        )
    try:
        return handle.read()
    except Exception as exc:  # noqa: BLE001
        _skip(path, exc)
        return None


_CONFORM_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def _read_all(paths: Iterator[Path], expected: pa.Schema) -> list[pa.Table]:
    """Read files and conform them to ``expected``, once per distinct column layout.

    A file whose columns cannot be cast to the schema is skipped with a warning (the rest of
    its layout group is conformed file by file so that only the bad file is lost).
    """
    groups: dict[pa.Schema, list[tuple[Path, pa.Table]]] = {}
    for path in paths:
        table = _read_file(path)
        if table is not None:
            groups.setdefault(table.schema.remove_metadata(), []).append((path, table))
    out: list[pa.Table] = []
    for members in groups.values():
        try:
            out.append(_conform(pa.concat_tables([t for _, t in members], promote_options="none"), expected))
            continue
        except _CONFORM_ERRORS:
            pass
        for path, table in members:
            try:
                out.append(_conform(table, expected))
            except _CONFORM_ERRORS as exc:
                _skip(path, f"columns do not match the schema: {exc}")
    return out


ZERO_FILLED: dict[str, int] = {"sample": 0}
"""Columns whose null (or absence, in files written before them) means a default value: a sample
row's ``sample`` (schema 1.4) is 0 — one sample per doc."""


def _conform(table: pa.Table, expected: pa.Schema) -> pa.Table:
    """Columns of ``expected`` in its order and types (missing ones null, or their
    :data:`ZERO_FILLED` default), then any others."""
    n = table.num_rows
    arrays: list[pa.ChunkedArray | pa.Array] = []
    fields: list[pa.Field] = []
    for field in expected:
        if field.name in table.column_names:
            col = table.column(field.name)
            if not col.type.equals(field.type):
                col = col.cast(field.type)
        else:
            col = pa.nulls(n, type=field.type)
        if field.name in ZERO_FILLED and col.null_count:
            col = pc.fill_null(col, pa.scalar(ZERO_FILLED[field.name], type=field.type))
        arrays.append(col)
        fields.append(field.with_nullable(True))
    for name in table.column_names:
        if name not in expected.names:
            arrays.append(table.column(name))
            fields.append(table.schema.field(name).with_nullable(True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


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
            tables.append(_conform(indexed, CELL_SCHEMA))
        tables.extend(_read_all(iter(rest), CELL_SCHEMA))
    return _to_pandas(tables, CELL_SCHEMA)


def read_samples(
    root: Path | str, run_id: str | None = None, cell_hash: str | None = None
) -> pd.DataFrame:
    """All sample rows under ``root``, optionally only one run's and/or one cell's.

    Raises:
        SchemaVersionError: if a file has a different schema MAJOR version.
    """
    return _to_pandas(_read_all(_files(root, SAMPLES_DIR, run_id, cell_hash), SAMPLE_SCHEMA), SAMPLE_SCHEMA)
