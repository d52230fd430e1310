"""The per-run cells index: same rows as the cell files, never stale, never fatal."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from harness.results import index as index_mod
from harness.results.index import INDEX_NAME, write_cells_index
from harness.results.reader import read_cells
from harness.results.store import RunStore


def _cell(h, **kw):
    return {"cell_hash": h, "status": "ok", "model": "m", "task": "t", "variant": "v", **kw}


def _direct(run_dir):
    """Rows read from the cell files alone (the index moved away)."""
    idx = run_dir / INDEX_NAME
    moved = run_dir / "moved.bin"
    idx.rename(moved)
    try:
        return read_cells(run_dir)
    finally:
        moved.rename(idx)


def _canon(df):
    return df.sort_values("cell_hash").reset_index(drop=True)


@pytest.fixture
def run(tmp_path):
    store = RunStore(tmp_path, "run-a")
    store.write_run_json({"suite": "s", "suite_hash": "h"})
    store.write_cell(_cell("c1", accuracy=0.5, counter_x=1.0), [])
    store.write_cell(_cell("c2", accuracy=0.25, counter_y=2.0), [])
    store.write_cell(_cell("c3", status="error", error="boom"), [])
    assert write_cells_index(store.run_dir) == store.run_dir / INDEX_NAME
    return store


def test_index_rows_equal_the_cell_files(run, monkeypatch):
    read_files = []
    real = index_mod.load_cells_index

    def spy(run_dir, files):
        table, rest = real(run_dir, files)
        read_files.extend(rest)
        return table, rest

    monkeypatch.setattr("harness.results.reader.load_cells_index", spy)
    via_index = read_cells(run.run_dir)
    assert read_files == []  # every row came from the index
    pd.testing.assert_frame_equal(_canon(via_index), _canon(_direct(run.run_dir)))
    assert set(via_index["cell_hash"]) == {"c1", "c2", "c3"}


def test_a_rewritten_cell_is_read_from_its_file_not_the_index(run):
    run.write_cell(_cell("c3", accuracy=0.75), [])  # the error cell re-run, index now stale for it
    cells = read_cells(run.run_dir).set_index("cell_hash")
    assert cells.loc["c3", "status"] == "ok" and cells.loc["c3", "accuracy"] == 0.75
    assert cells.loc["c1", "accuracy"] == 0.5


def test_added_and_removed_cell_files_are_seen(run):
    run.write_cell(_cell("c4", accuracy=1.0), [])
    os.remove(run.cell_path("c2"))
    assert sorted(read_cells(run.run_dir)["cell_hash"]) == ["c1", "c3", "c4"]


def test_a_corrupt_index_falls_back_to_the_cell_files(run):
    (run.run_dir / INDEX_NAME).write_bytes(b"not parquet")
    with pytest.warns(Warning, match="skipping results file"):
        cells = read_cells(run.run_dir)
    assert sorted(cells["cell_hash"]) == ["c1", "c2", "c3"]


def test_no_cells_no_index(tmp_path):
    store = RunStore(tmp_path, "empty")
    store.write_run_json({"suite": "s", "suite_hash": "h"})
    assert write_cells_index(store.run_dir) is None
    assert not (store.run_dir / INDEX_NAME).exists()
