"""The ``ray`` executor on a real local Ray instance (no mocks): the same results as the local
executor, resume after a killed driver, a worker killed mid-cell, per-worker provenance.

The suite is the smoke suite's variants and tasks on a tiny random-weight Llama saved to a
folder (a model reference every Ray worker can load); every process decodes with one thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

ray = pytest.importorskip("ray")

from harness.gate import run_gate  # noqa: E402
from harness.results import read_cells, read_samples  # noqa: E402
from harness.runner import run_suite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from harness.testing import tiny_model, tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny-model")
    tiny_model(seed=3).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def _suite(tmp_path: Path, tiny_dir: Path, **extra) -> Path:
    smoke = yaml.safe_load((ROOT / "suites/smoke.yaml").read_text())
    smoke.update(name="smoke-tiny", models=[str(tiny_dir)])
    smoke["defaults"]["max_new_tokens"] = 40
    for v in smoke["variants"]:  # the character tokenizer spells the answer cue in ~20 tokens
        if v["adapter"] == "think_budget":
            v["params"]["max_answer_tokens"] = 28
    smoke.update(extra)
    path = tmp_path / "smoke-tiny.yaml"
    path.write_text(yaml.safe_dump(smoke))
    return path


@pytest.fixture
def one_thread(monkeypatch, data_dir):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    yield
    torch.set_num_threads(threads)
    if ray.is_initialized():
        ray.shutdown()


def _outputs(run_dir: Path) -> dict:
    samples = read_samples(run_dir)
    return {(r.cell_hash, r.doc_id, r.sample): r.output_text for r in samples.itertuples()}


def test_two_ray_workers_give_the_local_executors_results(tmp_path, tiny_dir, one_thread):
    suite = _suite(tmp_path, tiny_dir)
    local = run_suite(suite, tmp_path / "local", console=Console(record=True))
    remote = run_suite(suite, tmp_path / "ray", console=Console(record=True), executor="ray")
    assert (local.failed, remote.failed, remote.ran) == (0, 0, 6)
    lc, rc = read_cells(local.run_dir), read_cells(remote.run_dir)
    assert sorted(lc.cell_hash) == sorted(rc.cell_hash)
    assert _outputs(local.run_dir) == _outputs(remote.run_dir)  # token for token (greedy)
    acc = lambda df: dict(zip(df.cell_hash, df.accuracy))  # noqa: E731
    assert acc(lc) == acc(rc)
    pids = {json.loads(p)["pid"] for p in rc.provenance_json}
    assert len(pids) == 2 and os.getpid() not in pids  # the group ran in two chunks, in two workers
    report = run_gate(local.run_dir, remote.run_dir, overrides={"cost": False})
    assert report.exit_code == 0, report.markdown()
    # switching executors resumes the same run: nothing left to do
    again = run_suite(suite, tmp_path / "ray", console=Console(record=True), executor="local")
    assert (again.run_id, again.ran, again.skipped) == (remote.run_id, 0, 6)


def test_a_killed_driver_resumes_with_only_the_missing_cells(tmp_path, tiny_dir, one_thread):
    suite = _suite(tmp_path, tiny_dir, defaults={"limit": 2, "batch_size": 2, "max_new_tokens": 64, "device": "cpu"})
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen([sys.executable, "-m", "harness", "run", str(suite), "--results", str(results),
                               "--executor", "ray"], env=env, cwd=ROOT, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(results.glob("runs/*/cells/*.parquet")):
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
    driver.wait()
    done = {p.stem for p in results.glob("runs/*/cells/*.parquet")}
    assert 1 <= len(done) < 6
    report = run_suite(suite, results, console=Console(record=True), executor="ray")
    assert (report.skipped, report.ran, report.failed) == (len(done), 6 - len(done), 0)
    assert len(read_cells(report.run_dir)) == 6


@pytest.mark.parametrize("retries", [1, 0])
def test_a_worker_killed_mid_cell_costs_at_most_that_cell(tmp_path, tiny_dir, one_thread, monkeypatch, retries):
    monkeypatch.setenv("HARNESS_PLUGINS", "tests.ray_plugins")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    marker = tmp_path / "crashed"
    suite = _suite(tmp_path, tiny_dir, variants=[
        {"name": "baseline", "adapter": "baseline"},
        {"name": "crash", "adapter": "crash_once", "params": {"marker": str(marker)}},
    ])
    report = run_suite(suite, tmp_path / "results", console=Console(record=True), executor="ray",
                       executor_options={"max_retries": retries})
    assert marker.exists()  # a worker really died, on its third token of a crash_once cell
    cells = read_cells(report.run_dir)  # every Parquet file reads back
    assert len(cells) == 4 and len(read_samples(report.run_dir)) == 2 * int((cells.status == "ok").sum())
    if retries:
        assert (report.ran, report.failed) == (4, 0) and set(cells.status) == {"ok"}
    else:
        lost = cells[cells.status == "error"]
        assert report.failed >= 1 and set(lost.variant) == {"crash"}
        assert lost.error.str.contains("ray worker lost").all()
        assert (cells[cells.variant == "baseline"].status == "ok").all()


def test_cells_carry_the_provenance_of_their_worker_and_the_gate_refuses_cost_across(tmp_path, tiny_dir, one_thread,
                                                                                       monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGINS", "tests.ray_plugins")
    monkeypatch.setenv("HARNESS_FAKE_NODES", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    suite = _suite(tmp_path, tiny_dir, tasks=["gsm8k"], defaults={"limit": 2, "batch_size": 2, "max_new_tokens": 40,
                                                                     "device": "cpu", "repeats": 3})
    first = run_suite(suite, tmp_path / "a", console=Console(record=True), executor="ray")
    second = run_suite(suite, tmp_path / "b", console=Console(record=True), executor="ray")
    cells = read_cells(first.run_dir)
    assert cells.hardware_id.nunique() == 2  # two workers posing as two kinds of node
    for _, fam in cells.groupby("variant"):
        assert fam.hardware_id.nunique() == 1  # a cell's repeats stay on one worker
    report = run_gate(first.run_dir, second.run_dir, overrides={"min_repeats": 3})
    costs = [c for c in report.checks if c.metric == "latency_p50_s"]
    assert costs and all(c.status == "not_comparable" and "hardware" in c.note for c in costs), report.markdown()
