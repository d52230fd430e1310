"""Where a model output states its final answer: ``\\boxed{}``, an explicit answer phrase, ``#### n``.

Shared by the MATH and GSM8K graders. Markers, in three tiers, strongest first:

* ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed 7`` (:func:`harness.tasks.grading.last_boxed_span`);
* then a final-answer phrase: ``final answer is|:|=`` (any case, markdown emphasis allowed:
  ``**Final answer:** 12``, ``Final Answer: The final answer is $(2,4)$. I hope it is correct.``
  — the second phrase is the later one) or ``Answer:`` at the start of a line;
  or ``#### n`` (GSM8K's own answer line; only when what follows starts like a number, so a
  markdown ``#### Step 1`` heading is not one);
* then an answer phrase in running text: ``the|my|our [correct] answer is``, counted only when
  what follows holds a digit or is a ``$...$`` group (``our answer is correct`` is not an answer).

What follows a phrase or ``####`` is the answer: the first ``$...$`` / ``$$...$$`` / ``\\(...\\)``
/ ``\\[...\\]`` group right after it, else the rest of the line up to the end of the sentence (a
``.`` followed by a space or the end); a phrase with nothing after it is not a marker.

An output's final answer is the **last marker by position of the strongest tier it has** (a
later marker of a tier is the model's correction of an earlier one). A box outranks the phrases
because phrases also occur in prose after a boxed answer (a MATH solution ends
``...=\\boxed{\\frac{130}{231}}. The final answer is positive, because ...``; another ``... so our
answer is correct``). Never "the last number in the text": that is a guess, not a stated answer
(GSM8K's grader keeps it as its own fallback for untruncated outputs; MATH has none).

:func:`cut_invented_turn` removes a continuation the model invented after its answer (a new
``Question:`` / ``Q:`` turn at the start of a line, as base models do when they keep writing
few-shot examples), so a ``#### 3`` inside the invented turn is never taken for the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.tasks.grading import last_boxed_span

__all__ = ["FinalAnswer", "cut_invented_turn", "final_answer"]

# Strong: "final answer" then is / : / = (markdown emphasis between them allowed), or "Answer:"
# at a line start. Weak: "the answer is". The trailing class eats ":", spaces and emphasis.
_PHRASE_RE = re.compile(
    r"(?:(?P<strong>\bfinal\s+answer\b[\s*_]*(?:is\b|:|=)|(?:^|(?<=\n))[ \t>#*_]*answer[\s*_]*:)"
    r"|(?P<weak>\b(?:the|my|our)\s+(?:correct\s+)?answer\s+is\b))"
    r"[ \t*_:]*",
    re.IGNORECASE,
)
_HASH_RE = re.compile(r"####[ \t]*(?=[-+$\\\d.])")  # "#### 18", "#### $1,000"; not a "#### Step 1" heading
_INVENTED_TURN_RE = re.compile(r"\n[ \t]*(?:#+[ \t]*)?[*_]*(?:Question|Q)[*_]*[ \t]*:", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
_UNCLOSED_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_MATH_OPENERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


@dataclass(frozen=True)
class FinalAnswer:
    """The last explicit final answer of an output.

    ``text``: the answer as written (box content, or what follows the phrase / ``####``),
    stripped; ``start``: offset of its marker in the output; ``how``: ``"boxed"``,
    ``"answer phrase"`` or ``"####"``; ``complete``: False when the answer runs to the very end of
    the output unfinished (``#### 4`` at the end may be a ``#### 45`` cut at the token cap; ``\\boxed{200``
    leaves its brace open); a closed box or ``$...$`` group, a closing character (``.``, ``)``,
    ``}``, a space...) or anything after the answer makes it complete.
    """

    text: str
    start: int
    how: str
    complete: bool = True
    closed: bool = True  # False: the answer leaves a brace open (``Final answer: \\boxed{16 *`` at the cap)


def cut_invented_turn(text: str) -> str:
    """``text`` up to the first line that opens an invented new turn (``Question:`` / ``Q:``,
    any case, markdown heading or emphasis allowed) after some non-blank text; unchanged when
    there is none. A turn at the very start (the model restating the question) is not cut."""
    for m in _INVENTED_TURN_RE.finditer(text or ""):
        if text[: m.start()].strip():
            return text[: m.start()]
    return text or ""


def _find_closing(text: str, start: int, closer: str) -> int:
    """Index of ``closer`` at or after ``start``, skipping backslash-escaped characters; -1 if none."""
    i, n = start, len(text)
    while i < n:
        if text[i] == "\\" and not closer.startswith("\\"):
            i += 2
            continue
        if text.startswith(closer, i):
            return i
        i += 1
    return -1


_DONE_CHARS = frozenset(".,;:!?)]}$*\"' \t\n")  # an answer segment ending on one of these was finished


def _ends_output(text: str, start: int, end: int) -> bool:
    """The answer segment ``text[start:end]`` runs into the end of the output unfinished: it
    reaches the end and its last character is not a closing one (a digit or letter, ``{``, an
    operator), or it leaves a ``{`` open (``\\boxed{200`` cut by the token cap)."""
    if end < len(text):
        return False
    segment = text[start:end]
    return not segment or segment[-1] not in _DONE_CHARS or segment.count("{") > segment.count("}")


def _after_marker(text: str, pos: int) -> tuple[str, bool, bool, bool]:
    """(answer, complete, closed, in a math group) written right after a marker ending at ``pos``
    (see the module docstring and :class:`FinalAnswer`)."""
    rest = text[pos:]
    stripped = rest.lstrip(" \t")
    offset = pos + len(rest) - len(stripped)
    for opener, closer in _MATH_OPENERS:
        if stripped.startswith(opener):
            close = _find_closing(text, offset + len(opener), closer)
            if close != -1 and "\n\n" not in text[offset:close]:
                return text[offset + len(opener) : close].strip(), True, True, True
            break  # unclosed (e.g. cut at the token cap): read the line as plain text
    line = stripped.split("\n", 1)[0]
    m = _SENTENCE_END_RE.search(line)
    if m:
        line = line[: m.start()]
    answer = line.strip().strip("*_").strip().rstrip(".").strip().strip("$").strip()
    unclosed = _UNCLOSED_BOX_RE.match(answer)  # "Final answer: \boxed{200" (a closed box is the box tier)
    if unclosed:
        answer = answer[unclosed.end():].strip()
    closed = line.count("{") <= line.count("}")
    return answer, not _ends_output(text, offset, offset + len(line)), closed, False


def final_answer(text: str, hash_marker: bool = True) -> FinalAnswer | None:
    """The final answer of ``text``: the last marker of the strongest tier it has (box; final-answer
    phrase, ``Answer:`` or ``####``; ``the answer is``), see the module docstring; None when none.

    Args:
        text: a model output.
        hash_marker: count ``#### n`` lines as markers (GSM8K's answer format).
    """
    if not text:
        return None
    span = last_boxed_span(text)
    if span is not None:
        # the marker is the box command before the content ("\boxed{" or "\boxed ")
        start = text.rfind("\\", 0, span[0])
        return FinalAnswer(text[span[0] : span[1]].strip(), max(start, 0), "boxed",
                           not _ends_output(text, span[0], span[1]))  # `\boxed 7` form at the very end
    strong: list[FinalAnswer] = []
    weak: list[FinalAnswer] = []
    markers = [(m, "answer phrase", m.group("weak") is None) for m in _PHRASE_RE.finditer(text)]
    if hash_marker:
        markers += [(m, "####", True) for m in _HASH_RE.finditer(text)]
    for m, how, is_strong in markers:
        answer, complete, closed, in_math = _after_marker(text, m.end())
        if not answer:
            continue
        if is_strong:
            strong.append(FinalAnswer(answer, m.start(), how, complete, closed))
        elif in_math or any(ch.isdigit() for ch in answer):
            weak.append(FinalAnswer(answer, m.start(), how, complete, closed))
    found = strong or weak
    return max(found, key=lambda a: a.start) if found else None
