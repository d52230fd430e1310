"""Every shipped suite keeps its ``suite_hash`` and its cells' hashes (resume and results depend on
them): ``tests/fixtures/pinned/suite_hashes.json`` was recorded before the sampling fields existed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import suite as S

REPO = Path(__file__).resolve().parents[1]
PINNED = json.loads((REPO / "tests" / "fixtures" / "pinned" / "suite_hashes.json").read_text())
SUITES = sorted(p.stem for p in (REPO / "suites").glob("*.yaml"))


def test_every_shipped_suite_is_pinned():
    assert sorted(PINNED) == SUITES


@pytest.mark.parametrize("name", SUITES)
def test_suite_and_cell_hashes_are_unchanged(name, data_dir):
    if name.startswith("agentic"):
        pytest.importorskip("tau2")
    suite = S.load(REPO / "suites" / f"{name}.yaml")
    pinned = PINNED[name]
    assert S.suite_hash(suite) == pinned["suite_hash"]
    assert S.suite_hash(suite, limit=2) == pinned["suite_hash_limit_2"]
    for limit in (None, 2):
        assert [c.cell_hash for c in S.expand(suite, limit=limit)] == pinned["cells"][str(limit)], f"limit {limit}"
