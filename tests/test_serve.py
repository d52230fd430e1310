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


def test_litellm_style_fields_accepted(served):
    client, backend, _, _ = served
    out = client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": [{"type": "text", "text": "x"}]}], max_tokens=40,
        max_completion_tokens=30, stream=False, n=1, stop=["\n"], top_p=0.9,
    )
    assert out.choices[0].finish_reason == "stop"
    assert (backend.requests[-1].max_tokens, backend.requests[-1].stop, backend.requests[-1].top_p) == (30, ["\n"], 0.9)


def test_unknown_model_is_404(served):
    client, _, log, _ = served
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "model_not_found"
    assert log.records("nope")[0].status == 404


@pytest.mark.parametrize(
    "extra, fragment",
    [({"stream": "yes"}, "stream"), ({"n": 2}, "n="), ({"messages": []}, "messages"),
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


# -- prompt building and tool-call parsing (no model) -----------------------------------------
from harness.serve import chat_format, toolcall  # noqa: E402
from harness.serve.backend import VariantBackend  # noqa: E402
from harness.testing import tiny_model, tiny_tokenizer  # noqa: E402

NAMES = ["get_order", "cancel_order"]


@pytest.mark.parametrize(
    "text, name, args, content",
    [
        ('<tool_call>\n{"name": "get_order", "arguments": {"order_id": "#W1"}}\n</tool_call>', "get_order", {"order_id": "#W1"}, None),
        ('Sure.\n```json\n{"tool": "Get-Order", "args": {"order_id": 1}}\n```', "get_order", {"order_id": 1}, "Sure."),
        ('Calling {"name": "cancel_order", "parameters": "{\\"id\\": 2}"} now', "cancel_order", {"id": 2}, "Calling  now"),
        ('<tool_call>\n{"name": "get_order", "arguments": {"order_id": "#W', "get_order", {"order_id": "#W"}, None),
        ('[{"function": {"name": "refund", "arguments": "[1]"}}]', "refund", {}, None),  # unknown name kept
        ('{"name": "get_ordr", "arguments": {}}', "get_order", {}, None),  # near miss corrected
    ],
)
def test_tool_calls_parsed_from_common_shapes(text, name, args, content):
    got_content, calls = toolcall.parse_tool_calls(text, NAMES)
    [call] = calls
    assert call["function"]["name"] == name and json.loads(call["function"]["arguments"]) == args
    assert call["id"].startswith("call_") and got_content == content


def test_plain_text_and_non_call_json_are_content():
    assert toolcall.parse_tool_calls("Hello {not json}", NAMES) == ("Hello {not json}", [])
    assert toolcall.parse_tool_calls('{"a": 1}', NAMES) == ('{"a": 1}', [])
    call = toolcall.forced_call('<tool_call>\n{"name": "cancel_or', NAMES)
    assert call["function"] == {"name": "cancel_order", "arguments": "{}"}


def _conversation(n_pairs: int) -> list[dict]:
    messages = [{"role": "system", "content": "You are an agent."}, {"role": "assistant", "content": "Hi! How can I help?"}]
    for i in range(n_pairs):
        messages += [{"role": "user", "content": f"question {i} " + "x" * 40},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": f"c{i}", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": "1"}'}}]},
                     {"role": "tool", "tool_call_id": f"c{i}", "content": f"result {i}"}]
    return messages + [{"role": "user", "content": "latest question"}]


def test_fallback_format_renders_tools_calls_and_results():
    tok = tiny_tokenizer()
    assert not chat_format.template_supports_tools(tok)
    prompt = chat_format.render(tok, _conversation(1), TOOLS, "auto")
    text = prompt.text
    assert not prompt.native_tools and prompt.truncated_turns == 0
    assert text.startswith("[system]You are an agent.") and '"name": "get_order"' in text and "$defs" in text
    assert text.count("[system]") == 1 and "[assistant]Hi! How can I help?" in text
    assert '<tool_call>\n{"name": "get_order", "arguments": {"order_id": "1"}}\n</tool_call>' in text
    assert "[user]<tool_response>\nresult 0\n</tool_response>\n\nlatest question" in text  # merged user turn
    assert "tool" not in chat_format.render(tok, _conversation(0), TOOLS, "none").text.split("[system]")[1].split("\n")[0]


def test_native_template_gets_tools_and_dict_arguments():
    tok = tiny_tokenizer()
    tok.chat_template = (
        "{% for t in tools or [] %}<tool {{ t['function']['name'] }}>{% endfor %}"
        "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}"
        "{% for c in m.get('tool_calls') or [] %}<call {{ c['function']['name'] }} {{ c['function']['arguments']['order_id'] }}>{% endfor %}\n"
        "{% endfor %}[assistant]"
    )
    prompt = chat_format.render(tok, _conversation(1), TOOLS, "auto")
    assert prompt.native_tools and prompt.text.startswith("<tool get_order>[system]You are an agent.[assistant]Hi!")
    assert "<call get_order 1>" in prompt.text and "[tool]result 0" in prompt.text


def test_assistant_first_gets_a_user_turn_only_when_the_template_requires_it():
    tok = tiny_tokenizer()
    messages = [{"role": "system", "content": "s"}, {"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "q"}]
    assert chat_format.CONVERSATION_START not in chat_format.render(tok, messages).text
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and loop.index0 == 1 %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}"
        "[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}[assistant]"
    )
    text = chat_format.render(tok, messages).text
    assert text == f"[system]s\n[user]{chat_format.CONVERSATION_START}\n[assistant]Hi!\n[user]q\n[assistant]"


def test_truncation_drops_oldest_turns_keeps_system_and_latest():
    tok = tiny_tokenizer()
    messages = _conversation(6)
    full = chat_format.render(tok, messages, TOOLS, "auto")
    cut = chat_format.render(tok, messages, TOOLS, "auto", max_prompt_tokens=len(full.token_ids) - 150)
    assert cut.truncated_turns >= 1 and len(cut.token_ids) <= len(full.token_ids) - 150
    assert cut.text.startswith("[system]You are an agent.") and cut.text.endswith("latest question\n[assistant]")
    assert "question 0" not in cut.text and "question 5" in cut.text
    assert not cut.text.split("\n", 1)[1].startswith("[user]<tool_response>")  # no orphaned tool result first
    with pytest.raises(chat_format.PromptTooLong):
        chat_format.render(tok, messages, TOOLS, "auto", max_prompt_tokens=50)


# -- the tiny random model behind the server ----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_served():
    backend = VariantBackend(tiny_model(seed=3), tiny_tokenizer(), max_tokens=12)
    log = RequestLog()
    with ServerThread(create_app({"tiny": backend}, log=log)) as server:
        yield openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0), backend, log


