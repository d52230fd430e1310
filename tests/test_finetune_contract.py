"""Every registered fine-tuning adapter through one battery, on a tiny random BERT (no download).

Each case trains a few steps on a learnable synthetic task and checks: the cost columns are
reported, trainable counts are consistent with the stored adapter state, the technique changed
the model's outputs, and the shared pretrained encoder is untouched.
"""

from __future__ import annotations

import math

import pytest
import torch

from harness.finetune import FINETUNE_ADAPTERS, FitContext, TrainSettings
from harness.finetune.measure import count_params, serialize_state, time_switch
from harness.finetune.testing import SyntheticData, tiny_encoder_base
from harness.core.registry import UnknownNameError

# Every registered fine-tuning adapter with params that exercise it on the tiny model.
CONTRACT_CASES = {
    "full_ft": {},
    "bitfit": {},
    "lora": {"r": 2},
    "rslora": {"r": 2},
    "dora": {"r": 2},
    "sparse_update": {"blocks": 1},
    "shira": {"r": 2},
    "poly": {"r": 2, "n_skills": 2, "co_tasks": ["rte"]},
    "mhr": {"r": 2, "n_skills": 2, "n_splits": 2, "co_tasks": ["rte"]},
    "sorted_depth": {"depths": [2, 4]},
    "meft": {"bottleneck": 4},
    "peft_search": {"ranks": [1, 2], "module_sets": ["qv", "qkv"], "n_trials": 3, "min_steps": 2, "holdout_docs": 16},
}
STEPS = 6


def test_every_registered_finetune_adapter_has_a_contract_case():
    assert sorted(CONTRACT_CASES) == FINETUNE_ADAPTERS.names()


def fit_tiny(name: str, params: dict, steps: int = STEPS, seed: int = 0, lr: float = 1e-2, base=None):
    """Train ``name`` on the synthetic task; returns (fit result, context, base)."""
    base = base or tiny_encoder_base(seed=1)
    adapter = FINETUNE_ADAPTERS.get(name)(params)
    n_tasks = len(adapter.tasks("sst2"))
    data = SyntheticData(n_tasks=n_tasks, holdout=16)
    settings = TrainSettings(steps=steps, batch_size=8, learning_rate=lr, warmup_ratio=0.0, eval_batch_size=16)
    ctx = FitContext(build=base.build, task=data.tasks[0], data=data, settings=settings, seed=seed)
    return adapter.fit(ctx), ctx, base


@pytest.mark.parametrize("name", sorted(CONTRACT_CASES))
def test_contract_train_report_counts_and_base_untouched(name):
    base = tiny_encoder_base(seed=1)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    cls = FINETUNE_ADAPTERS.get(name)
    assert cls.name == name and cls.paper and cls.arxiv, "every fine-tuning adapter cites its paper"
    fit, ctx, _ = fit_tiny(name, CONTRACT_CASES[name], base=base)

    # reported columns
    expected_steps = FINETUNE_ADAPTERS.get(name)(CONTRACT_CASES[name]).total_steps() if name == "peft_search" else STEPS
    assert fit.steps == expected_steps
    assert fit.final_train_loss is not None and math.isfinite(fit.final_train_loss)
    assert fit.saved_activation_bytes and fit.saved_activation_bytes > 0
    assert set(fit.counters) <= set(cls.counters)

    # trainable counts: consistent with the stored per-task state
    trainable, total = count_params(fit.model)
    assert 0 < trainable <= total
    state = fit.adapter.adapter_state(fit.model)
    assert sum(v.numel() for v in state.values() if v.is_floating_point()) == trainable
    blob = serialize_state(state)
    batch = next(ctx.data.stream(1, 8, seed=5))
    fit.model.eval()
    with torch.no_grad():
        out = fit.adapter.predict(fit.model, batch)
        assert out[""].shape == (8, ctx.task.num_labels)
        assert time_switch(blob, lambda s: fit.adapter.load_adapter_state(fit.model, s)) > 0
        again = fit.adapter.predict(fit.model, batch)[""]
    assert torch.equal(out[""], again), "loading the model's own stored state changed its outputs"

    # the technique trained something: outputs differ from the untrained model with the same head
    untrained_adapter = FINETUNE_ADAPTERS.get(name)(CONTRACT_CASES[name])
    if name == "peft_search":
        untrained_adapter = fit.adapter
    fresh = untrained_adapter.prepare(base.build(untrained_adapter.num_labels(ctx), 0), ctx)
    fresh.eval()
    with torch.no_grad():
        assert not torch.allclose(untrained_adapter.predict(fresh, batch)[""], out[""])

    # the shared pretrained encoder is untouched
    after = base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), f"{name} mutated the shared encoder"


def test_unknown_finetune_adapter_suggests_close_names():
    with pytest.raises(UnknownNameError) as info:
        FINETUNE_ADAPTERS.get("lorra")
    assert "did you mean 'lora'" in str(info.value)


def test_params_reject_unknown_keys():
    with pytest.raises(Exception, match="extra"):
        FINETUNE_ADAPTERS.get("lora")({"rank": 3})
