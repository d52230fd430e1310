"""What a chat request may ask of the server (issue 16 §3): every field that changes the output
is honoured (``stop``, ``top_p``, ``seed``, ``max_completion_tokens``, ``n = 1``) or refused with a
400 naming it, unknown fields are refused as OpenAI's API refuses them, what τ²-bench sends
through LiteLLM is accepted; and a reply's TTFT is its first generated token's."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import openai
import pytest

from harness.serve import backend as backend_mod
from harness.serve.app import create_app
from harness.serve.backend import VariantBackend
from harness.serve.protocol import ChatReply, ChatRequest, RequestLog
from harness.serve.server import ServerThread
from harness.testing import tiny_model, tiny_tokenizer

TOOLS = [{"type": "function", "function": {"name": "get_order", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}]
HI = [{"role": "user", "content": "hello"}]


class Echo:
    def __init__(self):
        self.requests: list[ChatRequest] = []

    def complete(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        return ChatReply("echo", prompt_tokens=2, completion_tokens=1, ttft_s=0.001)


@pytest.fixture(scope="module")
def echo_served():
    backend, log = Echo(), RequestLog()
    with ServerThread(create_app({"echo": backend}, log=log)) as server:
        yield openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0), backend, log


@pytest.fixture(scope="module")
def tiny_served():
    backend, log = VariantBackend(tiny_model(seed=3), tiny_tokenizer(), max_tokens=24), RequestLog()
    with ServerThread(create_app({"tiny": backend}, log=log)) as server:
        yield openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0), backend, log


# -- item 16: unknown and unsupported fields ----------------------------------------------------
@pytest.mark.parametrize(
    "extra, param, fragment",
    [
        ({"max_tokns": 5}, "max_tokns", "did you mean 'max_tokens'"),
        ({"temprature": 0}, "temprature", "did you mean 'temperature'"),
        ({"whatever": 1}, "whatever", "unrecognized request argument supplied: whatever"),
        ({"drop_params": True}, "drop_params", "unrecognized"),  # LiteLLM's own option, never on the wire
        ({"logprobs": True}, "logprobs", "accepted: false"),
        ({"top_logprobs": 3}, "top_logprobs", "not supported"),
        ({"response_format": {"type": "json_object"}}, "response_format", "json_object"),
        ({"presence_penalty": 0.5}, "presence_penalty", "presence_penalty=0.5"),
        ({"frequency_penalty": -1}, "frequency_penalty", "frequency_penalty=-1"),
        ({"logit_bias": {"15": 5}}, "logit_bias", "logit_bias"),
        ({"functions": [{"name": "f"}]}, "functions", "would change the output"),
        ({"reasoning_effort": "low"}, "reasoning_effort", "would change the output"),
        ({"modalities": ["text", "audio"]}, "modalities", "modalities"),
        ({"top_p": 0}, "top_p", "top_p must be in (0, 1]"),
        ({"top_p": 1.5}, "top_p", "top_p must be in (0, 1]"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"stop": 7}, "stop", "stop must be"),
        ({"stop": [""]}, "stop", "stop must be"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed when stream is true"),
        ({"stream": True, "stream_options": {"include_usgae": True}}, "stream_options.include_usgae", "unrecognized"),
    ],
)
def test_fields_that_would_change_the_output_or_are_unknown_are_400(echo_served, extra, param, fragment):
    client, backend, log = echo_served
    before = len(backend.requests)
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body={"model": "echo", "messages": HI, **extra}, cast_to=object)
    error = info.value.body
    assert error["param"] == param and param.split(".")[-1] in error["message"] and fragment in error["message"]
    assert len(backend.requests) == before  # refused before the backend ran
    assert log.records("echo")[-1].status == 400


@pytest.mark.parametrize(
    "neutral, refused",
    [
        ({"logprobs": False, "top_logprobs": 0}, {"logprobs": True}),
        ({"presence_penalty": 0, "frequency_penalty": 0.0, "logit_bias": {}}, {"presence_penalty": 0.1}),
        ({"response_format": {"type": "text"}, "modalities": ["text"]}, {"response_format": {"type": "json_schema"}}),
        ({"parallel_tool_calls": False, "n": 1, "stream": False}, {"parallel_tool_calls": "no"}),
        ({"user": "u-1", "metadata": {"k": "v"}, "store": False, "service_tier": "auto"}, {"usr": "u-1"}),
        ({"stop": None, "top_p": None, "seed": None, "logprobs": None, "functions": None}, {"function_call": "auto"}),
    ],
)
def test_fields_are_accepted_only_at_values_that_change_nothing(echo_served, neutral, refused):
    """OpenAI's defaults (and fields with no effect on the output) are accepted; the same
    fields at another value, or a misspelt one, are a 400 naming them."""
    client, _, _ = echo_served
    out = client.post("/chat/completions", body={"model": "echo", "messages": HI, **neutral}, cast_to=object)
    assert out["choices"][0]["message"]["content"] == "echo"
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body={"model": "echo", "messages": HI, **neutral, **refused}, cast_to=object)
    assert info.value.body["param"] == next(iter(refused))


def test_what_litellm_sends_for_tau2_is_accepted_and_nothing_more(echo_served):
    """The bodies LiteLLM 1.x built for τ²-bench's agent and user simulator in
    ``tests/test_agents_tau2.py`` (captured on the wire): exactly these fields, with τ²'s
    message shapes (an assistant tool call carrying an extra ``name``, ``content: null``), are
    served; one made-up field more is refused."""
    client, backend, _ = echo_served
    messages = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "create a task"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "name": "get_order", "type": "function",
                                                                "function": {"name": "get_order", "arguments": "{}"}}]},
        {"role": "tool", "content": "{}", "tool_call_id": "call_1"},
    ]
    agent = {"model": "echo", "messages": messages, "temperature": 0.0, "max_tokens": 32, "seed": 626729,
             "tools": TOOLS, "tool_choice": "auto"}
    user = {"model": "echo", "messages": messages[:2], "temperature": 0.0, "max_tokens": 32, "seed": 626729}
    for body in (agent, user):
        assert client.post("/chat/completions", body=body, cast_to=object)["choices"][0]["message"]["content"] == "echo"
    assert backend.requests[-2].seed == 626729 and backend.requests[-2].tool_choice == "auto"
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body={**agent, "num_retries": 2}, cast_to=object)
    assert info.value.body["param"] == "num_retries"


def _ask(client, **kw):
    return client.chat.completions.create(model="tiny", messages=HI, **kw).choices[0]


def test_stop_ends_the_content_before_the_first_stop_string(tiny_served):
    client, _, _ = tiny_served
    full = _ask(client, temperature=1.0, seed=5).message.content
    assert len(full) >= 12
    for stop in ([full[6:8]], full[3:5], [full[9:12], full[4:6]], ["never-written", full[7]]):
        stops = [stop] if isinstance(stop, str) else stop
        cut = min(full.find(s) for s in stops if s in full)
        choice = _ask(client, temperature=1.0, seed=5, stop=stop)
        assert choice.message.content == full[:cut].strip() and choice.finish_reason == "stop", (stop, full)


def test_top_p_restricts_sampling_to_the_nucleus(tiny_served):
    client, _, _ = tiny_served
    greedy = _ask(client, temperature=0).message.content
    sampled = _ask(client, temperature=1.0, seed=5).message.content
    assert sampled != greedy
    # a nucleus this small holds only the most likely token: sampling in it is greedy decoding
    assert _ask(client, temperature=1.0, seed=5, top_p=1e-9).message.content == greedy
    assert _ask(client, temperature=1.0, seed=5, top_p=0.5).message.content == _ask(client, temperature=1.0, seed=5,
                                                                                      top_p=0.5).message.content


# -- item 15: the TTFT of a forced tool call ----------------------------------------------------
def _scripted(monkeypatch, backend, outputs):
    """Backend decodes return ``outputs`` (text, ttft_s) in turn; the clock advances 0.5 s per read."""
    seen = []

    def fake(prompt_ids, cap, request, stops, on_token=None):
        text, ttft = outputs[len(seen)]
        seen.append(cap)
        text = text[:cap]
        return SimpleNamespace(text=text, output_tokens=len(text), ttft_s=ttft if text else None, finish_reason="stop")

    clock = itertools.count(100.0, 0.5)
    monkeypatch.setattr(backend_mod, "monotonic_s", lambda: next(clock))
    monkeypatch.setattr(backend, "_decode", fake)
    return seen


@pytest.mark.parametrize(
    "choice, outputs, max_tokens, ttft",
    [
        ("required", [('get_order"', 0.05), ('1"}}', 0.03)], 40, 0.05),  # name, then arguments: the name's
        ("required", [("get_order_" + "z" * 30, 0.05)], 24, 0.05),  # the whole cap on the name: no second decode
        ("required", [('get_ord"', 0.07), ('"}}', 0.01)], 40, 0.07),
        ({"type": "function", "function": {"name": "get_order"}}, [('1"}}', 0.04)], 40, 0.04),
        ("auto", [("   ", 0.02), ('get_order"', 0.06), ('1"}}', 0.01)], 40, 0.02),  # blank, then insisted call
        ("auto", [("no call here", 0.02)], 40, 0.02),
    ],
)
def test_ttft_is_the_first_generated_token_of_the_request(monkeypatch, choice, outputs, max_tokens, ttft):
    backend = VariantBackend(tiny_model(), tiny_tokenizer(), max_tokens=40)
    _scripted(monkeypatch, backend, outputs)
    reply = backend.complete(ChatRequest(model="t", messages=HI, tools=TOOLS, tool_choice=choice, max_tokens=max_tokens))
    assert reply.ttft_s == pytest.approx(ttft) and reply.completion_tokens > 0


@pytest.mark.parametrize("max_tokens", [3, 30])
def test_required_call_ttft_equals_the_first_decodes_on_the_tiny_model(monkeypatch, max_tokens):
    """Through the real decode loop: the reply's TTFT is the first decode's own ``ttft_s``
    (the name decode), never null while tokens were generated."""
    backend = VariantBackend(tiny_model(seed=3), tiny_tokenizer(), max_tokens=40)
    results = []
    real = backend_mod.generate
    monkeypatch.setattr(backend_mod, "generate", lambda *a, **kw: results.append(real(*a, **kw)[0]) or [results[-1]])
    reply = backend.complete(ChatRequest(model="t", messages=HI, tools=TOOLS, tool_choice="required",
                                         max_tokens=max_tokens))
    assert results and results[0].output_tokens > 0 and len(reply.tool_calls) == 1
    assert reply.ttft_s == results[0].ttft_s
    assert reply.completion_tokens == sum(r.output_tokens for r in results)
    json.loads(reply.tool_calls[0]["function"]["arguments"])
