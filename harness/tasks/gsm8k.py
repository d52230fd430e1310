"""GSM8K (openai/gsm8k, config main, test split; 1319 problems): exact numeric grading.

Extraction (:func:`extract_answer`):

1. cut an invented continuation: a new ``Question:`` / ``Q:`` turn the model made up after its
   answer (its ``#### 3`` is not the answer);
2. the last explicit final answer of what remains, by position (:mod:`harness.tasks.answers`):
   ``\\boxed{...}`` (its one number, else its last number), an answer phrase (``The final answer
   is 18``, ``**Final answer:** 18``, ``Answer: 18``) or a ``#### 18`` line (the number after the
   last ``=``, else the first number);
3. else the last number in the text, except in an output cut at the token cap
   (``truncated``, ``finish_reason == "length"``): there a last number is where the model stopped,
   not an answer, and it gets no credit; neither does a final answer the cap cut through: its
   number ends the output (``#### 4`` may be ``#### 45`` cut short) or it leaves a brace open
   (``Final answer: \\boxed{16 *``).

LaTeX thousands separators (``12{,}400``, ``12\\,400``, ``10,\\!080``) are read as commas anywhere in
the output. Both sides are compared as exact rationals after normalization, so "18", "18.0",
"$18.00", "\\boxed{18}" all match 18 and "1,000" matches 1000.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from harness.tasks.answers import cut_invented_turn, final_answer
from harness.tasks.grading import Grade
from harness.tasks.registry import register_task
from harness.tasks.spec import TaskSpec

__all__ = [
    "TASK",
    "extract_answer",
    "format_number",
    "grade_gsm8k",
    "last_number",
    "normalize_thousands",
    "parse_number",
    "reference_from_answer",
]

# Longer than any sane numeric answer; guards Fraction/int against pathological strings.
_MAX_NUMBER_CHARS = 200

# A number in running text: thousands-grouped ("1,234,567.5") or plain ("1234", "3.5", ".5").
# The sign is captured separately and only honoured when the '-' is not a binary minus.
_NUMBER_IN_TEXT_RE = re.compile(
    r"(?P<sign>-)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]\d)|\d+(?:\.\d+)?|\.\d+)"
)
_PLAIN_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")
_GROUPED_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_LATEX_FRAC_RE = re.compile(r"(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}")
_SLASH_FRAC_RE = re.compile(r"(-?\d+)/(-?\d+)")
# \text{...}-like wrappers whose content we keep (units, "dollars", ...).
_TEXT_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")


def _clean(text: str) -> str:
    """Strip LaTeX/currency/percent decoration around a number."""
    s = text
    for _ in range(3):  # nested wrappers, e.g. \textbf{\text{18}}
        s = _TEXT_WRAPPER_RE.sub(r" \1 ", s)
    s = s.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", " ")
    s = s.replace("\\$", " ").replace("$", " ").replace("\\%", " ").replace("%", " ")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", " ", s)
    s = s.replace("\\left", "").replace("\\right", "")
    return s.strip()


def parse_number(text: str) -> Fraction | None:
    """Exact value of a string that is one number, after normalization; None if it is not one.

    Accepts "18", "-3", "18.00", "$1,000", "1{,}000", "25\\%", "18.", "\\frac{3}{4}", "3/4", "\\$18".
    """
    if text is None:
        return None
    s = _clean(text).replace(" ", "")
    if not s or len(s) > _MAX_NUMBER_CHARS:
        return None
    s = s.rstrip(".")
    if _GROUPED_RE.fullmatch(s):
        s = s.replace(",", "")
    try:
        if _PLAIN_NUMBER_RE.fullmatch(s):
            return Fraction(Decimal(s))
        m = _LATEX_FRAC_RE.fullmatch(s)
        if m:
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return -value if m.group(1) else value
        m = _SLASH_FRAC_RE.fullmatch(s)
        if m:
            return Fraction(int(m.group(1)), int(m.group(2)))
    except (ValueError, ZeroDivisionError, ArithmeticError):
        return None
    return None


def format_number(value: Fraction) -> str:
    """Canonical text of an exact value: "18", "-3", "0.25", or "1/3" when no finite decimal exists."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:
        text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value.numerator}/{value.denominator}"


