"""The compiled decode step (issue 17, §1): ``torch.compile`` over a static KV cache, on a tiny
model (CI compiles nothing larger). Greedy tokens equal the eager loop and ``model.generate``
at batch 1 and 8 with ragged caps, logits agree within float tolerance, the warm-up compiles
every shape the measured call uses (0 recompiles after it), forward hooks still act under
compile, and a policy that replaces the forward runs eager and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance

from harness.adapters import ADAPTERS
from harness.compiled_step import CompiledStep, StaticBatch, bucket, graphs_compiled
from harness.config import suite as S
from harness.generation import DecodePolicy, GenerationSettings, generate
from harness.kinds.eval.runner import _compile_columns, _graphs_compiled
from harness.testing import TinyBase

TEXTS = ["abc", "hello there friend", "x y", "long prompt here ok", "q", "ab ab ab", "zz top", "m n o p"]
CAPS = [12, 5, 9, 3, 12, 7, 1, 10]


class Recording(DecodePolicy):
    """Greedy, keeping each step's logits (the forward is the model's own: compiled path)."""

    def __init__(self):
        self.seen: list[torch.Tensor] = []

    def choose(self, rows, logits):
        self.seen.append(logits.clone())
        return super().choose(rows, logits)


@pytest.fixture(scope="module")
def tiny():
    base = TinyBase(seed=2)
    prompts = [base.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    step = CompiledStep(base.model)
    step.plan([len(p) for p in prompts], max(CAPS))
    step.precompile(base.tokenizer, [1, 8])
    return base, prompts, step


def test_buckets_are_powers_of_two_from_256():
    assert [bucket(n) for n in (1, 256, 257, 1000, 5000)] == [256, 256, 512, 1024, 8192]


def test_static_batch_masks_whole_cache_and_advances_positions():
    batch = StaticBatch(cache=None, length=8)
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    kwargs = batch.prefill_kwargs(mask)
    assert kwargs["attention_mask"].shape == (2, 8) and kwargs["cache_position"].tolist() == [0, 1, 2]
    step = batch.step_kwargs()
    assert step["attention_mask"][:, :4].tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    assert step["position_ids"].tolist() == [[2], [3]] and step["cache_position"].tolist() == [3]
    assert batch.step_kwargs()["position_ids"].tolist() == [[3], [4]]
    with pytest.raises(ValueError, match="full"):
        for _ in range(8):
            batch.step_kwargs()


@pytest.mark.parametrize("batch_size", [1, 8])
def test_compiled_greedy_equals_eager_and_generate_with_ragged_caps(tiny, batch_size):
    base, prompts, step = tiny
    chosen = prompts if batch_size == 8 else prompts[:3]
    caps = CAPS[: len(chosen)]
    settings = GenerationSettings(max(caps), eos_token_ids=[])
    eager_policy, compiled_policy = Recording(), Recording()
    eager = generate(base.model, base.tokenizer, chosen, settings, eager_policy, max_new_tokens=caps,
                     batch_size=batch_size)
    before, step_before = graphs_compiled(), step.compiled_steps
    compiled = generate(base.model, base.tokenizer, chosen, settings, compiled_policy, max_new_tokens=caps,
                        batch_size=batch_size, compiled=step)
    assert graphs_compiled() == before, "the warm-up compiled every shape: no recompile here"
    assert step.compiled_steps > step_before
    assert [r.token_ids for r in compiled] == [r.token_ids for r in eager]
    assert [len(r.token_ids) for r in compiled] == caps  # no EOS ids: each row runs to its own cap
    if batch_size == 1:  # same rows, same order at batch 1: the logits of every step agree
        for a, b in zip(eager_policy.seen, compiled_policy.seen):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for prompt, result, cap in zip(chosen, compiled, caps):  # and model.generate, row by row
        ids = torch.tensor([prompt])
        reference = base.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=cap,
                                        do_sample=False, eos_token_id=None, pad_token_id=0)
        assert result.token_ids == reference[0, len(prompt):].tolist()


def test_a_policy_that_replaces_the_forward_runs_eager_and_says_so(tiny):
    base, prompts, step = tiny

    class OwnForward(DecodePolicy):
        def forward(self, model, **inputs):
            return model(**inputs)

    settings = GenerationSettings(6, eos_token_ids=[])
    step.reset_counts()
    out = generate(base.model, base.tokenizer, prompts[:2], settings, OwnForward(), compiled=step)
    eager = generate(base.model, base.tokenizer, prompts[:2], settings)
    assert [r.token_ids for r in out] == [r.token_ids for r in eager]
    assert step.compiled_steps == 0 and step.eager_steps > 0


def test_forward_hooks_act_under_compile():
    base = TinyBase(seed=5, layers=2)
    prompt = [base.tokenizer("hello there", add_special_tokens=False)["input_ids"]]
    settings = GenerationSettings(8, eos_token_ids=[])
    plain = generate(base.model, base.tokenizer, prompt, settings)
    handle = base.model.model.layers[0].register_forward_hook(lambda m, args, out: (out[0] * -3.0,) + tuple(out[1:])
                                                              if isinstance(out, tuple) else out * -3.0)
    try:
        hooked = generate(base.model, base.tokenizer, prompt, settings)
        step = CompiledStep(base.model)
        step.plan([len(prompt[0])], 8)
        compiled = generate(base.model, base.tokenizer, prompt, settings, compiled=step)
    finally:
        handle.remove()
    assert hooked[0].token_ids != plain[0].token_ids, "the hook must change the output for this test to mean anything"
    assert compiled[0].token_ids == hooked[0].token_ids and step.compiled_steps > 0


def test_variant_warmup_compiles_every_shape_of_the_cell(tiny):
    base, prompts, _ = tiny
    variant = ADAPTERS.get("baseline")({}).wrap(base, batch_size=8, max_new_tokens=6)
    variant.compiled = CompiledStep(variant.model)
    texts = TEXTS[:3] * 3  # 9 requests at batch 8: batches of 8 and 1
    variant.warmup([], 2, measured=texts, requests=len(texts))  # a suite with warmup: 0 still compiles
    assert variant.compiled.compiled_steps == 0  # the warm-up's steps are not the cell's
    before = _graphs_compiled()
    requests = [Instance("generate_until", doc={}, arguments=(t, {"until": [], "max_gen_toks": 6}), idx=0,
                         metadata=("t", i, 1)) for i, t in enumerate(texts)]
    outputs = variant.generate_until(requests)
    columns = _compile_columns(variant, before)
    assert len(outputs) == 9 and columns["compile"] is True
    assert columns["compile_recompiles"] == 0 and columns["compiled_steps_share"] == 1.0
    assert _compile_columns(ADAPTERS.get("baseline")({}).wrap(base), before)["compile"] is False


def test_compile_setting_is_part_of_the_variant_identity_only_when_set():
    def cells(compile_value):
        variant = {"name": "b", "adapter": "baseline"}
        if compile_value is not None:
            variant["compile"] = compile_value
        suite = S.parse({"name": "x", "models": ["embedded"], "tasks": ["gsm8k"], "variants": [variant]})
        return S.suite_hash(suite), S.expand(suite)[0]

    (h_unset, unset), (h_off, off), (h_on, on) = cells(None), cells(False), cells(True)
    assert len({unset.cell_hash, off.cell_hash, on.cell_hash}) == 3
    assert len({unset.params_hash, off.params_hash, on.params_hash}) == 3
    assert h_unset != h_on


def test_inductor_cache_goes_under_the_harness_cache_unless_the_user_chose_one(monkeypatch, tmp_path):
    from torch._inductor.runtime.runtime_utils import default_cache_dir

    from harness.compiled_step import use_disk_cache

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what inductor sets on first use
    assert use_disk_cache() == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_disk_cache() == str(tmp_path / "mine")


def test_a_technique_with_its_own_forward_compiles_nothing_in_the_warm_up():
    base = TinyBase(seed=7, layers=2)
    variant = ADAPTERS.get("early_exit")({"tau": 0.5, "min_layers": 1}).wrap(base, max_new_tokens=6)
    variant.compiled = CompiledStep(variant.model)
    before = graphs_compiled()
    variant.warmup([], 2, measured=["abc"], requests=1)
    assert graphs_compiled() == before and variant.compiled.cache_len == 0


def test_agents_sections_refuse_the_compile_setting(monkeypatch):
    import yaml

    from harness.config.errors import SuiteError

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    data = yaml.safe_load((root / "suites" / "agentic.yaml").read_text())
    S.parse(data, "agentic.yaml")  # as shipped: valid
    data["agents"]["variants"][0]["compile"] = True
    with pytest.raises(SuiteError, match="compile: the compiled decode step is for evaluation"):
        S.parse(data, "agentic.yaml")
