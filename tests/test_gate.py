"""The regression gate end to end on synthetic runs written through ``RunStore.write_cell``.

Every run here is written by the real store and read back by the real reader; the CLI is called
in-process. No model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.gate import GateInputError, run_gate
from harness.results import RunStore, read_cells
from harness.config.suite import Suite, suite_hash
from harness.core.hashing import stable_hash

MODEL = "embedded:test-model@abc123"

runner = CliRunner()


def _suite_config(length_changing: tuple[str, ...] = (), gate: dict | None = None) -> dict:
    cfg = {
        "name": "synthetic",
        "models": ["embedded"],
        "tasks": ["gsm8k"],
        "variants": [
            {"name": v, "adapter": "baseline", "length_changing": v in length_changing}
            for v in ("baseline", "int8", "short")
        ],
    }
    if gate is not None:
        cfg["gate"] = gate
    return cfg


def make_cell(
    variant: str,
    correct,
    *,
    task: str = "gsm8k",
    tokens=None,
    finish=None,
    texts=None,
    repeat: int = 0,
    hardware_id: str = "hw-a",
    latency_s: float = 1.0,
    status: str = "ok",
    error: str | None = None,
    doc_ids=None,
) -> tuple[dict, list[dict]]:
    """A cell row and its sample rows; ``correct`` is a sequence of 0/1 grades."""
    correct = np.asarray(correct, dtype=float)
    n = len(correct)
    tokens = np.full(n, 100) if tokens is None else np.asarray(tokens)
    finish = ["stop"] * n if finish is None else list(finish)
    texts = [f"answer {i}" for i in range(n)] if texts is None else list(texts)
    doc_ids = list(range(n)) if doc_ids is None else list(doc_ids)
    params_hash = stable_hash({"adapter": variant, "params": {}})
    key = [MODEL, "fp32", 8, task, "1.0", variant, params_hash, repeat]
    cell = {
        "cell_hash": stable_hash(key),
        "params_hash": params_hash,
        "hardware_id": hardware_id,
        "suite": "synthetic",
        "model": MODEL,
        "dtype": "fp32",
        "device": "cpu",
        "batch_size": 8,
        "variant": variant,
        "adapter": "baseline",
        "params_json": "{}",
        "task": task,
        "task_version": "1.0",
        "limit": n,
        "repeat": repeat,
        "seed": 0,
        "status": status,
        "error": error,
        "n": n,
        "accuracy": float(correct.mean()) if n else None,
        "n_correct": float(correct.sum()),
        "output_tokens_mean": float(np.mean(tokens)) if n else None,
        "truncation_rate": float(np.mean([f == "length" for f in finish])) if n else None,
        "latency_p50_s": latency_s,
        "latency_p90_s": latency_s * 1.5,
        "ttft_p50_s": latency_s / 10,
        "energy_j": latency_s * 50,
        "energy_source": "codecarbon_estimate",
        "energy_per_token_j": latency_s * 50 / max(1.0, float(np.sum(tokens))),
        "peak_rss_bytes": 1_000_000_000,
    }
    samples = [
        {
            "model": MODEL,
            "variant": variant,
            "task": task,
            "doc_id": int(doc_ids[i]),
            "output_text": texts[i],
            "correct": float(correct[i]),
            "output_tokens": int(tokens[i]),
            "finish_reason": finish[i],
            "latency_s": latency_s,
            "batch_size": 8,
        }
        for i in range(n)
    ]
    return cell, samples


def write_run(root: Path, run_id: str, cells: list[tuple[dict, list[dict]]], suite_config: dict | None = None) -> Path:
    store = RunStore(root, run_id)
    store.write_run_json({"suite": "synthetic", "suite_hash": "h", "suite_config": suite_config or _suite_config()})
    for cell, samples in cells:
        store.write_cell(cell, samples)
    return store.run_dir


def gate(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["gate", *map(str, args)])
    return result.exit_code, result.output


def grades(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


@pytest.fixture
def base_run(tmp_path) -> Path:
    cells = [make_cell("baseline", grades(500, 0.6, 1)), make_cell("int8", grades(500, 0.6, 2))]
    return write_run(tmp_path / "base", "run-base", cells)


def test_run_against_itself_passes(base_run, tmp_path):
    code, out = gate(base_run, base_run, "--report", tmp_path / "r.md", "--json", tmp_path / "r.json")
    assert code == 0, out
    assert out.startswith("## Gate: PASS")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "pass" and data["matched_cells"] == 2
    acc = [c for c in data["checks"] if c["metric"] == "accuracy"]
    assert len(acc) == 2 and all(c["n"] == 500 and c["p_value"] == 1.0 for c in acc)
    assert (tmp_path / "r.md").read_text() == out.rstrip("\n") + "\n"
    assert "<details>" in out


def test_five_points_removed_fails_naming_the_cell(base_run, tmp_path):
    rng = np.random.default_rng(3)
    bad = grades(500, 0.6, 2)
    bad[rng.choice(np.flatnonzero(bad == 1), size=25, replace=False)] = 0.0
    cand = write_run(tmp_path / "cand", "run-cand", [make_cell("baseline", grades(500, 0.6, 1)), make_cell("int8", bad)])
    code, out = gate(base_run, cand, "--json", tmp_path / "r.json")
    assert code == 1, out
    assert out.startswith("## Gate: FAIL")
    failing = out.split("### Failing checks")[1].split("<details>")[0]
    assert "| gsm8k | int8 | accuracy |" in failing
    assert "-5.0 pt" in failing and "| 500 |" in failing
    assert "| gsm8k | baseline |" not in failing
    data = json.loads((tmp_path / "r.json").read_text())
    fails = [c for c in data["checks"] if c["status"] == "fail"]
    assert [(c["variant"], c["metric"]) for c in fails] == [("int8", "accuracy")]
    assert fails[0]["p_value"] < 1e-6 and fails[0]["delta"] == pytest.approx(-0.05)


def test_large_insignificant_drop_passes(tmp_path):
    base = np.array([1.0] * 24 + [0.0] * 16)
    cand = base.copy()
    cand[:3] = 0.0  # 3 net flips on n = 40: -7.5 points, p = 0.25
    b = write_run(tmp_path / "b", "b", [make_cell("int8", base)])
    c = write_run(tmp_path / "c", "c", [make_cell("int8", cand)])
    code, out = gate(b, c)
    assert code == 0, out
    assert "-7.5 pt" in out and "0.25" in out


def test_half_length_outputs_fail_the_length_band(tmp_path):
    correct = grades(200, 0.5, 4)
    b = write_run(tmp_path / "b", "b", [make_cell("int8", correct, tokens=np.full(200, 120))])
    c = write_run(tmp_path / "c", "c", [make_cell("int8", correct, tokens=np.full(200, 60))])
    code, out = gate(b, c, "--json", tmp_path / "r.json")
    assert code == 1, out
    fails = [c for c in json.loads((tmp_path / "r.json").read_text())["checks"] if c["status"] == "fail"]
    assert [(f["metric"], f["delta"]) for f in fails] == [("output_tokens_mean", 0.5)]
    assert "stops early" in out


def test_truncation_rise_fails(tmp_path):
    correct = grades(100, 0.5, 5)
    b = write_run(tmp_path / "b", "b", [make_cell("int8", correct, finish=["stop"] * 100)])
    c = write_run(tmp_path / "c", "c", [make_cell("int8", correct, finish=["length"] * 20 + ["stop"] * 80)])
    code, out = gate(b, c)
    assert code == 1 and "truncation_rate" in out.split("<details>")[0]


def test_length_changing_variant_is_exempt(tmp_path):
    correct = grades(200, 0.5, 4)
    cfg = _suite_config(length_changing=("short",))
    b = write_run(tmp_path / "b", "b", [make_cell("short", correct, tokens=np.full(200, 120))], cfg)
    c = write_run(tmp_path / "c", "c", [make_cell("short", correct, tokens=np.full(200, 60),
                                                  finish=["length"] * 200)], cfg)
    code, out = gate(b, c)
    assert code == 0, out
    assert "variant declared length_changing" in out
    # a suite file given on the command line wins over run.json
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(yaml.safe_dump(_suite_config()))
    code, out = gate(b, c, "--suite", suite_file)
    assert code == 1


def test_determinism_is_reported_never_failed(tmp_path):
    correct = grades(50, 0.5, 6)
    b = write_run(tmp_path / "b", "b", [make_cell("int8", correct)])
    texts = [f"answer {i}" if i % 5 else f"other {i}" for i in range(50)]
    c = write_run(tmp_path / "c", "c", [make_cell("int8", correct, texts=texts)])
    code, out = gate(b, c, "--json", tmp_path / "r.json")
    assert code == 0, out
    info = [c for c in json.loads((tmp_path / "r.json").read_text())["checks"] if c["metric"] == "output_changed"]
    assert info[0]["status"] == "info" and info[0]["candidate"] == pytest.approx(0.2)
    assert "10 of 50 greedy outputs differ" in info[0]["note"]
    assert "Determinism (greedy variants)" in out


def test_missing_candidate_cell_fails_unless_allowed(base_run, tmp_path):
    c = write_run(tmp_path / "c", "c", [make_cell("baseline", grades(500, 0.6, 1)),
                                        make_cell("int8", grades(100, 0.6, 2), task="math500")])
    code, out = gate(base_run, c)
    assert code == 1
    assert "Baseline cells missing from the candidate (failure)" in out
    assert "Candidate cells with no baseline" in out and "math500" in out
    code, out = gate(base_run, c, "--allow-missing")
    assert code == 0, out


def test_candidate_error_cell_fails(base_run, tmp_path):
    c = write_run(tmp_path / "c", "c", [make_cell("baseline", grades(500, 0.6, 1)),
                                        make_cell("int8", [], status="error", error="RuntimeError: boom")])
    code, out = gate(base_run, c)
    assert code == 1 and "candidate cell failed: RuntimeError: boom" in out


def test_subset_of_samples_is_paired_by_doc_id(base_run, tmp_path):
    full = grades(500, 0.6, 2)
    docs = np.arange(100, 300)
    c = write_run(tmp_path / "c", "c", [make_cell("baseline", grades(500, 0.6, 1)),
                                        make_cell("int8", full[docs], doc_ids=docs)])
    code, out = gate(base_run, c, "--allow-missing", "--json", tmp_path / "r.json")
    assert code == 0, out
    acc = [x for x in json.loads((tmp_path / "r.json").read_text())["checks"]
           if x["metric"] == "accuracy" and x["variant"] == "int8"][0]
    assert acc["n"] == 200 and acc["p_value"] == 1.0
    assert "300 baseline / 0 candidate samples unmatched" in acc["note"]


def _repeats(root: Path, run_id: str, latencies: list[float], hardware_id: str = "hw-a") -> Path:
    correct = grades(50, 0.5, 8)
    cells = [make_cell("int8", correct, repeat=r, latency_s=lat, hardware_id=hardware_id)
             for r, lat in enumerate(latencies)]
    return write_run(root, run_id, cells)


def test_cost_regression_with_repeats_on_same_hardware(tmp_path):
    b = _repeats(tmp_path / "b", "b", [1.00, 1.02, 0.98])
    slow = _repeats(tmp_path / "c", "c", [1.50, 1.52, 1.48])
    code, out = gate(b, slow, "--json", tmp_path / "r.json")
    assert code == 1, out
    data = json.loads((tmp_path / "r.json").read_text())
    fails = {c["metric"] for c in data["checks"] if c["status"] == "fail"}
    assert {"latency_p50_s", "latency_p90_s", "ttft_p50_s", "energy_per_token_j"} <= fails
    assert "peak_rss_bytes" not in fails
    # --no-cost: no cost check at all
    code, out = gate(b, slow, "--no-cost")
    assert code == 0 and "cost checks off" in out


def test_cost_tolerance_widens_with_spread(tmp_path):
    b = _repeats(tmp_path / "b", "b", [1.0, 1.3, 0.7])  # CV 30 %: tolerance 60 %
    c = _repeats(tmp_path / "c", "c", [1.2, 1.25, 1.15])
    code, out = gate(b, c)
    assert code == 0, out
    assert "max(10 %, 2×CV 30.0 %)" in out


def test_cost_not_comparable_across_hardware_or_without_repeats(tmp_path):
    b = _repeats(tmp_path / "b", "b", [1.0, 1.0, 1.0])
    other_host = _repeats(tmp_path / "c", "c", [3.0, 3.0, 3.0], hardware_id="hw-b")
    code, out = gate(b, other_host)
    assert code == 0, out
    assert "different or unknown hardware" in out
    one = _repeats(tmp_path / "one", "one", [3.0])
    code, out = gate(b, one)
    assert code == 0 and "needs ≥ 3 repeats per side (baseline 3, candidate 1)" in out


def test_gate_settings_from_run_json_and_cli(tmp_path):
    base = grades(500, 0.6, 2)
    bad = base.copy()
    bad[np.flatnonzero(bad == 1)[:25]] = 0.0
    loose = _suite_config(gate={"accuracy_tolerance": 0.10})
    b = write_run(tmp_path / "b", "b", [make_cell("int8", base)], loose)
    c = write_run(tmp_path / "c", "c", [make_cell("int8", bad)], loose)
    code, out = gate(b, c)
    assert code == 0, out
    assert "candidate run.json" in out and "accuracy tolerance 10.0 pt" in out
    code, out = gate(b, c, "--acc-tol", "0.01")
    assert code == 1
    code, out = gate(b, c, "--alpha", "1e-12")
    assert code == 0  # p = 6e-8 is not below 1e-12


def test_missing_run_is_unusable(base_run, tmp_path):
    code, out = gate(base_run, tmp_path / "nope", "--json", tmp_path / "r.json")
    assert code == 2
    assert "candidate run not found" in out
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "unusable"
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = gate(empty, base_run)
    assert code == 2 and "baseline: no run directory" in out


def test_schema_mismatch_is_unusable(base_run, tmp_path):
    cand = write_run(tmp_path / "c", "c", [make_cell("int8", grades(500, 0.6, 2))])
    path = next((cand / "cells").glob("*.parquet"))
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({"harness_schema_version": "2.0"}), path)
    code, out = gate(base_run, cand)
    assert code == 2
    assert "schema mismatch" in out and "2.0" in out


def test_no_overlapping_cells_is_unusable(base_run, tmp_path):
    c = write_run(tmp_path / "c", "c", [make_cell("int8", grades(10, 0.5, 1), task="math500")])
    code, out = gate(base_run, c)
    assert code == 2 and "no overlapping cells" in out


def test_invalid_gate_settings_are_unusable(base_run, tmp_path):
    code, out = gate(base_run, base_run, "--length-band", "1.2,1.3")
    assert code == 2 and "length_band" in out
    bad_suite = tmp_path / "s.yaml"
    bad_suite.write_text(yaml.safe_dump({**_suite_config(), "gate": {"alfa": 0.1}}))
    with pytest.raises(GateInputError, match="gate.alfa: unknown field"):
        run_gate(base_run, base_run, suite=bad_suite)


def test_latest_run_wins_when_a_side_holds_several(tmp_path):
    root = tmp_path / "results"
    write_run(root, "20250101T000000Z-a", [make_cell("int8", np.zeros(100))])
    write_run(root, "20250102T000000Z-b", [make_cell("int8", np.ones(100))])
    b = write_run(tmp_path / "b", "b", [make_cell("int8", np.ones(100))])
    result = run_gate(b, root)
    assert result.exit_code == 0
    assert any("latest run's kept" in n for n in result.notes)


def test_pareto_fronts_come_from_harness_results(base_run):
    result = run_gate(base_run, base_run)
    assert result.fronts is not None and result.fronts["axis"] == "energy_per_token_j"
    row = result.fronts["rows"][0]
    assert row["baseline"] == row["candidate"]
    assert "Pareto fronts" in result.markdown()


def test_suite_gate_section_and_hash():
    data = {"name": "s", "models": ["embedded"], "tasks": ["gsm8k"], "variants": [{"name": "b", "adapter": "baseline"}]}
    plain = Suite.model_validate(data)
    gated = Suite.model_validate({**data, "gate": {"alpha": 0.01, "cost_tolerance": {"latency_p50_s": 0.2}}})
    assert gated.gate.alpha == 0.01 and gated.gate.cost_tolerance.latency_p50_s == 0.2
    assert suite_hash(plain) == suite_hash(gated)  # gate settings never re-run cells
    assert "gate" in gated.canonical()
    with pytest.raises(ValueError):
        Suite.model_validate({**data, "gate": {"nope": 1}})


def test_reader_sees_what_the_tests_wrote(base_run):
    cells = read_cells(base_run)
    assert sorted(cells["variant"]) == ["baseline", "int8"]


def test_gate_imports_no_torch():
    """The gate reads results on any CI machine: no torch, no pynvml, no model code."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    code = (
        "import harness.gate, harness.gate.matching, harness.gate.stats, harness.gate.checks, "
        "harness.gate.report; import sys; "
        "bad = [m for m in ('torch', 'pynvml', 'transformers') if m in sys.modules]; "
        "assert not bad, f'harness.gate imported {bad}'"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _sampled_cell(variant: str, correct: np.ndarray, order=None) -> tuple[dict, list[dict]]:
    """A cell with ``correct.shape[1]`` samples per doc: rows keyed (doc_id, sample)."""
    docs, n_samples = correct.shape
    keys = [(d, s) for d in range(docs) for s in range(n_samples)]
    if order is not None:
        keys = [keys[i] for i in order]
    cell, rows = make_cell(variant, [correct[d, s] for d, s in keys], doc_ids=[d for d, _ in keys],
                           texts=[f"doc {d} sample {s}" for d, s in keys])
    for row, (_, s) in zip(rows, keys):
        row["sample"] = s
    return cell, rows


