"""RunStore: layout, atomic writes, resume semantics, never-overwrite, run discovery."""

from __future__ import annotations

import json
import os
import re
import time
import warnings

import pytest

from harness.results.schema import SCHEMA_VERSION

from harness.results import store as store_mod
from harness.results.reader import read_cells, read_run, read_samples
from harness.results.store import (
    CellExistsError,
    ResultsReadWarning,
    RunStore,
    find_run,
    new_run_id,
)

RUN = "20261129T190500Z-reasoning-ab12"


def cell_row(cell_hash: str, status: str = "ok", **extra):
    row = {
        "cell_hash": cell_hash,
        "status": status,
        "model": "tiny",
        "variant": "baseline",
        "task": "gsm8k",
        "hardware_id": "cpu-x",
        "batch_size": 1,
        "n": 2,
        "accuracy": 0.5,
        "energy_j": 1.5,
        "energy_source": "rapl",
    }
    if status == "error":
        row["error"] = "boom"
    row.update(extra)
    return row


def sample_rows(n: int = 2):
    return [
        {
            "doc_id": i,
            "correct": i % 2 == 0,
            "output_tokens": 10 + i,
            "finish_reason": "stop",
            "latency_s": 0.1 * (i + 1),
            "ttft_s": 0.01,
            "itl_s": [0.02] * 3,
        }
        for i in range(n)
    ]


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path, RUN)


def test_layout_and_round_trip(store, tmp_path):
    path = store.write_cell(cell_row("aaa", counter_switches_mean=1.5), sample_rows(3))
    assert path == tmp_path / "runs" / RUN / "cells" / "aaa.parquet"
    assert (tmp_path / "runs" / RUN / "samples" / "aaa.parquet").is_file()
    cells = read_cells(tmp_path)
    assert len(cells) == 1
    row = cells.iloc[0]
    assert row["run_id"] == RUN and row["cell_hash"] == "aaa" and row["status"] == "ok"
    assert row["accuracy"] == 0.5 and row["counter_switches_mean"] == 1.5
    assert row["batch_size"] == 1
    samples = read_samples(tmp_path)
    assert len(samples) == 3
    assert set(samples["run_id"]) == {RUN} and set(samples["cell_hash"]) == {"aaa"}
    assert list(samples["correct"]) == [1.0, 0.0, 1.0]
    assert list(samples.iloc[0]["itl_s"]) == [0.02, 0.02, 0.02]
    # no temp files left behind
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.name.endswith(".tmp")]


def test_run_json_merges_and_is_atomic(store):
    assert store.read_run_json() == {}
    store.write_run_json({"suite": "reasoning", "suite_hash": "h1", "started_at": "t0"})
    merged = store.write_run_json({"finished_at": "t1"})
    on_disk = store.read_run_json()
    assert on_disk == merged
    assert on_disk["suite"] == "reasoning" and on_disk["finished_at"] == "t1"
    assert on_disk["run_id"] == RUN and on_disk["harness_schema_version"] == SCHEMA_VERSION
    assert read_run(store.run_dir) == on_disk
    assert [p.name for p in store.run_dir.iterdir()] == ["run.json"]
    with pytest.raises(ValueError, match="run_id"):
        store.write_run_json({"run_id": "other"})


def test_completed_cells_ok_only(store):
    assert store.completed_cells() == set()
    store.write_cell(cell_row("ok1"), sample_rows())
    store.write_cell(cell_row("err1", status="error"), [])
    assert store.completed_cells() == {"ok1"}
    assert store.cell_status("err1") == "error"
    assert store.cell_status("missing") is None


def test_error_cell_is_rewritten_on_resume(store, tmp_path):
    store.write_cell(cell_row("c1", status="error"), [])
    store.write_cell(cell_row("c1"), sample_rows(2))  # no overwrite flag needed
    assert store.completed_cells() == {"c1"}
    assert list(read_cells(tmp_path)["status"]) == ["ok"]
    assert len(read_samples(tmp_path, cell_hash="c1")) == 2


def test_completed_cell_never_overwritten(store):
    store.write_cell(cell_row("c1", accuracy=0.5), sample_rows(2))
    cell_bytes = store.cell_path("c1").read_bytes()
    sample_bytes = store.samples_path("c1").read_bytes()
    with pytest.raises(CellExistsError, match="already complete"):
        store.write_cell(cell_row("c1", accuracy=0.9), sample_rows(5))
    assert store.cell_path("c1").read_bytes() == cell_bytes
    assert store.samples_path("c1").read_bytes() == sample_bytes  # samples untouched too
    store.write_cell(cell_row("c1", accuracy=0.9), sample_rows(5), overwrite=True)
    assert read_cells(store.run_dir)["accuracy"].tolist() == [0.9]
    assert len(read_samples(store.run_dir)) == 5


def test_samples_written_before_cell_marker(store, monkeypatch):
    real = store_mod.atomic_write_parquet
    calls = []

    def crash_on_cell(final, table):
        calls.append(final.parent.name)
        if final.parent.name == "cells":
            raise KeyboardInterrupt("simulated crash before the marker")
        real(final, table)

    monkeypatch.setattr(store_mod, "atomic_write_parquet", crash_on_cell)
    with pytest.raises(KeyboardInterrupt):
        store.write_cell(cell_row("c1"), sample_rows())
    assert calls == ["samples", "cells"]
    assert store.samples_path("c1").is_file()
    assert not store.cell_path("c1").exists()
    assert store.completed_cells() == set()  # no marker: re-runs on resume
    monkeypatch.setattr(store_mod, "atomic_write_parquet", real)
    store.write_cell(cell_row("c1"), sample_rows())
    assert store.completed_cells() == {"c1"}


