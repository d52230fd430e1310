"""Reader: schema versions (MAJOR refused, older MINOR null-filled), root forms, filters, skips."""

from __future__ import annotations

import warnings

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.results import files as files_mod
from harness.results import reader as reader_mod
from harness.results.reader import (
    ResultsReadWarning,
    SchemaVersionError,
    read_cells,
    read_runs,
    read_samples,
    run_dirs,
)
from harness.results.schema import CELL_SCHEMA, SAMPLE_SCHEMA, SCHEMA_VERSION, SCHEMA_VERSION_KEY, cell_table
from harness.results.store import RunStore


def _cell(h, **kw):
    return {"cell_hash": h, "status": "ok", "model": "m", "task": "t", "variant": "v", **kw}


def _samples(n):
    return [{"doc_id": i, "correct": 1.0, "itl_s": [0.1, 0.2]} for i in range(n)]


def _write_raw(path, table, version):
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(table.schema.metadata or {})
    if version is None:
        meta.pop(SCHEMA_VERSION_KEY.encode(), None)
    else:
        meta[SCHEMA_VERSION_KEY.encode()] = version.encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


@pytest.fixture
def two_runs(tmp_path):
    a = RunStore(tmp_path, "run-a")
    a.write_run_json({"suite": "s", "suite_hash": "h"})
    a.write_cell(_cell("c1", counter_x=1.0), _samples(2))
    a.write_cell(_cell("c2", counter_y=2.0), _samples(3))
    b = RunStore(tmp_path, "run-b")
    b.write_run_json({"suite": "s", "suite_hash": "h2"})
    b.write_cell(_cell("c1", status="error", error="oom"), [])
    return tmp_path


def test_reads_all_runs_and_unions_counters(two_runs):
    cells = read_cells(two_runs)
    assert len(cells) == 3
    assert list(cells.columns[: len(CELL_SCHEMA)]) == CELL_SCHEMA.names
    assert {"counter_x", "counter_y"} <= set(cells.columns)
    by = cells.set_index(["run_id", "cell_hash"])
    assert by.loc[("run-a", "c1"), "counter_x"] == 1.0
    assert pd.isna(by.loc[("run-a", "c1"), "counter_y"])
    assert by.loc[("run-b", "c1"), "status"] == "error"
    assert str(cells["batch_size"].dtype) == "Int64"
    assert str(cells["flag_short_window"].dtype) == "boolean"


def test_root_forms(two_runs):
    run_a = two_runs / "runs" / "run-a"
    assert [p.name for p in run_dirs(two_runs)] == ["run-a", "run-b"]
    assert run_dirs(run_a) == [run_a]
    assert len(read_cells(run_a)) == 2
    # a directory holding run directories directly (e.g. results/baselines/<suite>/)
    assert len(read_cells(two_runs / "runs")) == 3
    assert read_cells(two_runs / "nope").empty


def test_filters(two_runs):
    assert len(read_cells(two_runs, run_id="run-b")) == 1
    assert len(read_samples(two_runs)) == 5
    assert len(read_samples(two_runs, run_id="run-a", cell_hash="c2")) == 3
    assert len(read_samples(two_runs, cell_hash="c1")) == 2  # run-b's c1 has no samples
    assert read_samples(two_runs, cell_hash="zzz").empty


def test_empty_root_gives_typed_empty_frames(tmp_path):
    cells = read_cells(tmp_path)
    samples = read_samples(tmp_path)
    assert cells.empty and list(cells.columns) == CELL_SCHEMA.names
    assert samples.empty and list(samples.columns) == SAMPLE_SCHEMA.names


def test_read_runs(two_runs):
    runs = read_runs(two_runs)
    assert sorted(runs["run_id"]) == ["run-a", "run-b"]
    assert set(runs["suite_hash"]) == {"h", "h2"}


def test_major_version_mismatch_refused(two_runs):
    path = two_runs / "runs" / "run-c" / "cells" / "c9.parquet"
    _write_raw(path, cell_table([_cell("c9", run_id="run-c")]), "2.0")
    with pytest.raises(SchemaVersionError) as err:
        read_cells(two_runs)
    msg = str(err.value)
    assert str(path) in msg and "2.0" in msg and SCHEMA_VERSION in msg
    # the resume oracle does not count it as complete either
    with pytest.warns(ResultsReadWarning, match="MAJOR"):
        assert RunStore(two_runs, "run-c").completed_cells() == set()