def test_tiny_plain_chat_usage_and_nonempty(tiny_served):
    client, backend, log = tiny_served
    messages = [{"role": "user", "content": "hello"}]
    out = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0)
    prompt = chat_format.render(backend.tokenizer, messages)
    assert out.usage.prompt_tokens == len(prompt.token_ids) and 1 <= out.usage.completion_tokens <= 8
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert out.choices[0].message.content and out.choices[0].message.content.strip()
    record = log.records("tiny")[-1]
    assert record.ttft_s is not None and record.completion_tokens == out.usage.completion_tokens


def test_tiny_required_tool_choice_yields_a_call(tiny_served):
    client, _, _ = tiny_served
    for choice in ("required", {"type": "function", "function": {"name": "get_order"}}):
        out = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "where is #W1?"}], tools=TOOLS, tool_choice=choice
        )
        [call] = out.choices[0].message.tool_calls
        assert out.choices[0].finish_reason == "tool_calls" and call.function.name == "get_order"
        assert isinstance(json.loads(call.function.arguments), dict)


def test_tiny_concurrent_requests_match_sequential(tiny_served):
    client, _, _ = tiny_served
    questions = [f"q{i} " * (i + 1) for i in range(4)]

    def ask(q):
        return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": q}], max_tokens=6,
                                              temperature=0).choices[0].message.content

    sequential = [ask(q) for q in questions]
    parallel: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: parallel.__setitem__(i, ask(questions[i]))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [parallel[i] for i in range(4)] == sequential


def test_tiny_seeded_sampling_is_reproducible(tiny_served):
    client, _, _ = tiny_served

    def ask(**kw):
        return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=10, **kw).choices[0].message.content

    sampled = [ask(temperature=5.0, seed=s) for s in (1, 1, 2, 3, 4)]
    assert sampled[0] == sampled[1]
    assert len(set(sampled + [ask(temperature=0)])) > 2  # sampling changes the text (greedy is one string)


