"""Tool calls out of model text.

:func:`parse_tool_calls` finds calls written in any of the common shapes, first match wins:

1. ``<tool_call>{...}</tool_call>`` blocks (Hermes/Qwen; the closing tag may be missing);
2. fenced code blocks (```` ```json {...} ``` ````);
3. bare JSON objects or lists anywhere in the text (Llama 3.1 style).

Inside, an object is a call when it names a function: ``{"name", "arguments"}`` (also
``parameters``/``args``/``input``), ``{"tool", "args"}``, ``{"function": {"name",
"arguments"}}`` (OpenAI-shaped), ``{"tool_calls": [...]}``, or a list of those. Arguments
given as a JSON string are decoded; anything that is not a JSON object becomes ``{}``; the
result is always re-serialized as a JSON *object* string. JSON cut off by the token cap is
repaired by closing its open strings and brackets.

Names: an exact tool name is kept; a near miss (case, ``-``/``_``, difflib ratio ≥ 0.8) is
corrected to the tool; any other name is passed through unchanged, so the environment
answers "unknown tool" to the agent as it would for any model. With ``strict=True`` (what the
server uses under ``tool_choice`` ``auto``) only calls to an offered tool count: inside
``<tool_call>`` tags after near-miss correction, elsewhere by exact name; other objects stay
content. Objects whose arguments are
a JSON schema (``type`` + ``properties``) are tool specs echoed from the prompt, not calls.
"""

from __future__ import annotations

import difflib
import json
import re
import uuid
from typing import Any, Sequence

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```(?:json|tool_call|javascript)?\s*\n?(.*?)(?:```|$)", re.S)
_ARG_KEYS = ("arguments", "parameters", "args", "input", "tool_input", "kwargs")


