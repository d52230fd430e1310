"""Synthetic results for the dashboard's tests and benchmark (made-up numbers, never a real run).

Everything is written through :class:`harness.results.RunStore`, so the files are exactly what a
run writes; only the numbers are invented. :func:`cell` builds a cell row from a few chosen
figures (accuracy from ``n_correct``/``n``, costs as given), :func:`samples` builds that many
sample rows with ``n_correct`` of them correct.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import RunStore, wilson_interval

__all__ = ["cell", "samples", "write_run", "write_large"]

HARDWARE_ID = "synthetic-hw-0001"
MODEL = "synthetic:tiny-model"


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell(
    run_id: str,
    *,
    variant: str,
    task: str = "gsm8k",
    adapter: str | None = None,
    params: Mapping[str, Any] | None = None,
    n: int = 10,
    n_correct: int = 5,
    model: str = MODEL,
    suite: str = "synth",
    hardware_id: str = HARDWARE_ID,
    batch_size: int = 8,
    repeat: int = 0,
    energy_per_token_j: float | None = 0.5,
    latency_p50_s: float | None = 1.0,
    output_tokens_mean: float | None = 100.0,
    energy_source: str = "codecarbon_estimate",
    status: str = "ok",
    error: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A cell row with consistent derived figures (``extra`` keys override, e.g. ``counter_x``)."""
    params = dict(params or {})
    adapter = adapter or variant
    low, high = wilson_interval(n_correct, n) if n else (None, None)
    tokens_total = int(round((output_tokens_mean or 0.0) * n))
    energy_j = None if energy_per_token_j is None else energy_per_token_j * tokens_total
    row: dict[str, Any] = {
        "run_id": run_id,
        "cell_hash": _hash(run_id, model, variant, adapter, params, task, batch_size, hardware_id, repeat),
        "params_hash": _hash(adapter, params),
        "hardware_id": hardware_id,
        "suite": suite,
        "model": model,
        "dtype": "fp32",
        "device": "cpu",
        "batch_size": batch_size,
        "variant": variant,
        "adapter": adapter,
        "params_json": json.dumps(params, sort_keys=True, separators=(",", ":")),
        "task": task,
        "task_version": "1.0",
        "limit": n,
        "repeat": repeat,
        "seed": 0,
        "status": status,
        "error": error,
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
    }
    if status == "ok":
        row |= {
            "n": n,
            "accuracy": n_correct / n if n else None,
            "accuracy_ci95_low": low,
            "accuracy_ci95_high": high,
            "n_correct": float(n_correct),
            "output_tokens_mean": output_tokens_mean,
            "output_tokens_total": tokens_total,
            "input_tokens_mean": 100.0,
            "truncation_rate": 0.1,
            "latency_p50_s": latency_p50_s,
            "latency_p90_s": None if latency_p50_s is None else 1.5 * latency_p50_s,
            "latency_p99_s": None if latency_p50_s is None else 1.8 * latency_p50_s,
            "ttft_p50_s": None if latency_p50_s is None else 0.1 * latency_p50_s,
            "tpot_p50_s": 0.01,
            "throughput_tok_per_s": 50.0,
            "generation_time_s": 10.0,
            "tokens_per_correct": tokens_total / n_correct if n_correct else None,
            "param_bytes": 500_000_000,
            "compression_ratio": 1.0,
            "duration_s": 12.0,
            "energy_j": energy_j,
            "energy_source": energy_source if energy_j is not None else "unavailable",
            "energy_estimated": energy_source == "codecarbon_estimate" if energy_j is not None else None,
            "energy_attributed": False,
            "peak_rss_bytes": 1_000_000_000,
            "peak_rss_source": "vmhwm_window",
            "energy_per_token_j": energy_per_token_j,
            "energy_per_correct_j": energy_j / n_correct if energy_j is not None and n_correct else None,
        }
    row |= extra
    return row


