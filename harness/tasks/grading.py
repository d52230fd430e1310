"""Shared grading types and helpers: the Grade record, the \\boxed{} scanner, a thread-safe time limit.

Nothing here imports heavy packages; graders import what they need lazily.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")

__all__ = [
    "Grade",
    "GradeTimeout",
    "call_with_time_limit",
    "last_boxed",
    "last_boxed_span",
]


@dataclass(frozen=True)
class Grade:
    """Outcome of grading one model output against one reference.

    ``extracted`` is the answer string the grader pulled out of the output (None when nothing was
    found); ``reference`` is the gold answer compared against (None when the doc had none);
    ``reason`` is a short human string saying how the answer was found and what happened, such
    as ``"match (boxed)"``, ``"mismatch (answer phrase): 12 != 13"``, ``"timeout"``, or
    ``"error: ..."`` when the sample could not be graded (no usable reference). Stored as the
    sample columns ``extracted_answer``, ``reference``, ``correct`` and ``grade_reason``.
    """

    correct: bool
    extracted: str | None
    reference: str | None
    reason: str


# --------------------------------------------------------------------------------------------
# \boxed{...} scanner
# --------------------------------------------------------------------------------------------

# `\boxed` / `\fbox` not followed by another letter (so `\boxedfoo` is not a box).
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _balanced_group(text: str, open_pos: int) -> int | None:
    """Index of the `}` closing the `{` at ``open_pos``, or None when it is never closed.

    A backslash escapes the next character, so `\\{` and `\\}` are not structural (they are
    literal braces in LaTeX, e.g. the set `\\{1, 2\\}`).
    """
    depth = 0
    i = open_pos
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _box_content(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """Span (start, end) of the content of the box command matched by ``m``; None if malformed.

    Forms: `\\boxed{...}` (balanced braces, optional spaces before `{`) and `\\boxed 5` (the
    one token after the space, ending at whitespace or `$`, as in some MATH solutions).
    """
    j = m.end()
    n = len(text)
    k = j
    while k < n and text[k] in " \t":
        k += 1
    if k < n and text[k] == "{":
        close = _balanced_group(text, k)
        if close is None:
            return None
        return (k + 1, close)
    if k > j and k < n:  # `\boxed 5` form: needs at least one space
        end = k
        while end < n and not text[end].isspace() and text[end] != "$":
            end += 1
        if end > k:
            return (k, end)
    return None


def last_boxed_span(text: str) -> tuple[int, int] | None:
    """Span of the content of the last well-formed, non-empty `\\boxed{}` / `\\fbox{}` in ``text``.

    "Last" is by position of the command. Boxes whose brace is never closed (e.g. output cut
    off at the token limit) and empty boxes (an echoed "put your answer in \\boxed{}") are
    skipped, so the previous complete box wins. Nested boxes: the inner one starts later, so it
    wins.
    """
    if not text:
        return None
    for m in reversed(list(_BOX_RE.finditer(text))):
        span = _box_content(text, m)
        if span is not None and text[span[0] : span[1]].strip():
            return span
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last well-formed, non-empty `\\boxed{...}` (see ``last_boxed_span``), stripped."""
    span = last_boxed_span(text)
    if span is None:
        return None
    return text[span[0] : span[1]].strip()


# --------------------------------------------------------------------------------------------
# Time limit usable from any thread
# --------------------------------------------------------------------------------------------


class GradeTimeout(Exception):
    """A grading step ran past its time limit."""


class _TimeLimitExceeded(BaseException):
    """Injected into the worker thread. BaseException so that library ``except Exception``
    blocks (math-verify has many) cannot swallow it."""


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> int:
    # PyThreadState_SetAsyncExc(unsigned long id, PyObject *exc); exc=NULL clears a pending one.
    # No argtypes on purpose: with them, None would be passed as Py_None instead of NULL.
    obj = ctypes.py_object(exc) if exc is not None else None
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), obj)


def call_with_time_limit(fn: Callable[..., T], timeout_s: float | None, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in the calling thread, raising ``GradeTimeout`` past ``timeout_s``.

    Works in any thread (unlike ``signal.alarm``, which only works in the main thread and would
    also clobber other SIGALRM users such as pytest-timeout): a timer thread asynchronously
    raises an exception in the calling thread (``PyThreadState_SetAsyncExc``). Like a signal,
    that exception is delivered between Python bytecodes, so a single long C call (e.g. one huge
    big-integer power) finishes before it lands. ``timeout_s`` None or <= 0 means no limit.
    """
    if timeout_s is None or timeout_s <= 0:
        return fn(*args, **kwargs)

    tid = threading.get_ident()
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire() -> None:
        with lock:
            if not state["done"]:
                _set_async_exc(tid, _TimeLimitExceeded)
                state["fired"] = True

    def finish() -> None:
        state["done"] = True  # atomic; from here on fire() injects nothing
        timer.cancel()
        with lock:
            if state["fired"]:
                _set_async_exc(tid, None)  # drop an injected exception not delivered yet

    timer = threading.Timer(timeout_s, fire)
    timer.daemon = True
    try:
        timer.start()
        try:
            return fn(*args, **kwargs)
        finally:
            finish()
    except _TimeLimitExceeded:
        # The exception may have landed inside finish() before it completed; finish again
        # (idempotent, and nothing can be injected once ``done`` is set).
        while True:
            try:
                finish()
                break
            except _TimeLimitExceeded:
                continue
        raise GradeTimeout(f"time limit of {timeout_s:g} s exceeded") from None
