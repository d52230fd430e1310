"""The OpenAI-compatible HTTP app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``.

:func:`create_app` serves a dict of :class:`~harness.serve.protocol.ChatBackend` under their
model names. The request body is validated by :func:`harness.serve.parse.parse_request` (every
field that would change the output is implemented or refused with a 400 naming it), the
backend answers one request at a time (one lock per backend; a backend with
``thread_safe = True`` is called concurrently), and the reply is returned as an OpenAI
``chat.completion`` body with ``usage`` and ``finish_reason`` always set, or, with
``stream: true``, as ``chat.completion.chunk`` server-sent events (:mod:`harness.serve.sse`).

Errors are OpenAI-shaped (``{"error": {"message", "type", "param", "code"}}``):

====  ==========================================================================
400   malformed body, an unrecognised field, a field at a value this server does not
      honour (``n > 1``, ``logprobs: true``, ``presence_penalty: 0.5``, …), a
      ``tool_choice`` function not in ``tools``, or a backend ``ValueError``
401   missing or wrong bearer key (when the app has one; ``/health`` needs none)
404   unknown ``model`` (``code: model_not_found``) or route (``code: unknown_url``)
405   wrong HTTP method for a route (``code: method_not_allowed``)
500   the backend raised anything else (the message says what)
====  ==========================================================================

A streamed request answers its error with that status when the backend fails before its
first event (e.g. a conversation that cannot be templated); after the stream began, the
error is an ``error`` event in the stream.

Every chat request leaves a :class:`~harness.serve.protocol.RequestRecord` in the log, errors
included (``status``, ``error``; a 401 with ``served_model`` empty; 499 for a stream the client
closed), and one INFO line on the ``harness.serve`` logger (status, model, tokens, latency,
TTFT; other routes: method, path, status, latency; ``/health`` at DEBUG). Body extensions
(ignored by OpenAI clients, readable as extra fields): ``truncated_turns`` and ``harness``
(request id, queue/latency/TTFT seconds, energy); in a stream, on the final chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from harness.serve.parse import ApiError, bad, parse_request
from harness.serve.protocol import ChatBackend, ChatReply, ChatRequest, RequestLog, RequestRecord, StreamClosed
from harness.serve.sse import DONE, ChunkMaker, event

__all__ = ["ApiError", "configure_logging", "create_app", "parse_request", "response_body"]

CHAT_PATH = "/v1/chat/completions"
logger = logging.getLogger("harness.serve")


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a record comes."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: str = "info", stream=None) -> logging.Logger:
    """Send the ``harness.serve`` logger's lines (one per request) to ``stream`` (default: the
    current ``sys.stderr``) at ``level`` (``debug``/``info``/``warning``/``error``); what
    ``harness serve`` calls. Calling it again replaces the handler it added.

    Raises:
        ValueError: an unknown level name.
    """
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    for handler in [h for h in logger.handlers if getattr(h, "_harness_serve", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler._harness_serve = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(number)
    return logger


def log_line(record: RequestRecord) -> str:
    """The log line of one chat request."""
    ttft = "-" if record.ttft_s is None else f"{record.ttft_s:.4f}"
    line = (f"POST {CHAT_PATH} {record.status} model={record.served_model or '-'} "
            f"stream={'yes' if record.stream else 'no'} prompt_tokens={record.prompt_tokens} "
            f"completion_tokens={record.completion_tokens} latency_s={record.latency_s:.4f} ttft_s={ttft} "
            f"queue_s={record.queue_s:.4f} finish={record.finish_reason} id={record.request_id}")
    return line + (f" error={record.error!r}" if record.error else "")


class AccessLog:
    """ASGI middleware: one line per request to a route other than the chat route (which logs
    its own, richer line once the reply, streamed or not, is complete)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (scope["path"] == CHAT_PATH and scope["method"] == "POST"):
            return await self.app(scope, receive, send)
        t0, logged = time.perf_counter(), []

        def line(status: int) -> None:  # logged when the response starts: before the client can see it
            logged.append(status)
            level = logging.DEBUG if scope["path"] == "/health" else logging.INFO
            logger.log(level, "%s %s %d latency_s=%.4f", scope["method"], scope["path"], status,
                       time.perf_counter() - t0)

        async def sending(message):
            if message["type"] == "http.response.start":
                line(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not logged:
                line(500)


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


def _as_api_error(exc: BaseException) -> ApiError:
    """A backend's exception as the error the client gets: ``ValueError`` 400, anything else 500."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValueError):
        return bad(str(exc))
    return ApiError(500, f"{type(exc).__name__}: {exc}", type_="server_error")


def create_app(
    backends: dict[str, ChatBackend],
    log: RequestLog | None = None,
    api_key: str | None = None,
    telemetry=None,
) -> FastAPI:
    """An OpenAI-compatible app serving ``backends`` under their dict keys (the ``model`` names).

    Args:
        backends: served model name → backend. A backend is called under its own lock unless
            it has a true ``thread_safe`` attribute; one with a true ``streams`` attribute
            streams its content as it is generated (see :mod:`harness.serve.protocol`).
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
    app.add_middleware(AccessLog)
    app.state.backends, app.state.log, app.state.telemetry = backends, log, telemetry

    def record(entry: RequestRecord) -> None:
        log.add(entry)
        logger.info("%s", log_line(entry))

    def failed(request_id: str, model: str, t_start: float, exc: ApiError, stream: bool) -> RequestRecord:
        t_end = time.perf_counter()
        return RequestRecord(
            request_id=request_id, served_model=str(model), t_start=t_start, t_end=t_end,
            latency_s=t_end - t_start, ttft_s=None, prompt_tokens=0, completion_tokens=0,
            finish_reason="error", n_tool_calls=0, truncated_turns=0, status=exc.status, error=exc.message,
            stream=stream,
        )

    def succeeded(request_id: str, chat: ChatRequest, t_start: float, t_end: float, reply: ChatReply,
                  extra: dict) -> RequestRecord:
        return RequestRecord(
            request_id=request_id, served_model=chat.model, t_start=t_start, t_end=t_end,
            latency_s=t_end - t_start, ttft_s=reply.ttft_s, prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens, finish_reason=reply.finish_reason,
            n_tool_calls=len(reply.tool_calls), truncated_turns=reply.truncated_turns,
            energy_j=extra["energy_j"], energy_source=extra["energy_source"], queue_s=extra["queue_s"],
            stream=chat.stream,
        )

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "invalid or missing API key (send Authorization: Bearer <key>)", code="invalid_api_key")

    def serve(request_id: str, chat: ChatRequest, backend: ChatBackend, t_start: float,
              emit=None) -> tuple[ChatReply, dict]:
        lock = None if getattr(backend, "thread_safe", False) else locks[chat.model]
        call = (lambda: backend.complete(chat, emit=emit)) if emit is not None and getattr(backend, "streams", False) \
            else (lambda: backend.complete(chat))
        if lock is not None:
            lock.acquire()
        try:
            t_run = time.perf_counter()
            if telemetry is None:
                reply = call()
                energy_j, source = None, "unavailable"
            else:
                with telemetry.window(f"serve:{chat.model}:{request_id}") as window:
                    reply = call()
                energy_j, source = window.result.energy_j, window.result.energy_source
        finally:
            if lock is not None:
                lock.release()
        _check_reply(reply)
        return reply, {"queue_s": t_run - t_start, "energy_j": energy_j, "energy_source": source}

    async def streamed(request_id: str, chat: ChatRequest, backend: ChatBackend, t_start: float):
        """Run the backend in its own thread and relay its events; raises the backend's error
        as an :class:`ApiError` when it fails before its first event (a plain HTTP error then)."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        closed = threading.Event()

        def put(item) -> None:
            loop.call_soon_threadsafe(events.put_nowait, item)

        def emit(delta: str) -> None:
            if closed.is_set():
                raise StreamClosed("the client closed the stream")
            put(("delta", delta))

        def work() -> None:
            try:
                reply, extra = serve(request_id, chat, backend, t_start, emit)
                put(("done", reply, extra, time.perf_counter()))
            except BaseException as exc:  # noqa: BLE001 - relayed to the client
                try:
                    put(("error", exc, None, time.perf_counter()))
                except RuntimeError:  # the event loop is gone (server shut down)
                    pass

        threading.Thread(target=work, name=f"harness-stream:{request_id[-8:]}", daemon=True).start()
        first = await events.get()
        if first[0] == "error":
            raise _as_api_error(first[1])
        maker = ChunkMaker(request_id, chat.model, chat.include_usage)

        async def body():
            shown: list[str] = []
            finished = False
            item = first
            try:
                yield maker.role()
                while True:
                    if item[0] == "delta":
                        shown.append(item[1])
                        yield maker.content(item[1])
                    elif item[0] == "done":
                        _, reply, extra, t_end = item
                        entry = succeeded(request_id, chat, t_start, t_end, reply, extra)
                        extensions = {"truncated_turns": reply.truncated_turns, "harness": {
                            "request_id": request_id, "latency_s": entry.latency_s, "ttft_s": reply.ttft_s, **extra}}
                        finished = True  # generation is complete: logged as served, whatever the socket does
                        record(entry)
                        for chunk in maker.closing(reply, "".join(shown), extensions):
                            yield chunk
                        return
                    else:
                        error = _as_api_error(item[1])
                        finished = True
                        record(failed(request_id, chat.model, t_start, error, True))
                        yield event(error.body())
                        yield DONE
                        return
                    item = await events.get()
            finally:
                if not finished:  # the client went away mid-stream
                    closed.set()
                    record(failed(request_id, chat.model, t_start,
                                  ApiError(499, "the client closed the stream"), True))

        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Unknown routes (404) and wrong methods (405), OpenAI-shaped instead of ``{"detail"}``."""
        if exc.status_code == 404:
            message, code = (f"unknown route {_request.method} {_request.url.path}; this server serves "
                             f"POST {CHAT_PATH}, GET /v1/models and GET /health"), "unknown_url"
        elif exc.status_code == 405:
            message, code = f"method {_request.method} is not allowed on {_request.url.path}", "method_not_allowed"
        else:
            message, code = str(exc.detail), None
        error = ApiError(exc.status_code, message, code=code)
        response = error.response()
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: 200 ``{"status": "ok"}`` while the server answers (no key needed)."""
        return {"status": "ok"}

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

    @app.post(CHAT_PATH)
    async def chat_completions(request: Request):
        t_start = time.perf_counter()
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        model, stream = "", False
        try:
            authorize(request)  # inside: a 401 is logged too (its body is not read: model "")
            try:
                body = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError) as exc:
                raise bad(f"the request body is not valid JSON: {exc}") from None
            model = body.get("model", "") if isinstance(body, dict) else ""
            stream = isinstance(body, dict) and body.get("stream") is True
            chat = parse_request(body)
            backend = backends.get(chat.model)
            if backend is None:
                raise ApiError(
                    404, f"The model {chat.model!r} does not exist (served: {', '.join(sorted(backends))})",
                    code="model_not_found", param="model",
                )
            if chat.stream:
                return await streamed(request_id, chat, backend, t_start)
            try:
                reply, extra = await run_in_threadpool(serve, request_id, chat, backend, t_start)
            except Exception as exc:  # a backend bug: report it, keep serving
                raise _as_api_error(exc) from None
        except ApiError as exc:
            record(failed(request_id, model, t_start, exc, stream))
            return exc.response()
        entry = succeeded(request_id, chat, t_start, time.perf_counter(), reply, extra)
        record(entry)
        extra = {"request_id": request_id, "latency_s": entry.latency_s, "ttft_s": reply.ttft_s, **extra}
        return JSONResponse(response_body(request_id, chat.model, reply, extra))

    return app
