"""The OpenAI-compatible server with scripted backends, through the ``openai`` client."""

from __future__ import annotations

import json
import threading
import urllib.request

import openai
import pytest

from harness.serve.app import create_app
from harness.serve.protocol import ChatReply, ChatRequest, RequestLog
from harness.serve.server import ServerThread

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "Look up an order.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "detail": {"anyOf": [{"$ref": "#/$defs/D"}, {"type": "null"}]}},
                "required": ["order_id"],
                "$defs": {"D": {"type": "string", "enum": ["short", "long"]}},
            },
        },
    }
]


class Scripted:
    """Answers with a tool call when tools are offered and no tool result is in the
    conversation yet, else echoes the last tool result or user text."""

    def __init__(self):
        self.requests: list[ChatRequest] = []
        self.active = 0
        self.max_active = 0
        self._count = threading.Lock()

    def complete(self, request: ChatRequest) -> ChatReply:
        with self._count:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.requests.append(request)
            last = request.messages[-1]
            if request.tools and last["role"] != "tool":
                call = {"id": "call_1", "type": "function",
                        "function": {"name": "get_order", "arguments": json.dumps({"order_id": "#W1"})}}
                return ChatReply(None, [call], "tool_calls", prompt_tokens=11, completion_tokens=7, ttft_s=0.01)
            if last.get("content") == "boom":
                raise ValueError("cannot serve boom")
            if last.get("content") == "crash":
                raise RuntimeError("backend bug")
            text = f"echo: {last['content']}"
            return ChatReply(text, prompt_tokens=5, completion_tokens=3, ttft_s=0.01, truncated_turns=2)
        finally:
            with self._count:
                self.active -= 1


@pytest.fixture
def served():
    backend, log = Scripted(), RequestLog()
    with ServerThread(create_app({"fake": backend, "other": Scripted()}, log=log)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        yield client, backend, log, server


def test_plain_chat_has_usage_and_is_logged(served):
    client, backend, log, _ = served
    out = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}], temperature=0, seed=3)
    assert out.choices[0].message.content == "echo: hi"
    assert out.choices[0].finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (5, 3, 8)
    assert out.model_extra["truncated_turns"] == 2
    req = backend.requests[-1]
    assert (req.temperature, req.seed, req.tools) == (0.0, 3, None)
    [record] = log.records("fake")
    assert (record.prompt_tokens, record.completion_tokens, record.truncated_turns) == (5, 3, 2)
    assert record.status == 200 and record.energy_source == "unavailable" and record.latency_s >= record.queue_s >= 0
    assert log.records("other") == []


def test_tool_call_round_trip(served):
    client, backend, _, _ = served
    messages = [
        {"role": "system", "content": "You are an agent."},
        {"role": "assistant", "content": "Hi! How can I help you today?"},  # τ² starts with the agent
        {"role": "user", "content": "where is my order #W1?"},
    ]
    out = client.chat.completions.create(model="fake", messages=messages, tools=TOOLS, tool_choice="required")
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "get_order" and json.loads(call.function.arguments) == {"order_id": "#W1"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'}]
    out = client.chat.completions.create(model="fake", messages=messages, tools=TOOLS, tool_choice="auto")
    assert out.choices[0].message.content == 'echo: {"status": "shipped"}'
    sent = backend.requests[-1]
    assert sent.tool_choice == "auto" and sent.tools[0]["function"]["parameters"]["$defs"]
    assert sent.messages[3]["tool_calls"][0]["id"] == "call_1" and "content" not in sent.messages[3]
    assert sent.messages[4]["tool_call_id"] == "call_1"


def test_litellm_style_extras_accepted(served):
    client, backend, _, _ = served
    out = client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": [{"type": "text", "text": "x"}]}], max_tokens=40,
        max_completion_tokens=30, stream=False, n=1, stop=["\n"], extra_body={"drop_params": True, "whatever": 1},
    )
    assert out.choices[0].finish_reason == "stop"
    assert backend.requests[-1].max_tokens == 30


def test_unknown_model_is_404(served):
    client, _, log, _ = served
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "model_not_found"
    assert log.records("nope")[0].status == 404


@pytest.mark.parametrize(
    "extra, fragment",
    [({"stream": True}, "stream"), ({"n": 2}, "n="), ({"messages": []}, "messages"),
     ({"messages": [{"role": "robot", "content": "x"}]}, "role"), ({"temperature": -1}, "temperature"),
     ({"tool_choice": "required"}, "tool_choice"), ({"messages": [{"role": "user", "content": "boom"}]}, "boom")],
)
def test_malformed_requests_are_400(served, extra, fragment):
    client, _, _, _ = served
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body=body, cast_to=object)
    assert fragment in info.value.body["message"]


def test_invalid_json_is_400_and_backend_bug_is_500(served):
    client, _, log, server = served
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=b"{nope", method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    assert info.value.code == 400 and "not valid JSON" in json.loads(info.value.read())["error"]["message"]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "crash"}])
    assert log.records("fake")[-1].error == "RuntimeError: backend bug"
    out = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "still up"}])
    assert out.choices[0].message.content == "echo: still up"


def test_models_listed(served):
    client, _, _, _ = served
    assert sorted(m.id for m in client.models.list()) == ["fake", "other"]


def test_bearer_key_enforced():
    with ServerThread(create_app({"fake": Scripted()}, api_key="sekret")) as server:
        wrong = openai.OpenAI(base_url=server.base_url, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        right = openai.OpenAI(base_url=server.base_url, api_key="sekret", max_retries=0)
        out = right.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}])
        assert out.choices[0].message.content == "echo: hi"


def test_calls_are_serialized_per_backend(served):
    client, backend, _, _ = served
    original = backend.complete

    def slow(request):
        import time

        time.sleep(0.02)
        return original(request)

    backend.complete = slow
    outs: list[str] = []

    def ask(i: int) -> None:
        out = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": f"q{i}"}])
        outs.append(out.choices[0].message.content)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outs) == sorted(f"echo: q{i}" for i in range(6))
    assert backend.max_active == 1
