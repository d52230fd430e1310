"""A served variant is the evaluated one: same prompt transform (system prompt, prefill), same
decode policy; variants that calibrate are prepared on a task or refused (tiny models, no download)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.adapters import ADAPTERS
from harness.adapters.think_budget import SYSTEM_PROMPTS, BudgetPolicy
from harness.kinds.agents.runner import serve_variant
from harness.serve import backend as backend_mod
from harness.serve.backend import NonBlankPolicy, VariantBackend, suite_backends
from harness.serve.protocol import ChatRequest
from harness.testing import TinyBase, tiny_model, tiny_tokenizer

TOOLS = [{"type": "function", "function": {"name": "get_order", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]
NO_THINK_BLOCK = "<think>\n\n</think>\n\n"


class ThinkBase(TinyBase):
    """A tiny model whose tokenizer has ``<think>`` / ``</think>`` as single tokens (think-token format)."""

    def __init__(self, seed: int = 0):
        self.tokenizer = tiny_tokenizer()
        self.tokenizer.add_tokens(["<think>", "</think>"])
        self.model = tiny_model(seed, vocab_size=len(self.tokenizer))
        self.canonical_id, self.dtype, self.device, self.chat_template_hash = f"test:think@{seed}", "fp32", "cpu", None


def _capture_decodes(monkeypatch):
    """Record what the decode loop receives from a backend (prompt ids, policy); answer "ok"."""
    from types import SimpleNamespace

    seen = []

    def fake_generate(model, tokenizer, prompts, settings, policy):
        seen.append(SimpleNamespace(ids=list(prompts[0]), policy=policy, settings=settings))
        return [SimpleNamespace(text="ok", output_tokens=2, ttft_s=0.0, finish_reason="stop")]

    monkeypatch.setattr(backend_mod, "generate", fake_generate)
    return seen


def _evaluated_ids(variant, messages):
    """What the evaluated variant's decode loop reads: lm-eval's prompt through the variant's
    ``apply_chat_template``, tokenized as ``GenerationVariant._generate_until`` does."""
    text = variant.apply_chat_template(messages)
    return text, variant.tokenizer(text, add_special_tokens=False)["input_ids"]


SERVE = {"from_variant": VariantBackend.from_variant, "agent serve_variant": serve_variant}


@pytest.mark.parametrize("entry", sorted(SERVE))
@pytest.mark.parametrize(
    "params, with_system",
    [
        ({"mode": "no_thinking"}, False),
        ({"mode": "high", "max_answer_tokens": 12, "answer_cue": " A{"}, False),
        ({"mode": "high", "max_answer_tokens": 12, "answer_cue": " A{"}, True),
        ({"max_reasoning_tokens": 8, "max_answer_tokens": 12, "answer_cue": " A{"}, True),
    ],
)
def test_served_think_budget_prompt_and_policy_equal_the_evaluated_ones(monkeypatch, entry, params, with_system):
    base = ThinkBase(seed=5)
    variant = ADAPTERS.get("think_budget")(params).wrap(base, batch_size=1, max_new_tokens=24)
    messages = ([{"role": "system", "content": "You are terse."}] if with_system else []) + [
        {"role": "user", "content": "What is 2+3?"}
    ]
    text, ids = _evaluated_ids(variant, messages)
    mode = params.get("mode")
    if mode == "high":
        assert text.startswith(f"[system]{SYSTEM_PROMPTS['high']}") and ("You are terse." in text) == with_system
    if mode == "no_thinking":
        assert text.endswith("[assistant]" + NO_THINK_BLOCK)
    seen = _capture_decodes(monkeypatch)
    reply = SERVE[entry](variant).complete(ChatRequest(model="v", messages=messages, max_tokens=20))
    [decode] = seen
    assert decode.ids == ids  # the same prompt, system prompt and prefill included
    assert reply.prompt_tokens == len(ids)
    assert isinstance(decode.policy, NonBlankPolicy) and isinstance(decode.policy.inner, BudgetPolicy)
    assert decode.policy.inner.plan == variant.policy_factory().plan  # the same budget forcing


def test_served_transform_composes_with_tools_and_the_call_prefill(monkeypatch):
    """Tools (fallback format) join the variant's system prompt; a forced call's prefill follows
    the NoThinking block; truncation counts the transform's tokens."""
    base = ThinkBase(seed=5)
    high = VariantBackend.from_variant(
        ADAPTERS.get("think_budget")({"mode": "high", "max_answer_tokens": 12, "answer_cue": " A{"}).wrap(base, max_new_tokens=24)
    )
    seen = _capture_decodes(monkeypatch)
    high.complete(ChatRequest(model="v", messages=[{"role": "user", "content": "where is #W1?"}], tools=TOOLS))
    text = base.tokenizer.decode(seen[-1].ids)
    assert text.startswith(f"[system]{SYSTEM_PROMPTS['high']}\n\n# Tools") and text.count("[system]") == 1
    nothink = VariantBackend.from_variant(ADAPTERS.get("think_budget")({"mode": "no_thinking"}).wrap(base, max_new_tokens=24))
    choice = {"type": "function", "function": {"name": "get_order"}}
    nothink.complete(ChatRequest(model="v", messages=[{"role": "user", "content": "go"}], tools=TOOLS, tool_choice=choice))
    text = base.tokenizer.decode(seen[-1].ids)
    assert text.endswith("[assistant]" + NO_THINK_BLOCK + '<tool_call>\n{"name": "get_order", "arguments": {"order_id": "')