def test_tiny_truncation_counted(tiny_served):
    client, backend, log = tiny_served
    small = VariantBackend(backend.model, backend.tokenizer, max_tokens=4, max_prompt_tokens=400)
    with ServerThread(create_app({"small": small}, log=log)) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        out = c.chat.completions.create(model="small", messages=_conversation(6))
    assert out.model_extra["truncated_turns"] >= 3 and out.usage.prompt_tokens <= 400
    assert log.records("small")[-1].truncated_turns == out.model_extra["truncated_turns"]


# -- bug fixes from a new user's first try --------------------------------------------------------
def test_suite_backends_serve_agents_variants(monkeypatch):
    from harness import models
    from harness.serve.backend import suite_backends
    from harness.config.suite import load, resolve_path
    from harness.testing import TinyBase

    loaded = []
    monkeypatch.setattr(models, "load", lambda ref, dtype, device: loaded.append((ref, dtype)) or TinyBase())
    suite = load(resolve_path("agentic"))
    backends = suite_backends(suite, ["baseline"])
    assert list(backends) == ["baseline"] and loaded == [("embedded", "fp32")]
    assert backends["baseline"].max_tokens == suite.section("agents").defaults.max_tokens
    with pytest.raises(ValueError, match=r"'nope'.*servable variants: \['baseline'"):
        suite_backends(suite, ["nope"])


@pytest.mark.parametrize(
    "text",
    [
        'Here is your profile: {"name": "John Smith", "email": "j@x.com"}',
        'Added: {"tool": "buy milk", "args": {}}',
        '```json\n{"name": "get_ordr", "arguments": {}}\n```',  # near miss outside tags: not a call
        '<tool_call>{"name": "buy milk", "arguments": {}}</tool_call>',
    ],
)
def test_auto_keeps_json_not_naming_an_offered_tool_as_content(text):
    assert toolcall.parse_tool_calls(text, NAMES, strict=True) == (text.strip(), [])


def test_auto_accepts_exact_names_and_tagged_near_misses():
    _, [call] = toolcall.parse_tool_calls('Ok {"name": "get_order", "arguments": {"order_id": "1"}}', NAMES, strict=True)
    assert call["function"]["name"] == "get_order"
    _, [call] = toolcall.parse_tool_calls('<tool_call>{"name": "Get-Order", "arguments": {}}</tool_call>', NAMES, strict=True)
    assert call["function"]["name"] == "get_order"
    content, [call] = toolcall.parse_tool_calls('{"name": "Ann"} then {"name": "cancel_order", "arguments": {}}', NAMES, strict=True)
    assert call["function"]["name"] == "cancel_order" and content == '{"name": "Ann"} then'


def _scripted_decodes(monkeypatch, backend, texts):
    """Make ``backend``'s decodes return ``texts`` in turn (each token = one character)."""
    from types import SimpleNamespace

    seen = []

    def fake(prompt_ids, cap, request, stops, on_token=None):
        text = texts[len(seen)][:cap]
        seen.append(cap)
        return SimpleNamespace(text=text, output_tokens=len(text), ttft_s=0.0, finish_reason="stop")

    monkeypatch.setattr(backend, "_decode", fake)
    return seen


def test_backend_auto_profile_json_is_content_not_a_call(monkeypatch):
    backend = VariantBackend(tiny_model(), tiny_tokenizer(), max_tokens=80)
    text = 'Here is your profile: {"name": "John Smith", "zip": "10001"}'
    _scripted_decodes(monkeypatch, backend, [text])
    reply = backend.complete(ChatRequest(model="t", messages=[{"role": "user", "content": "me?"}], tools=TOOLS))
    assert reply.tool_calls == [] and reply.content == text and reply.finish_reason == "stop"


NUM_TOOL = {"type": "function", "function": {"name": "set_count", "parameters": {
    "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}
CITY_TOOL = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "required": ["city"]}}}