def close_json(text: str) -> str:
    """``text`` with its unterminated string and open ``{``/``[`` closed (a JSON repair)."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    out = text + ('"' if in_string else "")
    out = re.sub(r"[,:\s]+$", "", out)  # a dangling separator
    return out + "".join(reversed(stack))


def loads_lenient(text: str) -> Any:
    """``json.loads``, else the first JSON value at the start, else the repaired text; ``None`` on failure."""
    text = text.strip()
    decoder = json.JSONDecoder(strict=False)  # raw newlines/tabs inside strings are accepted
    for candidate in (text, close_json(text)):
        try:
            return decoder.decode(candidate)
        except ValueError:
            pass
        try:
            return decoder.raw_decode(candidate)[0]
        except ValueError:
            pass
    return None


def longest_object(text: str) -> dict | None:
    """The JSON object made of the longest prefix of ``text`` that parses once repaired (text
    after a string's closing quote that breaks the JSON is dropped); ``None`` when none does."""
    text = text.strip()
    decoder = json.JSONDecoder(strict=False)
    for end in range(len(text), 0, -1):
        try:
            value = decoder.decode(close_json(text[:end]))
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _as_calls(value: Any) -> list[tuple[str, Any]]:
    """(name, raw arguments) pairs found in a decoded JSON value."""
    if isinstance(value, list):
        return [c for item in value for c in _as_calls(item)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("tool_calls"), list):
        return _as_calls(value["tool_calls"])
    fn = value.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return [(fn["name"], next((fn[k] for k in _ARG_KEYS if k in fn), {}))]
    for key in ("name", "tool", "tool_name", "function"):
        if isinstance(value.get(key), str) and value[key].strip():
            args = next((value[k] for k in _ARG_KEYS if k in value), {})
            if isinstance(args, dict) and "properties" in args and "type" in args:
                return []  # a tool *spec* echoed from the prompt, not a call
            return [(value[key].strip(), args)]
    return []


def arguments_json(raw: Any) -> str:
    """Arguments as a JSON object string (``"{}"`` when they are not an object)."""
    if isinstance(raw, str):
        raw = loads_lenient(raw) if raw.strip() else {}
    return json.dumps(raw if isinstance(raw, dict) else {}, ensure_ascii=False)


def match_name(name: str, tool_names: Sequence[str], cutoff: float = 0.8) -> str:
    """``name`` corrected to the closest of ``tool_names`` at difflib ratio ≥ ``cutoff``
    (after case and ``-``/``_``/space folding), else unchanged; ``cutoff=0`` always picks one."""
    if name in tool_names or not tool_names:
        return name
    fold = lambda s: re.sub(r"[\s\-]+", "_", s.strip().lower())  # noqa: E731
    folded = {fold(t): t for t in tool_names}
    if fold(name) in folded:
        return folded[fold(name)]
    close = difflib.get_close_matches(fold(name), list(folded), n=1, cutoff=cutoff)
    if close:
        return folded[close[0]]
    return tool_names[0] if cutoff <= 0 else name


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def openai_call(name: str, raw_arguments: Any) -> dict[str, Any]:
    """An OpenAI ``tool_calls`` entry with a fresh id."""
    return {"id": new_call_id(), "type": "function", "function": {"name": name, "arguments": arguments_json(raw_arguments)}}


def _bare_values(text: str, accept=None) -> list[tuple[int, int, Any]]:
    accept = accept or _as_calls
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        j = min((k for k in (text.find("{", i), text.find("[", i)) if k >= 0), default=-1)
        if j < 0:
            break
        try:
            value, end = decoder.raw_decode(text, j)
        except ValueError:
            value = loads_lenient(text[j:]) if j == text.find("{", i) else None
            end = len(text) if value is not None else j + 1
        if accept(value):
            out.append((j, end, value))
            i = end
        else:
            i = j + 1
    return out


def parse_tool_calls(
    text: str, tool_names: Sequence[str], strict: bool = False
) -> tuple[str | None, list[dict[str, Any]]]:
    """Split model output into (content, OpenAI ``tool_calls``).

    Args:
        text: the model's output (any prefill included).
        tool_names: names of the offered tools (for name correction).
        strict: accept only calls to an offered tool (``tool_choice`` ``auto``): a name inside
            ``<tool_call>`` tags must match a tool (near misses corrected), a name in a fenced
            block or bare JSON must *be* one, exactly; any other object stays content (a reply
            quoting ``{"name": "John Smith", ...}`` is not a call to a tool ``John Smith``).
            When false (``required``), every call is kept and names are matched as described
            in the module docstring.

    Returns:
        ``(content, calls)``: ``content`` is the text outside the call blocks, stripped, or
        ``None`` when empty; ``calls`` is empty when no call was found (then ``content`` is
        the whole text).
    """

    def named(exact: bool):
        def ok(name: str) -> bool:
            return name in tool_names if exact else match_name(name, tool_names) in tool_names

        return lambda value: [(n, a) for n, a in _as_calls(value) if not strict or ok(n)]

    spans: list[tuple[int, int, Any]] = []
    accept = _as_calls
    for pattern, exact in ((_TAGGED, False), (_FENCED, True)):
        accept = named(exact)
        for m in pattern.finditer(text):
            value = loads_lenient(m.group(1))
            if accept(value):
                spans.append((m.start(), m.end(), value))
        if spans:
            break
    if not spans:
        accept = named(True)
        spans = _bare_values(text, accept)
    calls = [openai_call(match_name(name, tool_names), args) for _, _, v in spans for name, args in accept(v)]
    if not calls:
        return (text.strip() or None), []
    rest, last = [], 0
    for start, end, _ in spans:
        rest.append(text[last:start])
        last = end
    rest.append(text[last:])
    content = "".join(rest).strip()
    return (content or None), calls


_NAME_PREFIX = re.compile(r'"(?:name|tool)"\s*:\s*"([^"]*)"?')


def forced_call(text: str, tool_names: Sequence[str], forced_name: str | None = None) -> dict[str, Any]:
    """A call made from text that should be one but did not parse (``tool_choice`` required).

    The name is ``forced_name``, else the first ``"name": "..."`` in ``text`` matched to the
    closest tool (the first tool when there is none); the arguments are the first JSON
    object after ``"arguments":`` (repaired; else its longest prefix that parses, see
    :func:`longest_object`), else ``{}``.
    """
    name = forced_name
    if name is None:
        m = _NAME_PREFIX.search(text)
        name = match_name(m.group(1) if m else "", tool_names, cutoff=0.0)
    args: Any = {}
    m = re.search(r'"(?:arguments|parameters|args)"\s*:\s*', text)
    if m:
        args = loads_lenient(text[m.end():])
        if not isinstance(args, dict):
            args = longest_object(text[m.end():]) or {}
    return openai_call(name, args)