def test_crash_leftovers_ignored_and_cleaned(store, tmp_path):
    store.write_cell(cell_row("good"), sample_rows())
    good_bytes = store.cell_path("good").read_bytes()
    # a stray temp file (crash mid-write) and a truncated cell file under a final name
    stray = store.cells_dir / ".c2.parquet.999.deadbeef.tmp"
    stray.write_bytes(good_bytes[: len(good_bytes) // 2])
    stray_samples = store.samples_dir / ".c2.parquet.999.deadbeef.tmp"
    stray_samples.write_bytes(b"garbage")
    store.cell_path("c3").write_bytes(good_bytes[: len(good_bytes) // 2])
    other_tmp = store.cells_dir / "x.parquet.tmp"
    other_tmp.write_bytes(good_bytes)  # even a complete parquet under a temp name is ignored

    with pytest.warns(ResultsReadWarning, match="c3.parquet"):
        assert store.completed_cells() == {"good"}
    with pytest.warns(ResultsReadWarning, match="c3.parquet"):
        cells = read_cells(tmp_path)
    assert cells["cell_hash"].tolist() == ["good"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_samples(tmp_path)) == 2  # samples temp ignored silently

    # the next write of those cells cleans the leftovers and replaces the truncated file
    store.write_cell(cell_row("c2"), sample_rows())
    assert not stray.exists() and not stray_samples.exists()
    with pytest.warns(ResultsReadWarning, match="c3.parquet"):
        store.write_cell(cell_row("c3"), sample_rows())  # replaces the truncated file
    assert store.completed_cells() == {"good", "c2", "c3"}


def test_stale_temp_files_cleaned_by_any_write(store):
    store.write_cell(cell_row("a"), [])
    stale = store.cells_dir / ".zzz.parquet.1.abcd.tmp"
    fresh = store.cells_dir / ".yyy.parquet.1.abcd.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - store_mod.STALE_TMP_AGE_S - 10
    os.utime(stale, (old, old))
    store.write_cell(cell_row("b"), [])
    assert not stale.exists()
    assert fresh.exists()  # may belong to a concurrent writer


def test_invalid_rows_write_nothing(store):
    bad_samples = sample_rows() + [{"doc_id": 9, "latency": 1.0}]
    with pytest.raises(ValueError, match="latency"):
        store.write_cell(cell_row("c1"), bad_samples)
    assert not store.samples_path("c1").exists() and not store.cell_path("c1").exists()
    with pytest.raises(ValueError, match="run_id"):
        store.write_cell(cell_row("c1", run_id="another-run"), [])
    with pytest.raises(ValueError, match="belongs to run"):
        store.write_cell(cell_row("c1"), [{"doc_id": 0, "cell_hash": "other"}])
    with pytest.raises(ValueError, match="invalid cell_hash"):
        store.write_cell(cell_row("../escape"), [])
    with pytest.raises(ValueError, match="invalid run_id"):
        RunStore(store.root, "a/b")


def test_new_run_id_format():
    rid = new_run_id("reasoning")
    assert re.fullmatch(r"\d{8}T\d{6}Z-reasoning-[0-9a-f]{4}", rid), rid
    assert re.fullmatch(r"\d{8}T\d{6}Z-my-suite-v2-[0-9a-f]{4}", new_run_id("my suite/v2"))
    RunStore("/nonexistent", new_run_id("weird name!"))  # always a valid run id


def test_find_run(tmp_path):
    assert find_run(tmp_path, "reasoning", "h1") is None
    a = RunStore(tmp_path, "20260101T000000Z-reasoning-aaaa")
    a.write_run_json({"suite": "reasoning", "suite_hash": "h1"})
    b = RunStore(tmp_path, "20260102T000000Z-reasoning-bbbb")
    b.write_run_json({"suite": "reasoning", "suite_hash": "h2"})
    assert find_run(tmp_path, "reasoning", "h1") == a.run_id
    assert find_run(tmp_path, "reasoning", "h2") == b.run_id
    assert find_run(tmp_path, "other", "h1") is None
    assert find_run(tmp_path, "reasoning", "h3") is None
    c = RunStore(tmp_path, "20260103T000000Z-reasoning-cccc")
    c.write_run_json({"suite": "reasoning", "suite_hash": "h1"})
    assert find_run(tmp_path, "reasoning", "h1") == c.run_id  # latest wins
    broken = tmp_path / "runs" / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    with pytest.warns(ResultsReadWarning, match="broken"):
        assert find_run(tmp_path, "reasoning", "h2") == b.run_id


def test_run_json_is_plain_json(store):
    store.write_run_json({"suite": "s", "nested": {"a": [1, 2]}, "path": store.root})
    data = json.loads(store.run_json_path.read_text())
    assert data["nested"] == {"a": [1, 2]} and data["path"] == str(store.root)
