"""OpenAI chat messages → the prompt a served model reads.

Two tool formats:

* **native**: the tokenizer's chat template references ``tools`` (Qwen2.5, Llama 3.1,
  Hermes, ...). Messages and tools go to ``apply_chat_template(..., tools=...)`` as
  transformers expects them (tool-call ``arguments`` as dicts, ``tool`` turns kept).
* **fallback** (templates without tool support, e.g. the embedded SmolLM2's): the tools are
  described in the system message (:func:`tool_instructions`, Hermes-style
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks), earlier assistant
  tool calls are written back in that same format, and tool results become user turns
  wrapped in ``<tool_response>`` tags. Consecutive turns of one role are merged.

Either way: ``developer`` is read as ``system``, content-part lists are joined to text,
``content: null`` is ``""``. A conversation that starts with an assistant turn (τ²'s agent
greets first) is rendered as is; only when the template rejects it (roles must alternate)
is a placeholder user turn (:data:`CONVERSATION_START`) put before it.

A served variant's prompt transform (system prompt, NoThinking prefill; see
:class:`harness.adapters.reasoning_format.PromptTransform`) is applied to the converted
messages by the same code that builds its evaluation prompts, and truncation counts it.

Truncation (:func:`render`): when the prompt exceeds ``max_prompt_tokens`` the oldest
non-system turns are dropped one message at a time (tool results left without their call
go too) until it fits; the system messages and the latest turn always stay, and the number
of dropped messages is :attr:`Prompt.truncated_turns`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

CONVERSATION_START = "(The conversation starts.)"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


class PromptTooLong(ValueError):
    """Even the system messages plus the latest turn exceed the prompt budget (→ HTTP 400)."""


@dataclass
class Prompt:
    """A rendered prompt.

    Attributes:
        text: the templated prompt, generation prompt and ``prefill`` included.
        token_ids: its tokens (no special tokens added beyond the template's own).
        truncated_turns: messages dropped from the start of the conversation to fit.
        native_tools: the template's own tool format was used.
    """

    text: str
    token_ids: list[int]
    truncated_turns: int
    native_tools: bool


def template_supports_tools(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders a ``tools`` argument."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("tool_use") or template.get("default")
    return isinstance(template, str) and "tools" in template


def text_of(content: Any) -> str:
    """Message content as text: a string, ``None`` (→ ``""``) or a list of parts (text joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "\n".join(parts)


def arguments_of(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call's ``arguments`` as a dict (``{}`` when absent or not a JSON object)."""
    args = (call.get("function") or {}).get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return {}
    return args if isinstance(args, dict) else {}


def tool_instructions(tools: Sequence[dict[str, Any]], tool_choice: Any = "auto") -> str:
    """The fallback format's tool description, appended to the system message.

    ``tool_choice`` ``"required"`` or a function object adds a must-call sentence.
    """
    specs = "\n".join(
        json.dumps(
            {k: v for k, v in {"name": t["function"]["name"], "description": t["function"].get("description"),
                              "parameters": t["function"].get("parameters")}.items() if v is not None},
            ensure_ascii=False,
        )
        for t in tools
    )
    if isinstance(tool_choice, dict):
        must = f"You must call the function {tool_choice['function']['name']} now."
    elif tool_choice == "required":
        must = "You must call one of the functions now."
    else:
        must = "If no function call is needed, answer in plain text."
    return (
        "# Tools\n\nYou can call functions. They are described by these JSON schemas:\n<tools>\n"
        f"{specs}\n</tools>\n\nTo call a function, answer with only this block:\n"
        f'{CALL_OPEN}\n{{"name": "<function name>", "arguments": {{<arguments as a JSON object>}}}}\n{CALL_CLOSE}\n'
        f"{must}"
    )


def format_call(name: str, arguments: dict[str, Any]) -> str:
    """One call in the fallback format (what the model is asked to write)."""
    return f"{CALL_OPEN}\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n{CALL_CLOSE}"


def _fallback_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for m in messages:
        role = m["role"]
        text = text_of(m.get("content"))
        if role in ("system", "developer"):
            role = "system"
        elif role == "assistant":
            calls = [format_call((c.get("function") or {}).get("name", ""), arguments_of(c)) for c in m.get("tool_calls") or []]
            text = "\n".join(p for p in [text.strip(), *calls] if p)
        elif role in ("tool", "function"):
            role, text = "user", f"<tool_response>\n{text}\n</tool_response>"
        if out and out[-1]["role"] == role and role != "system":
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    return out


def _native_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        role = "system" if m["role"] == "developer" else ("tool" if m["role"] == "function" else m["role"])
        msg: dict[str, Any] = {"role": role, "content": text_of(m.get("content"))}
        if m.get("tool_calls"):
            msg["tool_calls"] = []
            for c in m["tool_calls"]:
                fn = c.get("function") or {}
                names[c.get("id")] = fn.get("name")
                msg["tool_calls"].append({"id": c.get("id"), "type": "function",
                                          "function": {"name": fn.get("name"), "arguments": arguments_of(c)}})
        if role == "tool":
            msg["tool_call_id"] = m.get("tool_call_id")
            if m.get("name") or names.get(m.get("tool_call_id")):
                msg["name"] = m.get("name") or names.get(m.get("tool_call_id"))
        out.append(msg)
    return out


def _with_system(messages: list[dict[str, Any]], extra: str) -> list[dict[str, Any]]:
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{extra}".strip()}, *messages[1:]]
    return [{"role": "system", "content": extra}, *messages]


def _template(tokenizer, messages: list[dict[str, Any]], transform, **kwargs) -> str:
    if transform is None:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    return transform.render(tokenizer, messages, **kwargs)


def _apply(tokenizer, messages: list[dict[str, Any]], tools, transform=None) -> str:
    kwargs = {"tools": tools} if tools else {}
    try:
        return _template(tokenizer, messages, transform, **kwargs)
    except Exception:  # e.g. "roles must alternate user/assistant": start with a user turn
        first = next((i for i, m in enumerate(messages) if m["role"] != "system"), len(messages))
        if first < len(messages) and messages[first]["role"] == "assistant":
            fixed = [*messages[:first], {"role": "user", "content": CONVERSATION_START}, *messages[first:]]
            return _template(tokenizer, fixed, transform, **kwargs)
        raise


def render(
    tokenizer,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
    max_prompt_tokens: int | None = None,
    prefill: str = "",
    native: bool | None = None,
    transform=None,
) -> Prompt:
    """Template ``messages`` (OpenAI dicts) for ``tokenizer``, dropping oldest turns to fit.

    The served variant's own prompt transform (``transform``, a
    :class:`harness.adapters.reasoning_format.PromptTransform`: its system prompt, its prefill)
    templates the converted messages exactly as evaluation does; the tool-call ``prefill``
    follows it.

    Args:
        tools: OpenAI tool specs to offer (``None``/empty, or ``tool_choice="none"``: none).
        tool_choice: ``auto``/``required``/``none``/a function object (phrasing of the fallback).
        max_prompt_tokens: token budget of the whole prompt (``None`` = no limit).
        prefill: text appended after the generation prompt (the start of the reply).
        native: force the native (True) or fallback (False) tool format; ``None`` = detect.
        transform: the variant's prompt transform (``None``: the bare chat template).

    Raises:
        PromptTooLong: system messages + the last turn alone exceed ``max_prompt_tokens``.
        ValueError: the template cannot render the conversation.
    """
    tools = tools if tools and tool_choice != "none" else None
    native = template_supports_tools(tokenizer) if native is None else native
    n_system = next((i for i, m in enumerate(messages) if m["role"] not in ("system", "developer")), len(messages))
    system, turns = list(messages[:n_system]), list(messages[n_system:])
    dropped = 0
    while True:
        kept = system + turns
        if native:
            chat, template_tools = _native_messages(kept), tools
        else:
            chat = _fallback_messages(kept)
            if tools:
                chat = _with_system(chat, tool_instructions(tools, tool_choice))
            template_tools = None
        try:
            text = _apply(tokenizer, chat, template_tools, transform) + prefill
        except Exception as exc:
            raise ValueError(f"the chat template cannot render this conversation: {type(exc).__name__}: {exc}") from None
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if max_prompt_tokens is None or len(ids) <= max_prompt_tokens:
            return Prompt(text, ids, dropped, native)
        if len(turns) <= 1:
            raise PromptTooLong(
                f"the prompt needs {len(ids)} tokens with only the system message(s) and the last turn; "
                f"the budget is {max_prompt_tokens} (model context minus max_tokens)"
            )
        turns.pop(0)
        dropped += 1
        while len(turns) > 1 and turns[0]["role"] in ("tool", "function"):  # results without their call
            turns.pop(0)
            dropped += 1
