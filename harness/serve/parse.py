"""Request bodies of ``POST /v1/chat/completions``: validation and the field policy.

Every top-level field of an OpenAI Chat Completions body falls in one of three groups
(OpenAI API reference, "Create chat completion"; what an OpenAI endpoint answers to an unknown
key is a 400 ``Unrecognized request argument supplied: <key>``, which this server mirrors):

* **implemented** (:data:`IMPLEMENTED`): ``model``, ``messages``, ``tools``, ``tool_choice``,
  ``max_tokens`` / ``max_completion_tokens`` (the smaller when both), ``temperature``,
  ``top_p``, ``seed``, ``stop``, ``n`` (1 only), ``stream``, ``stream_options``;
* **no effect here** (:data:`NEUTRAL`): recognised fields accepted *only at a value that leaves
  the output as this server produces it* (``frequency_penalty: 0``, ``logprobs: false``,
  ``response_format: {type: text}``, ``parallel_tool_calls``: either, since a reply holds at
  most one call; ``user``, ``metadata``, ``store``, … change no output and are ignored); any
  other value is a 400 naming the field;
* **refused** (:data:`REFUSED`): recognised OpenAI fields this server does not implement and
  that would change the output (``functions``, ``audio``, ``reasoning_effort``, …): 400 naming
  the field. Anything else is unrecognised: 400 naming it, with the closest known name.

``null`` is the same as an absent field. What τ²-bench sends through LiteLLM 1.x (captured from
``tests/test_agents_tau2.py``): ``model``, ``messages``, ``temperature``, ``max_tokens``, ``seed``,
and for the agent ``tools`` and ``tool_choice`` (``auto``); all implemented.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

from fastapi.responses import JSONResponse

from harness.serve.protocol import ChatRequest

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
TOOL_CHOICES = ("auto", "none", "required")
MAX_STOPS = 4  # OpenAI's limit on ``stop`` sequences

IMPLEMENTED = (
    "model", "messages", "tools", "tool_choice", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "seed", "stop", "n", "stream", "stream_options",
)


def _anything(_value: Any) -> bool:
    return True


def _zero(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0


#: field → (whether a value leaves the output unchanged, what the message says is accepted)
NEUTRAL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "frequency_penalty": (_zero, "0"),
    "presence_penalty": (_zero, "0"),
    "logprobs": (lambda v: v is False, "false"),
    "top_logprobs": (_zero, "0"),
    "logit_bias": (lambda v: v == {}, "{}"),
    "response_format": (lambda v: v == {"type": "text"}, '{"type": "text"}'),
    "modalities": (lambda v: v == ["text"], '["text"]'),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "true or false (a reply holds at most one call)"),
    "user": (_anything, "any value"),
    "safety_identifier": (_anything, "any value"),
    "prompt_cache_key": (_anything, "any value"),
    "prompt_cache_retention": (_anything, "any value"),
    "metadata": (_anything, "any value"),
    "store": (lambda v: isinstance(v, bool), "true or false"),
    "service_tier": (_anything, "any value"),
}

#: recognised OpenAI fields that would change the output and are not implemented here
REFUSED = ("functions", "function_call", "audio", "prediction", "web_search_options", "reasoning_effort",
           "verbosity")


class ApiError(Exception):
    """An error with an HTTP status and an OpenAI error ``type``/``code``/``param``."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def bad(message: str, param: str | None = None) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError(400, message, param=param)


def _int_field(body: dict, key: str, minimum: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"{key} must be an integer, got {value!r}", key)
    if minimum is not None and value < minimum:
        raise bad(f"{key} must be >= {minimum}, got {value}", key)
    return value


def _number(body: dict, key: str, low: float, high: float | None, low_open: bool = False) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"{key} must be a number, got {value!r}", key)
    if value < low or (low_open and value == low) or (high is not None and value > high):
        span = f"{'(' if low_open else '['}{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise bad(f"{key} must be {'in ' if high is not None else ''}{span}, got {value!r}", key)
    return float(value)


