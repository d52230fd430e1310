"""Impossible figures are written as an error, never as figures (issue 16, item 9)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.core import sanity
from harness.core.cell import KINDS, Cell, CellKind, CellOutcome
from harness.core.rows import cell_metrics, sample_row
from harness.executors.base import CellDone, CellGroup, Machine, RunOptions
from harness.executors.worker import run_group
from harness.telemetry import Telemetry

ROWS: dict[str, tuple[dict, list[dict]]] = {}  # task -> (cell row overrides, sample row overrides)


class Base:
    model = None
    canonical_id = "scripted:figures@1"
    load_time_s = 0.0


class ScriptedKind(CellKind):
    """Returns the figures a test scripted for the cell's task (two samples of 10 tokens each)."""

    section = "scripted"

    def load_base(self, ref, dtype, device):
        return Base()

    def run(self, cell, base, telemetry, on_progress=None, files=None):
        cell_over, sample_over = ROWS[cell.task]
        figures = {"output_tokens": 10, "finish_reason": "stop", "latency_s": 0.5, "ttft_s": 0.1,
                   "tpot_s": 0.4 / 9, "itl_s": [0.4 / 9] * 9, **sample_over}
        samples = [sample_row(cell, i, "p", output_text="x", correct=1.0, **figures) for i in range(2)]
        return CellOutcome(cell_row={**cell_metrics(samples, 1.0), "energy_j": 3.0, **cell_over},
                           sample_rows=samples)


def _cell(task: str) -> Cell:
    return Cell(suite="s", model_ref="m", model_id="scripted:m", variant=type("V", (), {"name": "v", "adapter": "a",
                "dtype": "fp32"})(), params={}, task=task, task_version="1", limit=2, batch_size=1, max_new_tokens=8,
                seed=0, repeat=0, device="cpu", kind="scripted", identity_extra={"task": task})


@pytest.fixture
def kind():
    KINDS.register("scripted")(ScriptedKind)
    ROWS.clear()
    yield
    KINDS.unregister("scripted")


CASES = {
    "plausible": ({}, {}),
    "too-fast": ({"throughput_tok_per_s": 2.5e9}, {}),
    "negative-throughput": ({"throughput_tok_per_s": -3.0}, {}),
    "negative-latency": ({"latency_p50_s": -0.2}, {}),
    "negative-energy": ({"energy_j": -40.0, "energy_per_token_j": -2.0}, {}),
    "nan-duration": ({"duration_s": math.nan}, {}),
    "sample-negative-ttft": ({}, {"ttft_s": -0.01}),
    "sample-negative-itl": ({}, {"itl_s": np.array([0.1, -0.05])}),
    "sample-negative-energy": ({}, {"energy_j": -1.0}),
}


def test_impossible_figures_make_an_error_cell_with_the_reason(kind):
    ROWS.update(CASES)
    cells = [_cell(task) for task in CASES]
    events = []
    tel = Telemetry("cpu", sample_period_s=None)
    try:
        run_group(CellGroup("scripted", "m", "fp32", cells), RunOptions("cpu", "run"), events.append, tel,
                  Machine({}, "hw", "cpu"))
    finally:
        tel.close()
    done = {e.row["task"]: e for e in events if isinstance(e, CellDone)}
    assert done["plausible"].row["status"] == "ok" and done["plausible"].row["throughput_tok_per_s"] == 20.0
    expected = {
        "too-fast": "throughput_tok_per_s = 2.5e+09 > 1e+07 tok/s",
        "negative-throughput": "throughput_tok_per_s = -3 < 0",
        "negative-latency": "latency_p50_s = -0.2 < 0",
        "negative-energy": "energy_j = -40 < 0",
        "nan-duration": "duration_s = nan is not finite",
        "sample-negative-ttft": "sample doc 0/0: ttft_s = -0.01 < 0",
        "sample-negative-itl": "sample doc 0/0: itl_s[1] = -0.05 < 0",
        "sample-negative-energy": "sample doc 0/0: energy_j = -1 < 0",
    }
    for task, reason in expected.items():
        row = done[task].row
        assert row["status"] == "error", task
        assert "ImplausibleFigures" in row["error"] and reason in row["error"], row["error"]
        assert "throughput_tok_per_s" not in row and "latency_p50_s" not in row  # no figure stored
        assert done[task].sample_rows == []


def test_checks_cover_durations_and_energies_but_not_counters():
    assert sanity.problems({"warmup_time_s": -1.0, "train_energy_j": -1.0, "counter_gap_s": -1.0,
                            "accuracy": -0.5, "idle_power_w": None, "flag_short_window": True}) == [
        "warmup_time_s = -1 < 0", "train_energy_j = -1 < 0"]
    assert sanity.problems({"throughput_tok_per_s": 1e7, "latency_p99_s": 0.0, "energy_j": None}) == []
    assert sanity.problems({"throughput_tok_per_s": math.inf}) == ["throughput_tok_per_s = inf is not finite"]
    with pytest.raises(sanity.ImplausibleFigures, match=r"\(\+1 more\)"):
        sanity.check({f"t{i}_s": -1.0 for i in range(6)})
