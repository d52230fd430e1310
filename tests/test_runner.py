"""End to end on the embedded model: results layout, resume, crash safety, error cells, re-grading."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.results import read_cells, read_samples
from harness.runner import run_suite

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SUITE = {
    "name": "e2e",
    "models": ["embedded"],
    "tasks": ["gsm8k", "math500"],
    "defaults": {"limit": 2, "batch_size": 2, "max_new_tokens": 16, "device": "cpu"},
    "variants": [
        {"name": "baseline", "adapter": "baseline"},
        {"name": "budget-3", "adapter": "think_budget", "params": {"max_reasoning_tokens": 3, "max_answer_tokens": 13}},
        {"name": "int8", "adapter": "int8"},
    ],
}
CELL_COLUMNS = (
    "run_id cell_hash params_hash hardware_id suite model dtype batch_size variant adapter params_json task "
    "task_version n accuracy accuracy_ci95_low accuracy_ci95_high output_tokens_mean truncation_rate "
    "latency_p50_s latency_p90_s throughput_tok_per_s peak_rss_bytes energy_j energy_source status error"
).split()
SAMPLE_COLUMNS = (
    "run_id cell_hash model variant task doc_id prompt_hash output_text extracted_answer reference correct "
    "input_tokens output_tokens finish_reason latency_s ttft_s"
).split()


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "e2e.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    return path


@pytest.fixture(scope="module")
def first_run(suite_file, tmp_path_factory, embedded):
    os.environ["HARNESS_DATA_DIR"] = str(REPO.parent / "shared" / "data")
    if not Path(os.environ["HARNESS_DATA_DIR"]).is_dir():
        pytest.skip("offline data not found")
    root = tmp_path_factory.mktemp("results")
    report = run_suite(suite_file, root, telemetry_series=True)
    return root, report


def test_results_layout_and_columns(first_run):
    root, report = first_run
    assert report.total == 6 and report.ran == 6 and report.failed == 0
    run_json = json.loads((report.run_dir / "run.json").read_text())
    for key in ("suite", "suite_hash", "started_at", "finished_at", "provenance", "hardware_id"):
        assert key in run_json
    assert {"git_sha", "python", "torch", "transformers", "lm_eval"} <= set(run_json["provenance"]) or run_json["provenance"]
    cells = read_cells(root)
    samples = read_samples(root)
    assert set(CELL_COLUMNS) <= set(cells.columns) and set(SAMPLE_COLUMNS) <= set(samples.columns)
    assert len(list((report.run_dir / "cells").glob("*.parquet"))) == 6
    assert (cells["n"] == 2).all() and (cells["status"] == "ok").all()
    for row in cells.itertuples():
        mine = samples[samples["cell_hash"] == row.cell_hash]
        assert len(mine) == 2
        assert row.accuracy == pytest.approx(mine["correct"].mean())
        assert row.energy_source in {"nvml_counter", "nvml_power_integral", "rapl", "codecarbon_estimate", "unavailable"}
        assert (row.energy_j is None or row.energy_j != row.energy_j) == (row.energy_source == "unavailable")
        if row.energy_j == row.energy_j and row.energy_j is not None:
            assert row.energy_per_sample_j == pytest.approx(row.energy_j / row.n)
            assert row.energy_per_token_j == pytest.approx(row.energy_j / row.output_tokens_total)
    assert samples["ttft_s"].notna().all() and samples["latency_s"].notna().all()
    assert (samples["output_tokens"] <= 16).all()
    budget = cells[cells["variant"] == "budget-3"]
    assert (budget["counter_reasoning_tokens_mean"] <= 3).all()
    int8 = cells[cells["variant"] == "int8"]
    assert (int8["compression_ratio"] > 2.3).all()
    # warm-up: `warmup: 1` rounded up to one batch at the cell's batch size (2), timed separately
    assert (cells["warmup_requests"] == 2).all() and (cells["warmup_time_s"] > 0).all()
    # the derived cells index and the opt-in telemetry series
    assert (report.run_dir / "cells_index.parquet").is_file()
    for h in cells["cell_hash"]:
        series = pq.read_table(report.run_dir / "telemetry" / f"{h}.parquet").to_pandas()
        assert len(series) >= 2 and series["rss_bytes"].notna().all()
        assert series["t_s"].is_monotonic_increasing and series["t_s"].iloc[0] == 0


def test_regrade_reproduces_stored_correct(first_run):
    _, report = first_run
    result = CliRunner().invoke(app, ["grade", "--run", str(report.run_dir)])
    assert result.exit_code == 0, result.output
    assert "0 disagreement" in result.output


def test_rerun_resumes_without_loading_a_model(first_run, suite_file, monkeypatch):
    from harness import models

    root, report = first_run
    stamps = {p: p.stat().st_mtime_ns for p in (report.run_dir / "cells").glob("*.parquet")}
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a model was loaded on a no-op resume"))
    again = run_suite(suite_file, root)
    assert again.run_id == report.run_id and again.ran == 0 and again.skipped == 6
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_failing_cell_is_recorded_and_run_continues(tmp_path, embedded, data_dir):
    from harness.adapters.base import ADAPTERS, Adapter

    @ADAPTERS.register("test_explodes")
    class Explodes(Adapter):
        def prepare_model(self, base):
            raise RuntimeError("boom in prepare_model")

    try:
        suite = {**SUITE, "tasks": ["gsm8k"], "variants": [{"name": "bad", "adapter": "test_explodes"}, SUITE["variants"][0]]}
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(suite))
        report = run_suite(path, tmp_path / "r")
    finally:
        ADAPTERS.unregister("test_explodes")
    cells = read_cells(tmp_path / "r").set_index("variant")
    assert report.failed == 1 and report.ran == 1
    assert cells.loc["bad", "status"] == "error" and "boom in prepare_model" in cells.loc["bad", "error"]
    assert cells.loc["baseline", "status"] == "ok"


def test_sigkill_mid_run_loses_nothing_complete(tmp_path, embedded, data_dir):
    suite = {**SUITE, "defaults": {**SUITE["defaults"], "max_new_tokens": 24}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    root = tmp_path / "r"
    cmd = [sys.executable, "-m", "harness", "run", str(path), "--results", str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not list(root.glob("runs/*/cells/*.parquet")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = list(root.glob("runs/*/cells/*.parquet"))
    assert first, "no cell completed before the deadline"
    stamps = {p: p.stat().st_mtime_ns for p in first}
    for p in root.glob("runs/*/*/*.parquet"):
        pq.read_table(p)  # every file present is readable
    report = run_suite(path, root)
    assert report.skipped >= len(first) and report.failed == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # completed cells never rewritten
    assert len(read_cells(root)) == 6