def samples(cell_row: Mapping[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """``n`` sample rows for ``cell_row``: the first ``n_correct`` correct, one in ten truncated."""
    n = int(cell_row.get("n") or 0)
    n_correct = int(cell_row.get("n_correct") or 0)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ok = i < n_correct
        tokens = int(rng.integers(20, 256))
        latency = float(0.02 * tokens + rng.random())
        ttft = float(0.1 + 0.1 * rng.random())
        truncated = i % 10 == 9
        rows.append(
            {
                "model": cell_row.get("model"),
                "variant": cell_row.get("variant"),
                "task": cell_row.get("task"),
                "doc_id": i,
                "prompt_hash": _hash("prompt", i),
                "prompt_text": f"Question {i}: what is {i} + {i}?",
                "output_text": f"Let me think. {i} + {i} = {2 * i if ok else 2 * i + 1}. \\boxed{{{2 * i if ok else 2 * i + 1}}}",
                "extracted_answer": str(2 * i if ok else 2 * i + 1),
                "reference": str(2 * i),
                "correct": 1.0 if ok else 0.0,
                "grade_reason": "match" if ok else "mismatch",
                "input_tokens": 40,
                "output_tokens": 256 if truncated else tokens,
                "finish_reason": "length" if truncated else "stop",
                "latency_s": latency + ttft,
                "ttft_s": ttft,
                "tpot_s": latency / max(tokens - 1, 1),
                "itl_s": None,
                "batch_size": cell_row.get("batch_size"),
                "counters_json": "{}",
            }
        )
    return rows


def write_run(
    root: Path | str,
    run_id: str,
    cells: Sequence[Mapping[str, Any]],
    *,
    suite: str = "synth",
    with_samples: bool = True,
) -> RunStore:
    """Write ``run.json`` and every cell (with its samples) of one run under ``root``."""
    store = RunStore(root, run_id)
    store.write_run_json(
        {
            "suite": suite,
            "suite_hash": _hash(run_id, suite),
            "started_at": "2026-01-01T00:00:00+00:00",
            "hardware_id": HARDWARE_ID,
            "provenance": {"cpu_model": "Synthetic CPU", "cpu_logical_cores": 2, "gpus": []},
        }
    )
    for i, row in enumerate(cells):
        row = dict(row)
        row.setdefault("run_id", run_id)
        store.write_cell(row, samples(row, seed=i) if with_samples else [])
    return store


def write_large(
    root: Path | str,
    n_cells: int = 1000,
    samples_per_cell: int = 1000,
    n_runs: int = 10,
    seed: int = 0,
) -> None:
    """A large synthetic results root (for the benchmark): ``n_cells`` cells over ``n_runs`` runs,
    each with ``samples_per_cell`` samples (the sample tables are built column-wise for speed and
    written through :meth:`RunStore.write_cell`'s validation of one small row first)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.results.index import write_cells_index
    from harness.results.schema import SAMPLE_SCHEMA, SCHEMA_VERSION, SCHEMA_VERSION_KEY

    rng = np.random.default_rng(seed)
    tasks = ["gsm8k", "math500", "task_c", "task_d"]
    adapters = ["baseline", "think_budget", "int8", "early_exit", "spec_decode"]
    per_run = max(1, n_cells // n_runs)
    made = 0
    metadata = {SCHEMA_VERSION_KEY.encode(): SCHEMA_VERSION.encode()}
    for r in range(n_runs):
        run_id = f"2026010{1 + r // 10}T00{r % 10}000Z-synth-{r:04x}"
        store = RunStore(root, run_id)
        store.write_run_json({"suite": "synth", "suite_hash": _hash(r), "hardware_id": HARDWARE_ID})
        for j in range(per_run if r < n_runs - 1 else n_cells - made):
            task = tasks[j % len(tasks)]
            v = j // len(tasks)
            adapter = adapters[v % len(adapters)]
            n = samples_per_cell
            n_correct = int(rng.integers(0, n + 1))
            row = cell(
                run_id,
                variant=f"{adapter}-{v}",
                adapter=adapter,
                params={"k": v},
                task=task,
                n=n,
                n_correct=n_correct,
                energy_per_token_j=float(rng.uniform(0.05, 2.0)),
                latency_p50_s=float(rng.uniform(0.5, 30.0)),
                output_tokens_mean=float(rng.uniform(50, 400)),
                counter_reasoning_tokens_mean=float(rng.uniform(0, 200)),
            )
            store.write_cell(row, [])  # the cell row is validated and written by the store
            tokens = rng.integers(10, 512, n)
            cols = {
                "run_id": pa.array([run_id] * n),
                "cell_hash": pa.array([row["cell_hash"]] * n),
                "model": pa.array([row["model"]] * n),
                "variant": pa.array([row["variant"]] * n),
                "task": pa.array([task] * n),
                "doc_id": pa.array(np.arange(n, dtype=np.int64)),
                "prompt_text": pa.array([f"Question {i}" for i in range(n)]),
                "output_text": pa.array([f"Answer \\boxed{{{i}}}" for i in range(n)]),
                "extracted_answer": pa.array([str(i) for i in range(n)]),
                "reference": pa.array([str(i) for i in range(n)]),
                "correct": pa.array((np.arange(n) < n_correct).astype(np.float64)),
                "input_tokens": pa.array(np.full(n, 80, dtype=np.int64)),
                "output_tokens": pa.array(tokens.astype(np.int64)),
                "finish_reason": pa.array(np.where(tokens >= 500, "length", "stop")),
                "latency_s": pa.array(tokens * 0.02),
                "ttft_s": pa.array(np.full(n, 0.1)),
                "batch_size": pa.array(np.full(n, 8, dtype=np.int64)),
            }
            arrays = [
                cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in SAMPLE_SCHEMA
            ]
            table = pa.Table.from_arrays(arrays, schema=SAMPLE_SCHEMA).replace_schema_metadata(metadata)
            pq.write_table(table, store.samples_path(row["cell_hash"]))
            made += 1
        write_cells_index(store.run_dir)  # as the runner does when a run finishes
