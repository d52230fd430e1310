"""Streamed replies in OpenAI's ``chat.completion.chunk`` format (server-sent events).

A streamed reply is, in order (OpenAI API reference, "The chat completion chunk object"):

1. a role chunk: ``delta = {"role": "assistant", "content": ""}``;
2. content chunks: ``delta = {"content": "<text>"}``, sent as the backend emits them (for a
   :class:`~harness.serve.backend.VariantBackend`, as tokens are generated; see
   :mod:`harness.serve.textstream` for what is held back), then what the finished reply's
   ``content`` holds beyond them;
3. per tool call, a chunk with ``{"index", "id", "type": "function", "function": {"name",
   "arguments": ""}}`` in ``delta.tool_calls``, then one with its ``arguments`` (a JSON object
   string);
4. a final chunk with ``delta = {}`` and ``finish_reason``, carrying the body extensions of a
   non-streamed reply (``truncated_turns``, ``harness``);
5. with ``stream_options.include_usage``: a chunk with ``choices: []`` and ``usage`` (every
   earlier chunk then carries ``usage: null``);
6. ``data: [DONE]``.

An error after the stream has begun is sent as one ``data: {"error": {...}}`` event, then
``data: [DONE]``. The content deltas, joined and stripped, equal the non-streamed ``content``
(which is stripped): leading and trailing blanks of the model's text are streamed as written.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from harness.serve.protocol import ChatReply

logger = logging.getLogger("harness.serve")

DONE = "data: [DONE]\n\n"


def event(payload: dict[str, Any]) -> str:
    """One server-sent event holding ``payload`` as JSON."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class ChunkMaker:
    """Builds the chunks of one streamed reply (same ``id``, ``created`` and ``model`` throughout)."""

    def __init__(self, request_id: str, model: str, include_usage: bool):
        self.request_id, self.model, self.include_usage = request_id, model, include_usage
        self.created = int(time.time())

    def chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any) -> str:
        body: dict[str, Any] = {
            "id": self.request_id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": None,
            "choices": [] if delta is None else [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            body["usage"] = None
        body.update(extra)
        return event(body)

    def role(self) -> str:
        return self.chunk({"role": "assistant", "content": ""})

    def content(self, text: str) -> str:
        return self.chunk({"content": text})

    def closing(self, reply: ChatReply, shown: str, extensions: dict[str, Any]) -> list[str]:
        """The events after the streamed content: the rest of the content, the tool calls, the
        final chunk, the usage chunk (when asked) and ``[DONE]``."""
        out = []
        rest = remainder(shown, reply.content)
        if rest:
            out.append(self.content(rest))
        for i, call in enumerate(reply.tool_calls):
            head = {"index": i, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}
            out.append(self.chunk({"tool_calls": [head]}))
            out.append(self.chunk({"tool_calls": [{"index": i, "function": {"arguments": call["function"]["arguments"]}}]}))
        out.append(self.chunk({}, reply.finish_reason, **extensions))
        if self.include_usage:
            usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                     "total_tokens": reply.prompt_tokens + reply.completion_tokens}
            out.append(self.chunk(None, usage=usage))
        out.append(DONE)
        return out


def remainder(shown: str, content: str | None) -> str:
    """What to send after ``shown`` (the content deltas already sent) so that the joined deltas,
    stripped, equal ``content`` (``None`` = empty). Logs a warning and returns ``""`` when
    ``shown`` is not a beginning of ``content`` (a detokenizer whose text of a prefix is not a
    prefix of its text: the stream then differs from the reply)."""
    content = content or ""
    lead = shown.lstrip()
    if content.startswith(lead):
        return content[len(lead):]
    if lead.startswith(content) and not lead[len(content):].strip():
        return ""  # what was shown beyond the content is the reply's trailing blank
    logger.warning("streamed text %r is not a beginning of the reply's content %r", shown[:80], content[:80])
    return ""
