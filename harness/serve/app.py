"""The OpenAI-compatible HTTP app: ``POST /v1/chat/completions`` and ``GET /v1/models``.

:func:`create_app` serves a dict of :class:`~harness.serve.protocol.ChatBackend` under their
model names. The request body is validated here (the subset of the OpenAI Chat Completions
API that τ²-bench sends through LiteLLM, see :func:`parse_request`), the backend answers one
request at a time (one lock per backend; a backend with ``thread_safe = True`` is called
concurrently), and the reply is returned as an OpenAI ``chat.completion`` body with
``usage`` and ``finish_reason`` always set.

Errors are OpenAI-shaped (``{"error": {"message", "type", "param", "code"}}``):

====  ==========================================================================
400   malformed body, ``stream: true``, ``n > 1``, a ``tool_choice`` function not in
      ``tools``, or a backend ``ValueError``
401   missing or wrong bearer key (when the app has one)
404   unknown ``model`` (``code: model_not_found``) or route (``code: unknown_url``)
405   wrong HTTP method for a route (``code: method_not_allowed``)
500   the backend raised anything else (the message says what)
====  ==========================================================================

Every chat request leaves a :class:`~harness.serve.protocol.RequestRecord` in the log, errors
included (``status``, ``error``; a 401 with ``served_model`` empty). Body extensions (ignored by OpenAI clients, readable as extra fields):
``truncated_turns`` and ``harness`` (request id, queue/latency/TTFT seconds, energy).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.concurrency import run_in_threadpool

from harness.serve.protocol import ChatBackend, ChatReply, ChatRequest, RequestLog, RequestRecord

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
TOOL_CHOICES = ("auto", "none", "required")


class ApiError(Exception):
    """An error with an HTTP status and an OpenAI error ``type``/``code``/``param``."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}},
            status_code=self.status,
        )


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


