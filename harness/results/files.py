"""One results Parquet file: read it after its schema-version check, conform it to a schema.

The reader (:mod:`harness.results.reader`) and the cells index (:mod:`harness.results.index`)
both read files through here, so the rules are the same wherever a file is read:

- a file of a different schema MAJOR version raises :class:`SchemaVersionError` naming the file,
  its version and the supported one;
- unreadable/corrupt files and files without a schema version are skipped with a
  :class:`~harness.results.store.ResultsReadWarning`;
- conforming puts the expected columns first, in the schema's order and types (missing ones null,
  or their :data:`ZERO_FILLED` default), and keeps any other column (``counter_*``, newer MINOR
  columns) as it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.results.schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY, SchemaVersionError, parse_version
from harness.results.store import ResultsReadWarning

__all__ = ["read_file", "conform", "read_conformed", "ZERO_FILLED"]


def _skip(path: Path, why: object) -> None:
    warnings.warn(f"skipping results file {path}: {why}", ResultsReadWarning, stacklevel=3)


def read_file(path: Path) -> pa.Table | None:
    """Read one file after its version check; None (with a warning) when it must be skipped.

    Skipped: unreadable/corrupt files and files without a (parsable) schema version.
    The file is opened once (schema and data); conforming to the expected schema happens per
    distinct column layout in :func:`read_conformed`, not per file (the dashboard reads thousands).

    Raises:
        SchemaVersionError: the file has another schema MAJOR version.
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


def read_conformed(paths: Iterable[Path], expected: pa.Schema) -> list[pa.Table]:
    """Read files (:func:`read_file`) and conform them to ``expected``, once per distinct column layout.

    A file whose columns cannot be cast to the schema is skipped with a warning (the rest of
    its layout group is conformed file by file so that only the bad file is lost).
    """
    groups: dict[pa.Schema, list[tuple[Path, pa.Table]]] = {}
    for path in paths:
        table = read_file(path)
        if table is not None:
            groups.setdefault(table.schema.remove_metadata(), []).append((path, table))
    out: list[pa.Table] = []
    for members in groups.values():
        try:
            out.append(conform(pa.concat_tables([t for _, t in members], promote_options="none"), expected))
            continue
        except _CONFORM_ERRORS:
            pass
        for path, table in members:
            try:
                out.append(conform(table, expected))
            except _CONFORM_ERRORS as exc:
                _skip(path, f"columns do not match the schema: {exc}")
    return out


ZERO_FILLED: dict[str, int] = {"sample": 0}
"""Columns whose null (or absence, in files written before them) means a default value: a sample
row's ``sample`` (schema 1.4) is 0 — one sample per doc."""


def conform(table: pa.Table, expected: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``expected`` in its order and types (missing ones null, or their
    :data:`ZERO_FILLED` default), then any others (e.g. ``counter_*`` or newer MINOR columns) as
    they are; every field nullable.

    Raises:
        pyarrow.ArrowInvalid, ArrowTypeError, ArrowNotImplementedError: a column cannot be cast.
    """
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