def _last_number_match(text: str) -> tuple[str, int] | None:
    """(number text, end offset) of the last number in ``text``; see ``last_number``."""
    last: re.Match[str] | None = None
    for last in _NUMBER_IN_TEXT_RE.finditer(text):
        pass
    if last is None:
        return None
    num = last.group("num")
    if last.group("sign"):
        before = text[: last.start()].rstrip()
        # "16-3", "x - 3", ") - 3" are subtractions; "= -3", "is -3", "$-3" or start of text are signs.
        if not before or not (before[-1].isalnum() or before[-1] in ")]}"):
            num = "-" + num
    return num, last.end()


def last_number(text: str) -> str | None:
    """The last number in running text (thousands commas kept; a '-' counts only when it is unary)."""
    if not text:
        return None
    m = _last_number_match(text)
    return m[0] if m else None


def _number_in_boxed(content: str) -> Fraction | None:
    """Value of a \\boxed{} content: the whole content if it is one number, else its last number."""
    cleaned = _clean(content)
    value = parse_number(cleaned)
    if value is not None:
        return value
    # e.g. "18 \\text{ dollars}", "x = 5", "2 \\times 9 = 18", "\\frac{3}{4} \\text{ cup}": the last number.
    candidates: list[tuple[int, Fraction]] = []
    for m in _LATEX_FRAC_RE.finditer(cleaned):
        v = parse_number(m.group(0))
        if v is not None:
            candidates.append((m.end(), v))
    m2 = _last_number_match(cleaned)
    if m2 is not None:
        v = parse_number(m2[0])
        if v is not None:
            candidates.append((m2[1], v))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0])[1]


def _number_after_phrase(content: str) -> Fraction | None:
    """Value of what follows an answer phrase or ``####``: the whole text if it is one number,
    else the first number after its last ``=`` (``5 + 3 = 8`` → 8), else its first number
    (``18 cupcakes, 2 more than 16`` → 18)."""
    cleaned = _clean(content)
    value = parse_number(cleaned)
    if value is not None:
        return value
    if "=" in cleaned:
        cleaned = cleaned.rsplit("=", 1)[1]
    candidates: list[tuple[int, Fraction]] = []
    m = _LATEX_FRAC_RE.search(cleaned)
    if m and (v := parse_number(m.group(0))) is not None:
        candidates.append((m.start(), v))
    for m in _NUMBER_IN_TEXT_RE.finditer(cleaned):
        num = ("-" + m.group("num")) if m.group("sign") and not cleaned[: m.start()].strip() else m.group("num")
        if (v := parse_number(num)) is not None:
            candidates.append((m.start(), v))
        break
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


# A thousands separator written the LaTeX / typographic way between digit groups: 12{,}400,
# 12\,400, 10,\!080, 12\!400, thin / narrow no-break / no-break spaces. Becomes a plain comma.
_LATEX_THOUSANDS_RE = re.compile(r"(?<=\d)(?:\{,\}|,\\!|\\,|\\!|\\ |[\u2009\u202f\u00a0])(?=\d{3}(?!\d))")


def normalize_thousands(text: str) -> str:
    """``text`` with LaTeX / typographic thousands separators between digits made plain commas
    (``12{,}400`` → ``12,400``), so a number written that way is read whole, not as its last group."""
    return _LATEX_THOUSANDS_RE.sub(",", text)


def _cut_through(text: str, value: Fraction) -> bool:
    """The answer ``value`` is the number the output ends on (the token cap may have cut it)."""
    m = _last_number_match(text)
    return m is not None and m[1] == len(text) and parse_number(m[0]) == value


