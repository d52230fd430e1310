"""The seam between the OpenAI-compatible server and what it serves.

A *backend* answers one chat-completion request for one served model name (a harness
variant, the user simulator, a scripted test fixture). The server (:mod:`harness.serve.app`)
parses the OpenAI request body into a :class:`ChatRequest`, calls ``backend.complete`` (one
request at a time per backend unless the backend says it is thread-safe), times it, and turns
the :class:`ChatReply` into the OpenAI response body. Every served request leaves a
:class:`RequestRecord` in the server's :class:`RequestLog`, which the agent cells
(:mod:`harness.agents`) read to attribute tokens, time and energy to τ² tasks.

Wire format followed: OpenAI Chat Completions API (``POST /v1/chat/completions``): every field
that changes the output is implemented or refused (:mod:`harness.serve.parse`), and replies
stream as ``chat.completion.chunk`` events when asked (:mod:`harness.serve.sse`).

Streaming seam: a backend with a true ``streams`` attribute is called as
``complete(request, emit=emit)`` and calls ``emit(text)`` from its own thread with each piece of
the reply's content as soon as it is safe to show (no part of a stop string, nothing that may
turn into a tool call); the joined pieces, stripped, are a prefix of the final ``content``. The
app completes the stream from the returned :class:`ChatReply`. ``emit`` raises
:class:`StreamClosed` once the client has gone, which ends the decode early. A backend without
``streams`` is called as ``complete(request)`` and its reply streams in one piece at the end.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class StreamClosed(Exception):
    """Raised by a streaming ``emit`` when the client closed the stream (the decode stops)."""


@dataclass
class ChatRequest:
    """One parsed ``/v1/chat/completions`` request.

    Attributes:
        model: the served model name (selects the backend).
        messages: OpenAI message dicts as sent (``role`` in system/user/assistant/tool;
            assistant turns may carry ``tool_calls`` and no ``content``; tool turns carry
            ``tool_call_id``).
        tools: OpenAI tool specs (``{"type": "function", "function": {name, description,
            parameters}}``), or ``None``.
        tool_choice: ``"auto"``, ``"required"``, ``"none"``, a ``{"type": "function", ...}``
            dict, or ``None`` (= auto when tools are given).
        max_tokens: cap on completion tokens (``max_completion_tokens`` is folded in), or ``None``.
        temperature: sampling temperature; ``0``/``None`` = greedy.
        seed: sampling seed, or ``None``.
        top_p: nucleus sampling mass in ``(0, 1]`` (``None`` = 1); unused when greedy.
        stop: stop strings (at most 4): the content ends before the first one written
            (``finish_reason="stop"``); empty = none.
        stream: the client asked for ``stream: true`` (the app's concern; backends may ignore it).
        include_usage: ``stream_options.include_usage``: a last chunk carries ``usage``.
    """

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False


@dataclass
class ChatReply:
    """A backend's answer.

    Attributes:
        content: assistant text, or ``None`` when the reply is only tool calls.
        tool_calls: OpenAI-shaped calls: ``{"id", "type": "function", "function": {"name",
            "arguments"}}`` with ``arguments`` a JSON *object* string.
        finish_reason: ``"stop"``, ``"length"`` or ``"tool_calls"``.
        prompt_tokens: tokens of the prompt the model actually read (after truncation).
        completion_tokens: tokens generated.
        ttft_s: time to first token in s (``None`` when nothing was generated or unknown).
        truncated_turns: oldest turns dropped to fit the model's context (0 = none).
    """

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    truncated_turns: int = 0


class ChatBackend(Protocol):
    """What the server serves under one model name."""

    def complete(self, request: ChatRequest) -> ChatReply:
        """Answer ``request``. Raises ``ValueError`` for a request it cannot serve (→ HTTP 400).

        A backend with ``streams = True`` also takes ``emit`` (see the module docstring)."""
        ...


@dataclass
class RequestRecord:
    """One served request, as logged by the server (times on ``time.perf_counter``'s clock, s).

    ``energy_j``/``energy_source`` come from the request's telemetry window (source
    ``unavailable`` and ``None`` when there was none); they are measured per request, and only
    become *attributed* when summed into a task.

    ``t_start`` is when the server began handling the request (before waiting for the
    backend's lock), ``queue_s`` the wait for that lock, ``latency_s = t_end - t_start``
    (queue included); ``ttft_s`` is the decode loop's (from the start of the request's first
    prefill to its first generated token, whichever of the request's decodes wrote it: queue,
    templating and tokenization excluded). ``stream`` says the reply was streamed; ``status``
    499 is a stream the client closed before its end.
    """

    request_id: str
    served_model: str
    t_start: float
    t_end: float
    latency_s: float
    ttft_s: float | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    n_tool_calls: int
    truncated_turns: int
    energy_j: float | None = None
    energy_source: str = "unavailable"
    status: int = 200
    error: str | None = None
    queue_s: float = 0.0
    stream: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Thread-safe, append-only list of :class:`RequestRecord` (optionally mirrored to JSONL)."""

    def __init__(self, jsonl_path=None) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self.jsonl_path = jsonl_path

    def add(self, record: RequestRecord) -> None:
        import json

        with self._lock:
            self._records.append(record)
            if self.jsonl_path is not None:
                with open(self.jsonl_path, "a") as f:
                    f.write(json.dumps(record.as_dict()) + "\n")

    def records(self, served_model: str | None = None, t0: float | None = None, t1: float | None = None) -> list[RequestRecord]:
        """Records of ``served_model`` (all when ``None``) that started in ``[t0, t1]``."""
        with self._lock:
            out = list(self._records)
        return [
            r for r in out
            if (served_model is None or r.served_model == served_model)
            and (t0 is None or r.t_start >= t0)
            and (t1 is None or r.t_start <= t1)
        ]