def _int_field(body: dict, key: str, minimum: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{key} must be an integer, got {value!r}", key)
    if minimum is not None and value < minimum:
        raise _bad(f"{key} must be >= {minimum}, got {value}", key)
    return value


def parse_request(body: Any) -> ChatRequest:
    """Validate an OpenAI chat-completions body into a :class:`ChatRequest`.

    Accepted and used: ``model``, ``messages``, ``tools``, ``tool_choice``, ``max_tokens`` /
    ``max_completion_tokens`` (the smaller when both), ``temperature``, ``seed``. Accepted and
    ignored: ``stream: false``, ``n: 1``, ``stop``, ``top_p`` and any unknown field.

    Raises:
        ApiError: 400 with a message naming the offending field.
    """
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model is required (the served variant name)", "model")
    if body.get("stream"):
        raise _bad("stream: true is not supported by this server; send stream: false", "stream")
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad(f"n={n!r} is not supported; only one choice per request (n=1)", "n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}] must be an object", f"messages[{i}]")
        if m.get("role") not in ROLES:
            raise _bad(f"messages[{i}].role must be one of {', '.join(ROLES)}; got {m.get('role')!r}", f"messages[{i}].role")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _bad(f"messages[{i}].content must be a string, a list of parts or null", f"messages[{i}].content")
        calls = m.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise _bad(f"messages[{i}].tool_calls must be a list", f"messages[{i}].tool_calls")
        for j, call in enumerate(calls or []):
            where = f"messages[{i}].tool_calls[{j}]"
            if not isinstance(call, dict):
                raise _bad(f"{where} must be an object {{id, type: function, function: {{name, arguments}}}}", where)
            fn = call.get("function")
            if fn is not None and not isinstance(fn, dict):
                raise _bad(f"{where}.function must be an object {{name, arguments}}", f"{where}.function")
            if fn is not None and fn.get("name") is not None and not isinstance(fn["name"], str):
                raise _bad(f"{where}.function.name must be a string", f"{where}.function.name")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools must be a list", "tools")
        for i, t in enumerate(tools):
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise _bad(f"tools[{i}] must be {{type: function, function: {{name, parameters}}}}", f"tools[{i}]")
            if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
                raise _bad(f"tools[{i}].function.parameters must be a JSON schema object", f"tools[{i}].function.parameters")
        tools = tools or None
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        if isinstance(tool_choice, str):
            if tool_choice not in TOOL_CHOICES:
                raise _bad(f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a function object", "tool_choice")
        elif not (isinstance(tool_choice, dict) and isinstance((tool_choice.get("function") or {}).get("name"), str)):
            raise _bad("tool_choice object must be {type: function, function: {name}}", "tool_choice")
        if tool_choice not in ("none", "auto") and not tools:
            raise _bad("tool_choice requires tools", "tool_choice")
        if isinstance(tool_choice, dict) and tools:
            offered = [t["function"]["name"] for t in tools]
            if tool_choice["function"]["name"] not in offered:
                raise _bad(
                    f"tool_choice names function {tool_choice['function']['name']!r}, which is not in tools "
                    f"({', '.join(offered)})", "tool_choice",
                )
    caps = [c for c in (_int_field(body, "max_tokens", 1), _int_field(body, "max_completion_tokens", 1)) if c is not None]
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise _bad(f"temperature must be a number >= 0, got {temperature!r}", "temperature")
        temperature = float(temperature)
    return ChatRequest(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=min(caps) if caps else None,
        temperature=temperature,
        seed=_int_field(body, "seed"),
    )


def response_body(request_id: str, model: str, reply: ChatReply, extra: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` body of ``reply`` (``tool_calls`` only when non-empty)."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
        "truncated_turns": reply.truncated_turns,
        "harness": extra,
    }


def _check_reply(reply: ChatReply) -> None:
    if not isinstance(reply, ChatReply):
        raise TypeError(f"backend returned {type(reply).__name__}, not ChatReply")
    for call in reply.tool_calls:
        args = call["function"]["arguments"]
        if not isinstance(args, str) or not isinstance(json.loads(args), dict):
            raise TypeError(f"tool call arguments must be a JSON object string, got {args!r}")
    if reply.finish_reason not in ("stop", "length", "tool_calls"):
        raise TypeError(f"finish_reason {reply.finish_reason!r} is not stop/length/tool_calls")


def create_app(
    backends: dict[str, ChatBackend],
    log: RequestLog | None = None,
    api_key: str | None = None,
    telemetry=None,
) -> FastAPI:
    """An OpenAI-compatible app serving ``backends`` under their dict keys (the ``model`` names).

    Args:
        backends: served model name → backend. A backend is called under its own lock unless
            it has a true ``thread_safe`` attribute.
        log: where each request's :class:`RequestRecord` goes (a new one when ``None``;
            reachable as ``app.state.log``).
        api_key: when set, requests need ``Authorization: Bearer <api_key>`` (else 401).
        telemetry: a :class:`harness.telemetry.Telemetry`; when set, each backend call runs
            in its own window (key ``serve:<model>:<request id>``) and the record carries its
            ``energy_j``/``energy_source``. When ``None`` (the default, and what the agent
            cells use) records say ``energy_source='unavailable'``: energy is measured by the
            caller's task-level windows, which span the requests. Measured on the 2-core CPU
            host: opening + closing a window costs ~5 ms (codecarbon estimate; the first one
            ~1.7 s, paid here at creation), under 0.1 % of a request of the embedded model.
            Windows of concurrent requests to different backends overlap and each measures
            the whole device.

    Returns:
        The FastAPI app; ``app.state.backends`` and ``app.state.log`` are the served objects.
    """
    log = log if log is not None else RequestLog()
    if telemetry is not None:  # the first window starts codecarbon (~1.7 s on CPU): not a request's cost
        with telemetry.window("serve:warmup"):
            pass
    locks = {name: threading.Lock() for name in backends}
    app = FastAPI(title="harness serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backends, app.state.log, app.state.telemetry = backends, log, telemetry

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "invalid or missing API key (send Authorization: Bearer <key>)", code="invalid_api_key")

    def serve(request_id: str, chat: ChatRequest, backend: ChatBackend, t_start: float) -> tuple[ChatReply, dict]:
        lock = None if getattr(backend, "thread_safe", False) else locks[chat.model]
        if lock is not None:
            lock.acquire()
        try:
            t_run = time.perf_counter()
            if telemetry is None:
                reply = backend.complete(chat)
                energy_j, source = None, "unavailable"
            else:
                with telemetry.window(f"serve:{chat.model}:{request_id}") as window:
                    reply = backend.complete(chat)
                energy_j, source = window.result.energy_j, window.result.energy_source
        finally:
            if lock is not None:
                lock.release()
        _check_reply(reply)
        return reply, {"queue_s": t_run - t_start, "energy_j": energy_j, "energy_source": source}

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Unknown routes (404) and wrong methods (405), OpenAI-shaped instead of ``{"detail"}``."""
        if exc.status_code == 404:
            message, code = (f"unknown route {_request.method} {_request.url.path}; this server serves "
                             "POST /v1/chat/completions and GET /v1/models"), "unknown_url"
        elif exc.status_code == 405:
            message, code = f"method {_request.method} is not allowed on {_request.url.path}", "method_not_allowed"
        else:
            message, code = str(exc.detail), None
        error = ApiError(exc.status_code, message, code=code)
        response = error.response()
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "harness"} for name in backends],
        }

    @app.get("/v1/models/{model}")
    async def get_model(model: str, request: Request) -> dict[str, Any]:
        authorize(request)
        if model not in backends:
            raise ApiError(404, f"The model {model!r} does not exist", code="model_not_found", param="model")
        return {"id": model, "object": "model", "created": 0, "owned_by": "harness"}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        t_start = time.perf_counter()
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        model = ""
        try:
            authorize(request)  # inside: a 401 is logged too (its body is not read: model "")
            try:
                body = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError) as exc:
                raise _bad(f"the request body is not valid JSON: {exc}") from None
            model = body.get("model", "") if isinstance(body, dict) else ""
            chat = parse_request(body)
            backend = backends.get(chat.model)
            if backend is None:
                raise ApiError(
                    404, f"The model {chat.model!r} does not exist (served: {', '.join(sorted(backends))})",
                    code="model_not_found", param="model",
                )
            try:
                reply, extra = await run_in_threadpool(serve, request_id, chat, backend, t_start)
            except ValueError as exc:
                raise _bad(str(exc)) from None
            except ApiError:
                raise
            except Exception as exc:  # a backend bug: report it, keep serving
                raise ApiError(500, f"{type(exc).__name__}: {exc}", type_="server_error") from None
        except ApiError as exc:
            t_end = time.perf_counter()
            log.add(RequestRecord(
                request_id=request_id, served_model=str(model), t_start=t_start, t_end=t_end,
                latency_s=t_end - t_start, ttft_s=None, prompt_tokens=0, completion_tokens=0,
                finish_reason="error", n_tool_calls=0, truncated_turns=0, status=exc.status, error=exc.message,
            ))
            return exc.response()
        t_end = time.perf_counter()
        record = RequestRecord(
            request_id=request_id, served_model=chat.model, t_start=t_start, t_end=t_end,
            latency_s=t_end - t_start, ttft_s=reply.ttft_s, prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens, finish_reason=reply.finish_reason,
            n_tool_calls=len(reply.tool_calls), truncated_turns=reply.truncated_turns,
            energy_j=extra["energy_j"], energy_source=extra["energy_source"], queue_s=extra["queue_s"],
        )
        log.add(record)
        extra = {"request_id": request_id, "latency_s": record.latency_s, "ttft_s": reply.ttft_s, **extra}
        return JSONResponse(response_body(request_id, chat.model, reply, extra))

    return app
