"""A run's cells index: every cell row of a run in one Parquet file, a read cache.

The per-cell files (``cells/<cell_hash>.parquet``) stay the truth. Opening a thousand small
Parquet files costs seconds, so when a run finishes the runner writes
``<run>/cells_index.parquet``: the run's cell rows, conformed to the cell schema, with a
manifest in the file's metadata naming each cell file it holds with that file's
``(mtime_ns, size)`` and row. The reader uses a row from the index only while its cell file
still has exactly that mtime and size; a changed, added or removed cell file is read (or
dropped) from ``cells/`` directly, so a stale index never hides or resurrects a result.

The index is derived data: rewriting it (atomically) loses nothing, and deleting it only
makes reads slower.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

from harness.results.files import conform, read_file
from harness.results.schema import CELL_SCHEMA, SCHEMA_VERSION, SCHEMA_VERSION_KEY

__all__ = ["INDEX_NAME", "MANIFEST_KEY", "write_cells_index", "load_cells_index", "cell_files"]

INDEX_NAME = "cells_index.parquet"
MANIFEST_KEY = "harness.cells_manifest"

Manifest = dict[str, tuple[int, int, int]]  # cell file name -> (mtime_ns, size, row in the index)


def cell_files(run_dir: Path) -> list[Path]:
    """The run's cell files (temp files excluded), sorted by name."""
    from harness.results.store import CELLS_DIR, is_temp_name

    folder = Path(run_dir) / CELLS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if p.is_file() and not is_temp_name(p.name))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def write_cells_index(run_dir: Path | str) -> Path | None:
    """Write (atomically replace) ``<run_dir>/cells_index.parquet``; None when the run has no cells.

    Each cell file is stamped *before* it is read, so a file replaced meanwhile no longer
    matches its stamp and is read from ``cells/`` by the reader.

    Raises:
        SchemaVersionError: a cell file of another schema MAJOR version.
    """
    from harness.results.store import atomic_write_parquet

    run_dir = Path(run_dir)
    manifest: Manifest = {}
    tables: list[pa.Table] = []
    rows = 0
    for path in cell_files(run_dir):
        stamp = _stamp(path)
        table = read_file(path) if stamp else None
        if table is None or table.num_rows != 1:
            continue
        manifest[path.name] = (stamp[0], stamp[1], rows)
        tables.append(conform(table, CELL_SCHEMA))
        rows += 1
    if not tables:
        return None
    merged = pa.concat_tables(tables, promote_options="permissive")
    merged = merged.replace_schema_metadata(
        {SCHEMA_VERSION_KEY: SCHEMA_VERSION, MANIFEST_KEY: json.dumps(manifest, sort_keys=True)}
    )
    final = run_dir / INDEX_NAME
    atomic_write_parquet(final, merged)
    return final


def load_cells_index(run_dir: Path, files: list[Path]) -> tuple[pa.Table | None, list[Path]]:
    """Rows of the index still valid for ``files`` (the run's current cell files), and the files
    the index does not cover (to be read directly).

    An absent, unreadable or manifest-less index covers nothing (``(None, files)``).

    Raises:
        SchemaVersionError: the index was written with another schema MAJOR version.
    """
    path = Path(run_dir) / INDEX_NAME
    if not path.is_file():
        return None, files
    table = read_file(path)
    if table is None:
        return None, files
    raw = (table.schema.metadata or {}).get(MANIFEST_KEY.encode())
    try:
        manifest = json.loads(raw) if raw else {}
    except ValueError:
        manifest = {}
    keep: list[int] = []
    rest: list[Path] = []
    for f in files:
        entry = manifest.get(f.name)
        if entry is not None and tuple(entry[:2]) == _stamp(f) and entry[2] < table.num_rows:
            keep.append(int(entry[2]))
        else:
            rest.append(f)
    if not keep:
        return None, files
    return table.take(pa.array(keep, type=pa.int64())), rest