def test_older_minor_reads_new_columns_as_null(tmp_path, monkeypatch):
    # a file written at 1.0 ...
    RunStore(tmp_path, "r").write_cell(_cell("c1", accuracy=0.75), _samples(1))
    # ... read by code whose schema is 1.1 and has one more column
    newer = CELL_SCHEMA.append(pa.field("new_metric_s", pa.float64()))
    monkeypatch.setattr(reader_mod, "CELL_SCHEMA", newer)
    monkeypatch.setattr(files_mod, "SCHEMA_VERSION", "1.1")  # the version check lives in files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cells = read_cells(tmp_path)
    assert "new_metric_s" in cells.columns
    assert pd.isna(cells.loc[0, "new_metric_s"])
    assert cells.loc[0, "accuracy"] == 0.75


def test_file_missing_a_column_reads_it_as_null(tmp_path):
    """Same as above without monkeypatching: a 1.0 file lacking a column of the current schema."""
    full = cell_table([_cell("c1", run_id="r", energy_j=3.0)])
    slim = full.drop_columns(["energy_per_correct_j"])
    _write_raw(tmp_path / "runs" / "r" / "cells" / "c1.parquet", slim, "1.0")
    cells = read_cells(tmp_path)
    assert pd.isna(cells.loc[0, "energy_per_correct_j"]) and cells.loc[0, "energy_j"] == 3.0
    assert list(cells.columns[: len(CELL_SCHEMA)]) == CELL_SCHEMA.names


def test_newer_minor_keeps_unknown_columns(tmp_path):
    t = cell_table([_cell("c1", run_id="r")]).append_column("from_the_future", pa.array([7]))
    _write_raw(tmp_path / "runs" / "r" / "cells" / "c1.parquet", t, "1.9")
    cells = read_cells(tmp_path)
    assert cells.loc[0, "from_the_future"] == 7


def test_unversioned_and_corrupt_files_skipped(two_runs):
    cells_dir = two_runs / "runs" / "run-a" / "cells"
    _write_raw(cells_dir / "foreign.parquet", pa.table({"x": [1]}), None)
    (cells_dir / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.warns(ResultsReadWarning) as record:
        cells = read_cells(two_runs)
    assert len(cells) == 3
    msgs = " ".join(str(w.message) for w in record)
    assert "foreign.parquet" in msgs and "junk.parquet" in msgs


def test_incompatible_column_type_skipped(tmp_path):
    t = cell_table([_cell("c1", run_id="r")])
    t = t.set_column(t.schema.get_field_index("accuracy"), "accuracy", pa.array(["high"]))
    _write_raw(tmp_path / "runs" / "r" / "cells" / "c1.parquet", t, "1.0")
    with pytest.warns(ResultsReadWarning, match="accuracy|do not match"):
        assert read_cells(tmp_path).empty


def test_sample_column_defaults_to_0_when_written_and_read(tmp_path):
    """``sample`` (1.4): rows written without it get 0; a file from before 1.4 (no column) and a
    null read as 0; a given sample is kept."""
    from harness.results.schema import sample_table

    store = RunStore(tmp_path, "r")
    store.write_cell(_cell("c1"), [{"doc_id": 0}, {"doc_id": 0, "sample": 1}, {"doc_id": 1, "sample": None}])
    assert read_samples(tmp_path)["sample"].tolist() == [0, 1, 0]
    old = sample_table([{"run_id": "r", "cell_hash": "c2", "doc_id": i} for i in range(3)]).drop_columns(["sample"])
    _write_raw(tmp_path / "runs" / "r" / "samples" / "c2.parquet", old, "1.3")
    nulls = sample_table([{"run_id": "r", "cell_hash": "c3", "doc_id": 0}])
    nulls = nulls.set_column(nulls.schema.get_field_index("sample"), "sample", pa.nulls(1, pa.int64()))
    _write_raw(tmp_path / "runs" / "r" / "samples" / "c3.parquet", nulls, "1.4")
    samples = read_samples(tmp_path)
    assert samples.set_index("cell_hash").loc["c2", "sample"].tolist() == [0, 0, 0]
    assert samples.set_index("cell_hash").loc[["c3"], "sample"].tolist() == [0]
    assert str(samples["sample"].dtype) == "Int64" and samples["sample"].notna().all()
