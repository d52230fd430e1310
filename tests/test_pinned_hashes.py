"""Every shipped suite keeps the suite hash and cell hashes recorded before the house refactor
(``tests/fixtures/pinned/suite_hashes.json``): a results root written before a change resumes
with nothing to run. A change that must alter a cell's meaning bumps ``CELL_FORMAT`` (or the
task's ``version``, which is part of its cells' identity) and re-records the fixture, saying why.
Re-recorded for issue 16 (graders: gsm8k 1.0 → 1.1, math500 1.0 → 1.1): every cell of smoke,
reasoning, reasoning-full and reasoning-gpu changed; no suite hash changed.
Re-recorded for issue 18 (adapters wave 2): reasoning-full and reasoning-gpu gained variants (their
suite hashes changed, every earlier cell hash is kept), reasoning-checkpoints is new."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import suite as S

ROOT = Path(__file__).resolve().parents[1]
PINNED = json.loads((ROOT / "tests/fixtures/pinned/suite_hashes.json").read_text())


@pytest.mark.parametrize("name", sorted(PINNED))
def test_suite_and_cell_hashes_are_pinned(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    suite = S.load(ROOT / "suites" / f"{name}.yaml")
    pinned = PINNED[name]
    assert S.suite_hash(suite) == pinned["suite_hash"]
    assert S.suite_hash(suite, 2) == pinned["suite_hash_limit_2"]
    for limit in (None, 2):
        assert [c.cell_hash for c in S.expand(suite, limit=limit)] == pinned["cells"][str(limit)], limit


def test_every_shipped_suite_is_pinned():
    assert sorted(p.stem for p in (ROOT / "suites").glob("*.yaml")) == sorted(PINNED)


def test_a_results_root_written_before_the_refactor_resumes_with_nothing_to_run(tmp_path, monkeypatch, data_dir):
    """The committed smoke baseline is a complete run of today's smoke suite: resuming it runs 0
    cells and loads no model. (Re-recorded with the grader versions of issue 16: gsm8k 1.1,
    math500 1.1; the suite hash is unchanged, the six cell hashes changed with task_version.)"""
    import shutil

    from rich.console import Console

    from harness import models
    from harness.results import RunStore
    from harness.runner import run_suite

    src = next((ROOT / "results/baselines/smoke").iterdir())
    shutil.copytree(src, tmp_path / "runs" / src.name)
    store = RunStore(tmp_path, src.name)
    suite = S.load(ROOT / "suites/smoke.yaml")
    assert {c.cell_hash for c in S.expand(suite)} <= store.completed_cells()
    assert store.read_run_json()["suite_hash"] == S.suite_hash(suite)
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a model was loaded on a complete resume"))
    report = run_suite(ROOT / "suites/smoke.yaml", tmp_path, console=Console(record=True))
    assert (report.run_id, report.total, report.skipped, report.ran) == (src.name, 6, 6, 0)