def check_fields(body: dict) -> None:
    """Refuse unrecognised fields and recognised ones this server does not honour (see the
    module docstring); a 400 naming the (first, alphabetically) offending field."""
    known = set(IMPLEMENTED) | set(NEUTRAL) | set(REFUSED)
    unknown = sorted(k for k in body if k not in known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise bad(f"unrecognized request argument supplied: {unknown[0]}{hint}", unknown[0])
    for key in sorted(body):
        value = body[key]
        if value is None:
            continue
        if key in REFUSED:
            raise bad(f"{key} is not supported by this server (it would change the output)", key)
        if key in NEUTRAL:
            ok, accepted = NEUTRAL[key]
            if not ok(value):
                raise bad(f"{key}={value!r} is not supported by this server (accepted: {accepted})", key)


def _stops(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad(f"stop must be a non-empty string or a list of them, got {stop!r}", "stop")
    if len(stops) > MAX_STOPS:
        raise bad(f"stop holds {len(stops)} sequences; at most {MAX_STOPS}", "stop")
    return list(dict.fromkeys(stops))


def _stream(body: dict) -> tuple[bool, bool]:
    """(stream, include_usage)."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad(f"stream must be true or false, got {stream!r}", "stream")
    options = body.get("stream_options")
    if options is None:
        return bool(stream), False
    if not stream:
        raise bad("stream_options is only allowed when stream is true", "stream_options")
    if not isinstance(options, dict):
        raise bad("stream_options must be an object {include_usage}", "stream_options")
    extra = sorted(set(options) - {"include_usage", "include_obfuscation"})
    if extra:
        raise bad(f"unrecognized stream_options field: {extra[0]}", f"stream_options.{extra[0]}")
    for key in ("include_usage", "include_obfuscation"):
        if options.get(key) is not None and not isinstance(options[key], bool):
            raise bad(f"stream_options.{key} must be true or false", f"stream_options.{key}")
    return True, bool(options.get("include_usage"))


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages must be a non-empty list", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad(f"messages[{i}] must be an object", f"messages[{i}]")
        if m.get("role") not in ROLES:
            raise bad(f"messages[{i}].role must be one of {', '.join(ROLES)}; got {m.get('role')!r}", f"messages[{i}].role")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise bad(f"messages[{i}].content must be a string, a list of parts or null", f"messages[{i}].content")
        calls = m.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise bad(f"messages[{i}].tool_calls must be a list", f"messages[{i}].tool_calls")
        for j, call in enumerate(calls or []):
            where = f"messages[{i}].tool_calls[{j}]"
            if not isinstance(call, dict):
                raise bad(f"{where} must be an object {{id, type: function, function: {{name, arguments}}}}", where)
            fn = call.get("function")
            if fn is not None and not isinstance(fn, dict):
                raise bad(f"{where}.function must be an object {{name, arguments}}", f"{where}.function")
            if fn is not None and fn.get("name") is not None and not isinstance(fn["name"], str):
                raise bad(f"{where}.function.name must be a string", f"{where}.function.name")
    return messages


def _tools(body: dict) -> tuple[list[dict] | None, Any]:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise bad("tools must be a list", "tools")
        for i, t in enumerate(tools):
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise bad(f"tools[{i}] must be {{type: function, function: {{name, parameters}}}}", f"tools[{i}]")
            if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
                raise bad(f"tools[{i}].function.parameters must be a JSON schema object", f"tools[{i}].function.parameters")
        tools = tools or None
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        if isinstance(tool_choice, str):
            if tool_choice not in TOOL_CHOICES:
                raise bad(f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a function object", "tool_choice")
        elif not (isinstance(tool_choice, dict) and isinstance((tool_choice.get("function") or {}).get("name"), str)):
            raise bad("tool_choice object must be {type: function, function: {name}}", "tool_choice")
        if tool_choice not in ("none", "auto") and not tools:
            raise bad("tool_choice requires tools", "tool_choice")
        if isinstance(tool_choice, dict) and tools:
            offered = [t["function"]["name"] for t in tools]
            if tool_choice["function"]["name"] not in offered:
                raise bad(
                    f"tool_choice names function {tool_choice['function']['name']!r}, which is not in tools "
                    f"({', '.join(offered)})", "tool_choice",
                )
    return tools, tool_choice


def parse_request(body: Any) -> ChatRequest:
    """Validate an OpenAI chat-completions body into a :class:`ChatRequest` (fields: see the
    module docstring).

    Raises:
        ApiError: 400 with a message naming the offending field (``param`` set to it).
    """
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    check_fields(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model is required (the served variant name)", "model")
    n = _int_field(body, "n", 1)
    if n is not None and n != 1:
        raise bad(f"n={n!r} is not supported; only one choice per request (n=1)", "n")
    stream, include_usage = _stream(body)
    messages = _messages(body)
    tools, tool_choice = _tools(body)
    caps = [c for c in (_int_field(body, "max_tokens", 1), _int_field(body, "max_completion_tokens", 1)) if c is not None]
    return ChatRequest(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=min(caps) if caps else None,
        temperature=_number(body, "temperature", 0.0, None),
        seed=_int_field(body, "seed"),
        top_p=_number(body, "top_p", 0.0, 1.0, low_open=True),
        stop=_stops(body),
        stream=stream,
        include_usage=include_usage,
    )
