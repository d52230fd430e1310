"""Run progress (issue 19, item 1): log lines when output is not a terminal (start/end per cell
with n, elapsed, tokens/s and the run's ETA; a heartbeat at most every 30 s), bars in a terminal
that advance per decode step, and a run ETA from the first cell on."""

from __future__ import annotations

import io
import re

import pytest
import yaml
from rich.console import Console

from harness.executors.base import CellDone, CellProgress, CellStarted
from harness.executors.progress import HEARTBEAT_S, ProgressView, eta_s


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _log_view(total: int = 2):
    out = io.StringIO()
    clock = FakeClock()
    console = Console(file=out, force_terminal=False, width=80)
    return ProgressView(total, console, clock=clock), clock, out


def test_eta_is_the_rate_so_far():
    assert eta_s(10.0, 0.5, 2) == pytest.approx(30.0)
    assert eta_s(10.0, 0, 2) is None and eta_s(10.0, 1, 0) is None


def test_log_lines_start_end_and_a_heartbeat_at_most_every_30_s():
    view, clock, out = _log_view(total=2)
    with view:
        view.handle(CellStarted("a", "baseline · gsm8k", 8))
        for step in range(1, 121):  # a progress event every second for two minutes
            clock.t += 1.0
            view.handle(CellProgress("a", step / 15, 8))
        view.handle(CellDone("a", "baseline · gsm8k", {"status": "ok", "n": 8, "throughput_tok_per_s": 45.12}))
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] baseline · gsm8k: started (8 samples); run ETA ?"
    beats = [line for line in lines if line.startswith("    … ")]
    assert len(beats) == 120 // int(HEARTBEAT_S)  # one per 30 s, not one per event
    # after 30 s with 2 of 8 samples done (a quarter of the first of two cells): 30 × (2 − 0.25) / 0.25
    assert beats[0] == "    … 2/8 done, 0:30 in this cell; run ETA 3:30"
    assert lines[-1] == "[1/2] baseline · gsm8k: ok, n=8, 45.1 tok/s, 2:00; run ETA 2:00"


def test_error_cells_end_with_error_and_the_last_cell_with_eta_zero():
    view, clock, out = _log_view(total=1)
    with view:
        view.handle(CellStarted("a", "int8 · math500", None))
        clock.t += 5
        view.handle(CellDone("a", "int8 · math500", {"status": "error", "error": "boom"}))
    text = out.getvalue()
    assert "[1/1] int8 · math500: started; run ETA ?" in text
    assert "cell int8 · math500 failed: boom" in text
    assert text.splitlines()[-1] == "[1/1] int8 · math500: error, 0:05; run ETA 0:00"


def test_terminal_bars_show_the_run_eta_from_the_first_cell_on():
    out = io.StringIO()
    clock = FakeClock()
    console = Console(file=out, force_terminal=True, width=120)
    view = ProgressView(4, console, clock=clock)
    with view:
        view.handle(CellStarted("a", "baseline · gsm8k", 8))
        clock.t += 20
        view.handle(CellProgress("a", 2.5, 8))  # a batch part-way through its decode
        progress = view._progress
        overall = progress.tasks[0]
        cell_bar = progress.tasks[1]
        assert overall.completed == pytest.approx(2.5 / 8) and cell_bar.completed == pytest.approx(2.5)
        eta = progress.columns[-1].render(overall).plain
        # 20 s for 0.3125 of 4 cells: 20 × (4 − 0.3125) / 0.3125 = 236 s
        assert eta == "ETA 3:56"
        assert view.eta() == "3:56"


def test_generation_variant_reports_progress_within_a_batch():
    """At batch 4 with one batch, progress arrives per decode step (fractions), not 0 → N."""
    from harness.adapters.baseline import Baseline
    from harness.testing import TinyBase

    base = TinyBase()
    variant = Baseline().wrap(base, batch_size=4, max_new_tokens=12)
    variant.progress_interval_s = 0.0
    seen: list[float] = []
    variant.on_progress = seen.append

    class Req:
        def __init__(self, i):
            self.args = (f"question {i}: ", {"until": ["\n\n\n"], "max_gen_toks": 12})
            self.task_name, self.doc_id, self.idx = "t", i, 0

    variant.generate_until([Req(i) for i in range(4)])
    inside = [x for x in seen if 0 < x < 4]
    assert len(inside) >= 5 and seen[-1] == 4
    assert seen == sorted(seen)
    assert any(x != int(x) for x in inside)


def test_smoke_run_logs_a_line_per_cell_start_and_end_when_not_a_terminal(tmp_path, monkeypatch, data_dir):
    """The smoke suite with a tiny random-weight model patched in, console to a non-terminal."""
    from harness import models
    from harness.core import refs
    from harness.runner import run_suite
    from harness.testing import TinyBase

    tiny = TinyBase()
    monkeypatch.setattr(refs, "resolve", lambda ref: models.ModelRef("test", tiny.canonical_id, "tiny"))
    monkeypatch.setattr(
        models, "load",
        lambda ref, dtype="fp32", device="cpu": models.BaseModel(tiny.model, tiny.tokenizer, tiny.canonical_id, dtype, device),
    )
    suite = yaml.safe_load((refs_repo() / "suites" / "smoke.yaml").read_text())
    for variant in suite["variants"]:  # the character tokenizer spells the default answer cue in 23 tokens
        if variant["adapter"] == "think_budget":
            variant["params"]["answer_cue"] = " A{"
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    assert not console.is_terminal
    report = run_suite(path, tmp_path / "results", console=console)
    assert report.ran == 6 and report.failed == 0
    lines = out.getvalue().splitlines()
    starts = [line for line in lines if re.match(r"\[\d/6\] .+: started \(2 samples\); run ETA ", line)]
    ends = [line for line in lines if re.match(r"\[\d/6\] .+: ok, n=2, [\d.]+ tok/s, \d+:\d\d; run ETA \d+:\d\d$", line)]
    assert len(starts) == 6 and len(ends) == 6, "\n".join(lines)
    assert starts[0].endswith("run ETA ?") and all(not s.endswith("?") for s in starts[1:])
    assert ends[-1].startswith("[6/6]") and ends[-1].endswith("run ETA 0:00")
    assert not any("\x1b[" in line for line in lines)  # no terminal control codes in a log


def refs_repo():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