def test_samples_pair_on_doc_id_and_sample(tmp_path):
    from harness.gate.matching import load_side, match

    rng = np.random.default_rng(5)
    base, cand = (rng.random((20, 3)) < 0.5).astype(float), (rng.random((20, 3)) < 0.5).astype(float)
    b = write_run(tmp_path / "b", "b", [_sampled_cell("baseline", base)])
    c = write_run(tmp_path / "c", "c", [_sampled_cell("baseline", cand, order=rng.permutation(60))])
    pair = match(load_side(b, "baseline"), load_side(c, "candidate")).pairs[0]
    p = pair.paired
    assert len(p) == 60 and not pair.notes  # one row per (doc_id, sample), no cross product
    assert list(zip(p["doc_id"], p["sample"])) == [(d, s) for d in range(20) for s in range(3)]
    assert (p["output_text_b"] == p["output_text_c"]).all()  # the same sample on both sides
    assert p["correct_b"].tolist() == base.ravel().tolist() and p["correct_c"].tolist() == cand.ravel().tolist()


def test_rows_without_a_sample_column_are_sample_0(tmp_path):
    """A run written before schema 1.4 (no ``sample``) pairs with a sampled run's sample 0."""
    from harness.gate.matching import load_side, match
    from harness.results.schema import SCHEMA_VERSION_KEY

    old = write_run(tmp_path / "old", "old", [make_cell("baseline", [1, 0, 1, 1], texts=[f"doc {d} sample 0" for d in range(4)])])
    paths = list((old / "samples").glob("*.parquet"))
    assert paths
    for path in paths:
        table = pq.read_table(path).drop_columns(["sample"])
        pq.write_table(table.replace_schema_metadata({SCHEMA_VERSION_KEY: "1.3"}), path)
    new = write_run(tmp_path / "new", "new", [_sampled_cell("baseline", np.array([[1, 0], [0, 0], [1, 1], [1, 0]], float))])
    pair = match(load_side(old, "baseline"), load_side(new, "candidate")).pairs[0]
    assert pair.paired["sample"].tolist() == [0, 0, 0, 0]
    assert (pair.paired["output_text_b"] == pair.paired["output_text_c"]).all()
    assert pair.n_base_samples == 4 and pair.n_cand_samples == 8