@pytest.mark.parametrize(
    "tool, written, args",
    [
        (TOOLS[0], '#W1"}}', {"order_id": "#W1"}),
        (CITY_TOOL, 'Paris"}}', {"city": "Paris"}),
        (CITY_TOOL, 'Paris" x garbage', {"city": "Paris"}),  # junk after the string is dropped
        (CITY_TOOL, 'Par', {"city": "Par"}),  # cut by the cap: the string is closed
        (NUM_TOOL, '11}}', {"n": 11}),
    ],
)
def test_forced_call_prefills_a_string_parameters_opening_quote(monkeypatch, tool, written, args):
    backend = VariantBackend(tiny_model(), tiny_tokenizer(), max_tokens=40)
    prompts = []
    name = tool["function"]["name"]
    _scripted_decodes(monkeypatch, backend, [written])
    original = backend._decode
    monkeypatch.setattr(backend, "_decode", lambda ids, *a: prompts.append(backend.tokenizer.decode(ids)) or original(ids, *a))
    choice = {"type": "function", "function": {"name": name}}
    reply = backend.complete(ChatRequest(model="t", messages=[{"role": "user", "content": "go"}], tools=[tool], tool_choice=choice))
    [call] = reply.tool_calls
    assert call["function"]["name"] == name and json.loads(call["function"]["arguments"]) == args
    param = next(iter(args))
    assert prompts[-1].endswith(f'"{param}": ' + ('' if tool is NUM_TOOL else '"'))


def test_required_call_decodes_share_the_max_tokens_cap(monkeypatch):
    backend = VariantBackend(tiny_model(), tiny_tokenizer(), max_tokens=40)
    caps = _scripted_decodes(monkeypatch, backend, ['get_order"', "x" * 100])
    reply = backend.complete(ChatRequest(model="t", messages=[{"role": "user", "content": "go"}], tools=TOOLS,
                                         tool_choice="required", max_tokens=20))
    assert caps == [20, 10] and reply.completion_tokens == 20
    assert reply.tool_calls[0]["function"]["name"] == "get_order"
    # the whole cap spent on the name: no arguments decode, still a call
    caps = _scripted_decodes(monkeypatch, backend, ["get_order_" + "z" * 50])
    reply = backend.complete(ChatRequest(model="t", messages=[{"role": "user", "content": "go"}], tools=TOOLS,
                                         tool_choice="required", max_tokens=8))
    assert caps == [8] and reply.completion_tokens == 8 and len(reply.tool_calls) == 1


def test_blank_auto_reply_retry_stays_within_the_cap(monkeypatch):
    backend = VariantBackend(tiny_model(), tiny_tokenizer(), max_tokens=40)
    caps = _scripted_decodes(monkeypatch, backend, ["   ", 'get_order"', "1\"}}"])
    reply = backend.complete(ChatRequest(model="t", messages=[{"role": "user", "content": "go"}], tools=TOOLS, max_tokens=3))
    assert caps == [3] and reply.completion_tokens == 3
    [call] = reply.tool_calls
    assert call["function"]["name"] == "get_order"


def test_tiny_required_string_argument_is_a_string(tiny_served):
    client, _, _ = tiny_served
    for cap in (40, 5):
        out = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "where is #W1?"}], tools=TOOLS, tool_choice="required",
            max_tokens=cap,
        )
        [call] = out.choices[0].message.tool_calls
        assert isinstance(json.loads(call.function.arguments).get("order_id"), str)
        assert out.usage.completion_tokens <= cap


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "abc"}}], "tool_choice": "required"},
         "parameters must be a JSON schema object"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": ["x"]}]},
         "tool_calls[0] must be an object"),
        ({"messages": [{"role": "user", "content": "hi"},
                       {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "function": "f"}]}]},
         "tool_calls[0].function must be an object"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "launch_rocket"}}},
         "'launch_rocket', which is not in tools"),
    ],
)
def test_malformed_tools_and_calls_are_400_on_a_real_backend(tiny_served, extra, fragment):
    client, _, log = tiny_served
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **extra}
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body=body, cast_to=object)
    assert fragment in info.value.body["message"] and log.records("tiny")[-1].status == 400


def test_unknown_route_and_wrong_method_are_openai_shaped(served):
    _, _, _, server = served
    for method, path, status in (("POST", "/completions", 404), ("GET", "/chat/completions", 405),
                                 ("DELETE", "/models", 405), ("GET", "/nothing/here", 404)):
        request = urllib.request.Request(f"{server.base_url}{path}", data=b"{}" if method == "POST" else None,
                                         method=method, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        body = json.loads(info.value.read())
        assert info.value.code == status and "detail" not in body
        assert set(body["error"]) >= {"message", "type", "code"} and path in body["error"]["message"]


def test_unauthorized_chat_requests_are_logged():
    log = RequestLog()
    with ServerThread(create_app({"fake": Scripted()}, log=log, api_key="sekret")) as server:
        wrong = openai.OpenAI(base_url=server.base_url, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}])
    [record] = log.records()
    assert record.status == 401 and record.finish_reason == "error"
