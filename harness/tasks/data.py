"""Benchmark data access: local JSONL under ``$HARNESS_DATA_DIR`` or the Hugging Face hub.

The one data-dir setting is the environment variable ``HARNESS_DATA_DIR``:

* set (non-empty): read ``$HARNESS_DATA_DIR/<relpath>``. A missing file is an error naming the full
  path; there is no silent fallback to the hub when a data dir was configured.
* unset or empty: ``datasets.load_dataset(hub_id, hub_config, split=hub_split)``. ``datasets`` is
  imported only on this path.

Local files use the hub datasets' field names, so callers see the same dicts either way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "DataError", "data_dir", "load_jsonl_or_hub", "read_jsonl"]

DATA_DIR_ENV = "HARNESS_DATA_DIR"


class DataError(RuntimeError):
    """Benchmark data could not be found or read."""


def data_dir() -> Path | None:
    """The configured data directory (``$HARNESS_DATA_DIR``, ``~`` expanded), or None when unset/empty."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if not value:
        return None
    return Path(value).expanduser()


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file (blank lines skipped); DataError on unreadable file or bad line."""
    rows: list[dict] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from e
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                rows.append(row)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    return rows


def load_jsonl_or_hub(relpath: str, hub_id: str, hub_config: str | None, hub_split: str) -> list[dict]:
    """All rows of a benchmark split as a list of dicts (hub field names), in file order.

    Reads ``$HARNESS_DATA_DIR/<relpath>`` when ``HARNESS_DATA_DIR`` is set, else loads
    ``hub_id``/``hub_config``/``hub_split`` from the Hugging Face hub. An absolute ``relpath``
    (``~`` expanded: a user's own task file) is read as it is, whatever ``HARNESS_DATA_DIR``
    says. Raises DataError.
    """
    own = Path(relpath).expanduser()
    if own.is_absolute():
        if not own.is_file():
            raise DataError(f"data file not found: {own}")
        return read_jsonl(own)
    base = data_dir()
    if base is not None:
        path = base / relpath
        if not path.is_file():
            raise DataError(
                f"data file not found: {path} ({DATA_DIR_ENV}={os.environ.get(DATA_DIR_ENV)!r}; "
                f"expected <{DATA_DIR_ENV}>/{relpath}). Fix {DATA_DIR_ENV} or unset it to load "
                f"{hub_id!r} from the Hugging Face hub."
            )
        return read_jsonl(path)
    return _load_from_hub(hub_id, hub_config, hub_split)


def _load_from_hub(hub_id: str, hub_config: str | None, hub_split: str) -> list[dict]:
    what = f"{hub_id!r} (config={hub_config!r}, split={hub_split!r})"
    hint = f"set {DATA_DIR_ENV} to a directory holding local copies of the benchmark files to load offline"
    try:
        import datasets  # lazy: heavy, and unneeded when HARNESS_DATA_DIR is set
    except ImportError as e:
        raise DataError(f"cannot load {what} from the hub: the 'datasets' package is not installed; {hint}") from e
    try:
        ds = datasets.load_dataset(hub_id, hub_config, split=hub_split)
        return [dict(row) for row in ds]
    except Exception as e:  # network, auth, missing config, ...: all surface the same way
        raise DataError(f"cannot load {what} from the Hugging Face hub ({type(e).__name__}: {e}); {hint}") from e