def test_sampled_cells_are_not_greedy_for_the_determinism_report():
    """A cell that sampled (``temperature`` > 0, schema 1.4) never gets an "outputs changed"
    report: different draws are expected, not a sign of a changed technique."""
    import pandas as pd

    from harness.gate.checks import _is_greedy

    assert _is_greedy(pd.DataFrame({"params_json": ["{}"], "temperature": [0.0]}))
    assert _is_greedy(pd.DataFrame({"params_json": ["{}"]}))  # files before 1.4
    assert not _is_greedy(pd.DataFrame({"params_json": ["{}"], "temperature": [0.7]}))


def _busy_repeats(root: Path, run_id: str, latencies: list[float], busy: list[bool], correct=None) -> Path:
    correct = grades(50, 0.5, 8) if correct is None else correct
    cells = []
    for r, (lat, flag) in enumerate(zip(latencies, busy)):
        cell, samples = make_cell("int8", correct, repeat=r, latency_s=lat)
        cell.update(flag_interference=flag, other_cpu_share=0.4 if flag else 0.01)
        cells.append((cell, samples))
    return write_run(root, run_id, cells)


@pytest.mark.parametrize("busy_side", ["candidate", "baseline"])
def test_costs_of_cells_measured_on_a_busy_machine_are_not_compared(tmp_path, busy_side):
    """A 50 % slower candidate fails on a quiet machine; with other load flagged on either side
    (flag_interference) its costs are not comparable, while its accuracy is still compared."""
    quiet = [False] * 3
    one_busy = [False, True, False]
    b = _busy_repeats(tmp_path / "b", "b", [1.0, 1.02, 0.98], one_busy if busy_side == "baseline" else quiet)
    c = _busy_repeats(tmp_path / "c", "c", [1.5, 1.52, 1.48], one_busy if busy_side == "candidate" else quiet)
    code, out = gate(b, c, "--json", tmp_path / "r.json")
    assert code == 0, out
    checks = json.loads((tmp_path / "r.json").read_text())["checks"]
    costs = [x for x in checks if x["metric"] in ("latency_p50_s", "latency_p90_s", "ttft_p50_s", "energy_per_token_j")]
    assert costs and all(x["status"] == "not_comparable" for x in costs)
    assert all(f"flag_interference: 1 {busy_side} cell" in x["note"] for x in costs)
    assert [x["status"] for x in checks if x["metric"] == "accuracy"] == ["pass"]
    # the same figures on a quiet machine: the slowdown fails
    qc = _busy_repeats(tmp_path / "qc", "qc", [1.5, 1.52, 1.48], quiet)
    qb = _busy_repeats(tmp_path / "qb", "qb", [1.0, 1.02, 0.98], quiet)
    assert gate(qb, qc)[0] == 1


def test_busy_machine_still_fails_an_accuracy_drop(tmp_path):
    base = grades(200, 0.8, 3)
    worse = base.copy()
    worse[:60] = 0.0
    b = _busy_repeats(tmp_path / "b", "b", [1.0, 1.0, 1.0], [True] * 3, base)
    c = _busy_repeats(tmp_path / "c", "c", [1.0, 1.0, 1.0], [True] * 3, worse)
    code, out = gate(b, c, "--json", tmp_path / "r.json")
    assert code == 1, out
    checks = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert [x["status"] for x in checks if x["metric"] == "accuracy"] == ["fail"]
    assert all(x["status"] == "not_comparable" for x in checks if x["metric"] == "latency_p50_s")
