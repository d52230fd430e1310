"""The warm-up decodes at the cell's batch size (issue 16, item 12): the measured window must not
pay for the first batched kernels."""

from __future__ import annotations

import pytest

import harness.variant as variant_mod
from harness.adapters import ADAPTERS
from harness.kinds.eval.runner import _warm_up, warmup_requests
from harness.testing import TinyBase


class Spec:
    def prompt(self, doc):
        return doc["q"]


DOCS = [{"q": "one"}, {"q": "two plus"}, {"q": "three"}]


@pytest.fixture(scope="module")
def base():
    return TinyBase(seed=3, layers=2)


@pytest.fixture
def batches(monkeypatch):
    """(prompts, batch slots) of each call of the decode loop (slots: its ``batch_size``, all the
    prompts when none is given)."""
    seen: list[tuple[int, int]] = []
    real = variant_mod.generate

    def spy(model, tokenizer, prompts, *args, **kwargs):
        seen.append((len(prompts), min(len(prompts), kwargs.get("batch_size") or len(prompts))))
        return real(model, tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(variant_mod, "generate", spy)
    return seen


@pytest.mark.parametrize("asked, batch_size, decoded", [(1, 4, [4]), (5, 4, [4, 4]), (4, 4, [4]), (2, 1, [1, 1])])
def test_warm_up_runs_whole_batches_at_the_cells_batch_size(base, batches, asked, batch_size, decoded):
    variant = ADAPTERS.get("baseline")({}).wrap(base, batch_size=batch_size, max_new_tokens=16)
    n, seconds = _warm_up(variant, Spec(), DOCS, asked, max_new_tokens=16)
    # one continuous batch of batch_size slots over whole batches' worth of prompts
    assert batches == [(sum(decoded), batch_size)] and n == sum(decoded) and seconds > 0


def test_a_batch_1_technique_warms_up_at_batch_1(base, batches):
    variant = ADAPTERS.get("speculative")({"draft": "prompt_lookup"}).wrap(base, batch_size=4, max_new_tokens=16)
    assert variant.batch_size == 1
    n, _ = _warm_up(variant, Spec(), DOCS, 2, max_new_tokens=16)
    assert batches == [(1, 1), (1, 1)] and n == 2  # a per-batch policy: one static batch per call


def test_warmup_requests_rounds_up_to_whole_batches():
    assert [warmup_requests(n, 8) for n in (0, 1, 8, 9)] == [0, 8, 8, 16]
    assert warmup_requests(3, 1) == 3
