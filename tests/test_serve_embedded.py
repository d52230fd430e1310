"""The embedded model (SmolLM2-135M-Instruct) served through the OpenAI-compatible API (slow)."""

from __future__ import annotations

import json
import threading

import openai
import pytest

from harness.serve.app import create_app
from harness.serve.backend import VariantBackend
from harness.serve.protocol import RequestLog
from harness.serve.server import ServerThread

pytestmark = pytest.mark.slow

TOOLS = [
    {"type": "function", "function": {
        "name": "get_order_details", "description": "Get the status and items of an order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "description": "e.g. #W123"}},
                       "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "cancel_order", "description": "Cancel a pending order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"},
                                                         "reason": {"anyOf": [{"$ref": "#/$defs/R"}, {"type": "null"}]}},
                       "required": ["order_id"], "$defs": {"R": {"type": "string", "enum": ["no longer needed", "ordered by mistake"]}}}}},
]
AGENT_SYSTEM = "You are a customer service agent for an online shop. Use the tools to look up orders."


@pytest.fixture(scope="module")
def served(embedded):
    log = RequestLog()
    backends = {
        "baseline": VariantBackend(embedded.model, embedded.tokenizer, max_tokens=16),
        "short-context": VariantBackend(embedded.model, embedded.tokenizer, max_tokens=8, max_prompt_tokens=256),
    }
    with ServerThread(create_app(backends, log=log)) as server:
        yield openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0), log


def test_embedded_template_has_no_tool_support(embedded):
    assert not VariantBackend(embedded.model, embedded.tokenizer).native


def test_tool_call_round_trip_from_an_assistant_first_conversation(served):
    client, log = served
    messages = [
        {"role": "system", "content": AGENT_SYSTEM},
        {"role": "assistant", "content": "Hi! How can I help you today?"},
        {"role": "user", "content": "Where is my order #W123?"},
    ]
    out = client.chat.completions.create(model="baseline", messages=messages, tools=TOOLS, tool_choice="required",
                                         temperature=0, max_tokens=24)
    choice = out.choices[0]
    [call] = choice.message.tool_calls
    assert choice.finish_reason == "tool_calls" and call.function.name in {"get_order_details", "cancel_order"}
    assert isinstance(json.loads(call.function.arguments), dict)
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"order_id": "#W123", "status": "delivered"})}]
    out = client.chat.completions.create(model="baseline", messages=messages, tools=TOOLS, temperature=0)
    message = out.choices[0].message
    assert (message.content and message.content.strip()) or message.tool_calls  # never an empty message
    assert out.usage.prompt_tokens > 200 and out.usage.completion_tokens >= 1
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    record = log.records("baseline")[-1]
    assert record.prompt_tokens == out.usage.prompt_tokens and record.ttft_s is not None and record.status == 200


def test_role_swapped_user_simulator_conversation(served):
    client, _ = served
    # τ²'s user simulator: the agent's turns arrive as "user", the simulated customer is "assistant".
    messages = [
        {"role": "system", "content": "You are a customer. Your order #W123 has not arrived; ask the agent about it."},
        {"role": "user", "content": "Hi! How can I help you today?"},
    ]
    out = client.chat.completions.create(model="baseline", messages=messages, temperature=0)
    assert out.choices[0].message.content.strip() and not out.choices[0].message.tool_calls
    assert out.choices[0].finish_reason in ("stop", "length")


def test_concurrent_requests_give_the_sequential_greedy_outputs(served):
    client, _ = served
    questions = ["Name a colour.", "Say hello to Bob."]

    def ask(q):
        return client.chat.completions.create(model="baseline", messages=[{"role": "user", "content": q}],
                                              max_tokens=8, temperature=0).choices[0].message.content

    sequential = [ask(q) for q in questions]
    parallel: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: parallel.__setitem__(i, ask(questions[i]))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [parallel[0], parallel[1]] == sequential


def test_over_long_conversation_is_truncated_and_counted(served):
    client, log = served
    messages = [{"role": "system", "content": "You are helpful."}]
    for i in range(12):
        messages += [{"role": "user", "content": f"Tell me fact number {i} about the sea, please."},
                     {"role": "assistant", "content": f"Fact {i}: the sea is large and full of salt water."}]
    messages.append({"role": "user", "content": "Thanks! One more?"})
    out = client.chat.completions.create(model="short-context", messages=messages, temperature=0)
    assert out.model_extra["truncated_turns"] > 0 and out.usage.prompt_tokens <= 256
    assert log.records("short-context")[-1].truncated_turns == out.model_extra["truncated_turns"]


def test_served_effort_mode_reads_and_answers_as_evaluated(embedded):
    """think_budget's High mode served: the decode loop reads the evaluated prompt (its system
    prompt included) and the reply is the evaluated greedy decode under the same budget forcing."""
    from harness.adapters import ADAPTERS
    from harness.generation import GenerationSettings, eos_ids, generate

    variant = ADAPTERS.get("think_budget")({"mode": "high", "max_answer_tokens": 16}).wrap(embedded, max_new_tokens=32)
    messages = [{"role": "user", "content": "What is 2 + 3? Put the answer in \\boxed{}."}]
    text = variant.apply_chat_template(messages)  # what lm-eval hands the evaluated variant
    assert "Reasoning effort: high." in text
    ids = embedded.tokenizer(text, add_special_tokens=False)["input_ids"]
    settings = GenerationSettings(32, eos_token_ids=eos_ids(embedded.model, embedded.tokenizer))
    evaluated = generate(embedded.model, embedded.tokenizer, [ids], settings, variant.policy_factory())[0]
    with ServerThread(create_app({"effort-high": VariantBackend.from_variant(variant)}, log=RequestLog())) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        out = client.chat.completions.create(model="effort-high", messages=messages, max_tokens=32, temperature=0)
    assert out.usage.prompt_tokens == len(ids)
    assert out.choices[0].message.content == evaluated.text.strip()
    assert out.usage.completion_tokens == evaluated.output_tokens


def test_streamed_reply_equals_the_non_streamed_one(served):
    """SmolLM2's byte-level BPE streamed token by token (incremental detokenization, stop strings
    held back): the joined deltas are the non-streamed content, usage and finish reason equal,
    and the required call arrives as stream-form tool calls."""
    client, log = served
    for extra in ({}, {"stop": [" the", "."]}, {"temperature": 0.8, "seed": 3}):
        messages = [{"role": "user", "content": "Explain in two sentences why the sky is blue."}]
        plain = client.chat.completions.create(model="baseline", messages=messages, max_tokens=16, **extra)
        chunks = list(client.chat.completions.create(model="baseline", messages=messages, max_tokens=16, stream=True,
                                                     stream_options={"include_usage": True}, **extra))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() == plain.choices[0].message.content and "\ufffd" not in text
        assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
        assert chunks[-2].choices[0].finish_reason == plain.choices[0].finish_reason
        assert log.records("baseline")[-1].stream
    with client.chat.completions.stream(model="baseline", messages=[{"role": "user", "content": "Where is #W123?"}],
                                        tools=TOOLS, tool_choice="required", max_tokens=24, temperature=0) as stream:
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls" and isinstance(json.loads(call.function.arguments), dict)