def test_suite_backends_serve_modes_as_evaluated_and_refuse_uncalibrated_ones(monkeypatch):
    from harness import models
    from harness.serve.backend import CalibrationNeeded
    from harness.config.suite import load, resolve_path

    loaded = []
    monkeypatch.setattr(models, "load", lambda ref, dtype, device: loaded.append(ref) or TinyBase())
    suite = load(resolve_path("reasoning-full"))
    backends = suite_backends(suite, ["no-thinking", "effort-high"], max_tokens=64)
    for name, mode in (("no-thinking", "no_thinking"), ("effort-high", "high")):
        wrapped = ADAPTERS.get("think_budget")({"mode": mode, "max_answer_tokens": 24}).wrap(TinyBase(), max_new_tokens=64)
        assert backends[name].prompt_transform == wrapped.prompt_transform
        assert backends[name].policy_factory().plan == wrapped.policy_factory().plan
    assert backends["effort-high"].prompt_transform.system_prompt == SYSTEM_PROMPTS["high"]
    loaded.clear()
    with pytest.raises(CalibrationNeeded, match=r"variant 'effort-medium' needs --calibration-task TASK.*'medium'"):
        suite_backends(suite, ["baseline", "effort-medium"])
    assert loaded == []  # refused before any model loads
    with pytest.raises(CalibrationNeeded, match="cannot be served unprepared"):
        VariantBackend.from_adapter(TinyBase(), "think_budget", {"mode": "low"})


def test_suite_backends_calibrate_on_the_calibration_task(monkeypatch, data_dir):
    from harness import models
    from harness.config.suite import load, resolve_path

    monkeypatch.setattr(models, "load", lambda ref, dtype, device: TinyBase(seed=9))
    suite = load(resolve_path("reasoning-full"))
    backends = suite_backends(suite, ["effort-medium", "effort-low"], max_tokens=48, calibration_task="gsm8k")
    records = {name: json.loads(b.preparation["calibration_json"]) for name, b in backends.items()}
    medium, low = records["effort-medium"], records["effort-low"]
    assert (medium["task"], medium["slice"], medium["max_new_tokens"]) == ("gsm8k", "docs[1315:1319]", 48)
    assert low["reused"] and low["mean_reasoning_tokens"] == medium["mean_reasoning_tokens"]  # one High calibration
    for name, record in records.items():
        assert backends[name].policy_factory().plan.reasoning_budget == record["reasoning_budget"]
        assert backends[name].prompt_transform.system_prompt == SYSTEM_PROMPTS[record["mode"]]
    with pytest.raises(ValueError, match="not a generation task"):
        suite_backends(suite, ["effort-medium"], calibration_task="sst2")


def _agents_suite(tmp_path: Path, variant: str, user: str = "{model: embedded, adapter: baseline}") -> Path:
    path = tmp_path / "agents-budget.yaml"
    path.write_text(
        "name: agents-budget\nagents:\n  models: [embedded]\n  domains:\n    mock: {task_ids: [create_task_1]}\n"
        f"  defaults: {{trials: 1, max_steps: 4, max_tokens: 96}}\n  user: {user}\n  variants:\n"
        f"    - {{name: baseline, adapter: baseline}}\n    - {variant}\n"
    )
    return path


def test_agent_cells_refuse_variants_that_need_calibration_at_validation(tmp_path):
    from harness.config.suite import SuiteError, load

    with pytest.raises(SuiteError, match=r"agents\.variants\[1\]\.params: think_budget mode 'medium'.*no task to calibrate on"):
        load(_agents_suite(tmp_path, "{name: medium, adapter: think_budget, params: {mode: medium, max_answer_tokens: 24}}"))
    with pytest.raises(SuiteError, match=r"agents\.user\.params: think_budget mode 'low'"):
        load(_agents_suite(tmp_path, "{name: nt, adapter: think_budget, params: {mode: no_thinking}}",
                           user="{model: embedded, adapter: think_budget, params: {mode: low}}"))
    # modes that need no calibration are fine (served with their system prompt / prefill)
    suite = load(_agents_suite(tmp_path, "{name: high, adapter: think_budget, params: {mode: high, max_answer_tokens: 24}}"))
    assert [v.name for v in suite.section("agents").variants] == ["baseline", "high"]


def test_a_variant_with_its_own_prompt_code_but_no_transform_is_not_served():
    """A future variant that builds prompts in its own apply_chat_template must expose them as a
    prompt_transform: serving it with the bare template would measure another technique."""
    from harness.generation import DecodePolicy
    from harness.variant import GenerationVariant

    class Shouting(GenerationVariant):
        def apply_chat_template(self, chat_history, add_generation_prompt=True):
            return super().apply_chat_template(chat_history, add_generation_prompt).upper()

    base = TinyBase()
    args = (base.model, base.tokenizer, DecodePolicy, 1, 8, 0, "tiny")
    with pytest.raises(TypeError, match="Shouting overrides apply_chat_template without a prompt_transform"):
        VariantBackend.from_variant(Shouting(*args))
    assert VariantBackend.from_variant(GenerationVariant(*args)).prompt_transform is None  # the bare template
