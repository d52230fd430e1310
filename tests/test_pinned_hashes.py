"""Every shipped suite keeps the suite hash and cell hashes recorded before the house refactor
(``tests/fixtures/pinned/suite_hashes.json``): a results root written before a change resumes
with nothing to run. A change that must alter a cell's meaning bumps ``CELL_FORMAT`` and
re-records the fixture, saying why."""

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