def extract_answer(output_text: str, truncated: bool = False) -> tuple[Fraction | None, str | None, str]:
    """(value, extracted text, how) from a model output; value None when nothing usable was found.

    Order: cut an invented new ``Question:`` / ``Q:`` turn (:func:`harness.tasks.answers.cut_invented_turn`);
    then the last explicit final answer of what remains (a box, an answer phrase or ``#### n``,
    :func:`harness.tasks.answers.final_answer`); else, only when the output was not ``truncated``
    at the token cap, the last number in the text. ``how`` is ``"boxed"``, ``"answer phrase"``,
    ``"####"`` or ``"last number"``, or a failure reason.
    """
    text = normalize_thousands(cut_invented_turn(output_text or ""))
    marked = final_answer(text)
    if marked is not None:
        value = _number_in_boxed(marked.text) if marked.how == "boxed" else _number_after_phrase(marked.text)
        if value is None:
            where = "\\boxed{}" if marked.how == "boxed" else f"the final answer ({marked.how})"
            return None, marked.text[:_MAX_NUMBER_CHARS], f"no number in {where}"
        if truncated and (not marked.closed or (not marked.complete and _cut_through(text, value))):
            return None, format_number(value), f"truncated at the token cap inside its final answer ({marked.how}; not credited)"
        return value, format_number(value), marked.how
    raw = last_number(text)
    if raw is None:
        return None, None, "no \\boxed{}, final-answer phrase, #### or number found"
    if truncated:
        return None, None, (f"truncated at the token cap with no explicit final answer "
                            f"(last number {raw[:40]} not credited)")
    value = parse_number(raw)
    if value is None:  # e.g. a 5000-digit number
        return None, raw[:_MAX_NUMBER_CHARS], "unparsable number"
    return value, format_number(value), "last number"


def reference_from_answer(answer: str) -> str:
    """The number after the last ``####`` of a GSM8K ``answer`` field, commas stripped."""
    if "####" not in answer:
        raise ValueError("GSM8K answer has no '####' line")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def grade_gsm8k(output_text: str, reference: str, truncated: bool = False) -> Grade:
    """Exact numeric comparison of the extracted answer with the reference number. Never raises.

    ``truncated``: the output stopped at the token cap (``finish_reason == "length"``); then only
    an explicit final answer counts (see :func:`extract_answer`). An unparsable reference is a
    per-sample ``error: ...`` reason.
    """
    try:
        ref_value = parse_number(reference)
        if ref_value is None:
            return Grade(False, None, reference, f"error: unparsable reference: {reference!r}")
        value, extracted, how = extract_answer(output_text, truncated=truncated)
        if value is None:
            return Grade(False, extracted, reference, how)
        if value == ref_value:
            return Grade(True, extracted, reference, f"match ({how})")
        return Grade(False, extracted, reference, f"mismatch ({how}): {extracted} != {format_number(ref_value)}")
    except Exception as e:  # never raise out of a grader
        return Grade(False, None, reference, f"grader error: {type(e).__name__}: {e}")


TASK = register_task(TaskSpec(
    name="gsm8k",
    version="1.1",  # 1.1: answer phrases and ####, invented turns cut, LaTeX thousands, no last-number credit when truncated
    description="GSM8K test set (1319 grade-school math word problems), zero-shot chain of thought, "
    "answer in \\boxed{}, exact numeric match.",
    data_relpath="gsm8k/test.jsonl",
    hub_id="openai/gsm8k",
    hub_config="main",
    hub_split="test",
    size=1319,
    prompt_template="Solve the following math problem step by step. Put your final answer in \\boxed{}.\n\n{question}",
    question_field="question",
    required_fields=("question", "answer"),
    reference_fn=lambda doc: reference_from_answer(doc["answer"]),
    grade_fn=grade_gsm8k,
))
