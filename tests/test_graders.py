"""Graders: \\boxed{} scanner, number normalization, GSM8K and MATH-500 grading, time limits.

The oracle tests grade every gold solution of the real data files as if it were a model output
(must be all correct) and perturbed versions of them (must be all incorrect).
"""

from __future__ import annotations

import re
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from harness.tasks import Grade, get_task, grade
from harness.tasks.grading import GradeTimeout, call_with_time_limit, last_boxed, last_boxed_span
from harness.tasks.gsm8k import extract_answer, format_number, grade_gsm8k, last_number, parse_number
from harness.tasks.math500 import grade_math500

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def data_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    if not (SHARED_DATA / "gsm8k" / "test.jsonl").is_file() or not (SHARED_DATA / "math" / "math500_test.jsonl").is_file():
        pytest.skip(f"benchmark data not found under {SHARED_DATA} (needs gsm8k/test.jsonl and math/math500_test.jsonl)")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(SHARED_DATA))
    return SHARED_DATA


def _replace_last_boxed(text: str, new_content: str) -> str:
    span = last_boxed_span(text)
    assert span is not None, text
    return text[: span[0]] + new_content + text[span[1] :]


# ----------------------------------------------------------------------------------------------
# \boxed{} scanner
# ----------------------------------------------------------------------------------------------


class TestLastBoxed:
    def test_simple(self):
        assert last_boxed(r"so the answer is $\boxed{42}$.") == "42"

    def test_nested_braces(self):
        assert last_boxed(r"$\boxed{\frac{1}{2}}$") == r"\frac{1}{2}"
        assert last_boxed(r"\boxed{\left( 3, \frac{\pi}{2} \right)}") == r"\left( 3, \frac{\pi}{2} \right)"
        assert last_boxed(r"\boxed{{{a}}b}") == "{{a}}b"

    def test_multiple_last_wins(self):
        assert last_boxed(r"\boxed{1} then \boxed{2} and finally \boxed{3}.") == "3"

    def test_missing_closing_brace_skips_to_previous_complete_box(self):
        assert last_boxed(r"first \boxed{7} then \boxed{\frac{1}{2}") == "7"

    def test_only_unclosed_box_is_none(self):
        assert last_boxed(r"the answer is \boxed{12") is None
        assert last_boxed(r"\boxed{\frac{1}{2}") is None

    def test_no_box(self):
        assert last_boxed("the answer is 12") is None
        assert last_boxed("") is None

    def test_space_form(self):
        assert last_boxed(r"the answer is $\boxed 5$.") == "5"
        assert last_boxed("\\boxed 17 apples") == "17"

    def test_space_before_brace(self):
        assert last_boxed(r"\boxed {x+1}") == "x+1"

    def test_fbox(self):
        assert last_boxed(r"\fbox{9}") == "9"
        assert last_boxed(r"\boxed{1} ... \fbox{2}") == "2"

    def test_escaped_braces_are_literal(self):
        assert last_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"
        assert last_boxed(r"\boxed{\}}") == r"\}"

    def test_empty_box_is_skipped(self):
        # e.g. the model echoes the instruction "put your final answer in \boxed{}" at the end
        assert last_boxed(r"\boxed{18}. Put your final answer in \boxed{}.") == "18"
        assert last_boxed(r"\boxed{ }") is None

    def test_other_commands_are_not_boxes(self):
        assert last_boxed(r"\boxedsomething{3}") is None

    def test_nested_boxes_inner_wins(self):
        assert last_boxed(r"\boxed{\boxed{5}}") == "5"

    def test_span_points_at_content(self):
        text = r"x \boxed{ab} y"
        a, b = last_boxed_span(text)
        assert text[a:b] == "ab"


# ----------------------------------------------------------------------------------------------
# Number normalization (GSM8K)
# ----------------------------------------------------------------------------------------------


class TestNumbers:
    @pytest.mark.parametrize(
        "text,value",
        [
            ("18", 18),
            ("18.0", 18),
            ("18.00", 18),
            ("$18.00", 18),
            (r"\$18", 18),
            ("18.", 18),
            ("1,000", 1000),
            ("1,450,000", 1450000),
            ("1{,}000", 1000),
            (r"1\,000", 1000),
            (r"10,\!080", 10080),
            ("-3", -3),
            ("-3.50", Fraction(-7, 2)),
            (".5", Fraction(1, 2)),
            (r"25\%", 25),
            ("25%", 25),
            (r"\frac{3}{4}", Fraction(3, 4)),
            (r"\dfrac{3}{4}", Fraction(3, 4)),
            (r"-\frac{3}{4}", Fraction(-3, 4)),
            ("3/4", Fraction(3, 4)),
            (r"\text{18}", 18),
            (" 18 ", 18),
            (r"90^\circ", 90),
        ],
    )
    def test_parse_number(self, text, value):
        assert parse_number(text) == Fraction(value)

    @pytest.mark.parametrize("text", ["", "abc", "1,2", "12,34", "1/0", "x=5", "1.2.3", "9" * 300])
    def test_parse_number_rejects(self, text):
        assert parse_number(text) is None

    def test_format_number(self):
        assert format_number(Fraction(18)) == "18"
        assert format_number(Fraction(-7, 2)) == "-3.5"
        assert format_number(Fraction(1, 8)) == "0.125"
        assert format_number(Fraction(1, 3)) == "1/3"

    @pytest.mark.parametrize(
        "text,expected",
        [
            ("She makes 9 * 2 = $18 every day.", "18"),
            ("The total is 1,000 dollars.", "1,000"),
            ("x = -3", "-3"),
            ("-3", "-3"),
            ("16-3", "3"),  # subtraction, not a negative number
            ("(2+5) - 4", "4"),
            ("a list 1, 2, 3", "3"),
            ("pi is about 3.14.", "3.14"),
            ("no digits here", None),
        ],
    )
    def test_last_number(self, text, expected):
        assert last_number(text) == expected


# ----------------------------------------------------------------------------------------------
# GSM8K grader
# ----------------------------------------------------------------------------------------------


class TestGsm8kGrader:
    @pytest.mark.parametrize(
        "output",
        ["18", "18.0", "$18.00", r"\boxed{18}", r"The answer is $\boxed{\$18.00}$.", "She earns 18 dollars.",
         r"\boxed{18 \text{ dollars}}", r"\boxed{x = 18}", "#### 18", r"\boxed{18} (check: 9 + 9 = 18, 3 - 1 = 2)"],
    )
    def test_correct_forms(self, output):
        g = grade_gsm8k(output, "18")
        assert g.correct and (g.extracted, g.reference) == ("18", "18") and g.reason.startswith("match ("), g

    def test_thousands(self):
        assert grade_gsm8k("It costs $1,000.", "1000").correct
        assert grade_gsm8k(r"\boxed{1,000}", "1000").correct
        assert grade_gsm8k(r"\boxed{1000}", "1000").correct

    def test_boxed_wins_over_later_numbers(self):
        g = grade_gsm8k(r"\boxed{17}. Check: 9 + 9 = 18", "18")
        assert not g.correct and g.extracted == "17" and g.reason == "mismatch (boxed): 17 != 18"

    def test_mismatch_reason(self):
        g = grade_gsm8k("so 12 apples", "13")
        assert g == Grade(False, "12", "13", "mismatch (last number): 12 != 13")

    def test_no_answer(self):
        g = grade_gsm8k("I don't know.", "13")
        assert g == Grade(False, None, "13", "no \\boxed{}, final-answer phrase, #### or number found")

    def test_box_without_number(self):
        g = grade_gsm8k(r"\boxed{Janet}", "13")
        assert not g.correct and g.extracted == "Janet" and g.reason == "no number in \\boxed{}"

    def test_negative_and_fraction(self):
        assert grade_gsm8k(r"\boxed{-5}", "-5").correct
        assert not grade_gsm8k(r"\boxed{5}", "-5").correct
        assert grade_gsm8k(r"\boxed{\frac{1}{2}}", "0.5").correct
        assert extract_answer(r"\boxed{\frac{1}{3}}")[1] == "1/3"

    def test_bad_reference_does_not_raise(self):
        g = grade_gsm8k("18", "eighteen")
        assert not g.correct and g.reason.startswith("error: unparsable reference")

    def test_never_raises(self):
        for out in ["", "9" * 10000, r"\boxed{" + "9" * 10000 + "}", r"\boxed{\frac{1}{0}}", "}{" * 100]:
            assert isinstance(grade_gsm8k(out, "18"), Grade)

    def test_oracle_all_gold_answers_correct(self, data_env):
        task = get_task("gsm8k")
        docs = task.load_docs()
        assert len(docs) == 1319
        failures = [(d["doc_id"], g) for d in docs if not (g := task.grade(d["answer"], task.reference(d))).correct]
        assert failures == [], f"{len(failures)} of {len(docs)} gold answers graded incorrect: {failures[:5]}"

    def test_oracle_gold_reasoning_with_boxed_answer_correct(self, data_env):
        # The reasoning part contains many other numbers; the box must decide.
        task = get_task("gsm8k")
        docs = task.load_docs()
        failures = []
        for d in docs:
            reasoning = d["answer"].rsplit("####", 1)[0]
            ref = task.reference(d)
            if not task.grade(f"{reasoning}\nThe answer is $\\boxed{{{ref}}}$.", ref).correct:
                failures.append(d["doc_id"])
        assert failures == []

    def test_perturbed_answers_incorrect(self, data_env):
        task = get_task("gsm8k")
        docs = task.load_docs()
        wrong_hash, wrong_box = [], []
        for d in docs:
            ref = task.reference(d)
            plus1 = format_number(Fraction(ref) + 1)
            reasoning = d["answer"].rsplit("####", 1)[0]
            if task.grade(f"{reasoning}#### {plus1}", ref).correct:
                wrong_hash.append(d["doc_id"])
            if task.grade(f"{reasoning}\nSo the answer is $\\boxed{{{plus1}}}$.", ref).correct:
                wrong_box.append(d["doc_id"])
        assert wrong_hash == [], f"{len(wrong_hash)}/1319 '#### N+1' outputs graded correct"
        assert wrong_box == [], f"{len(wrong_box)}/1319 '\\boxed{{N+1}}' outputs graded correct"


# ----------------------------------------------------------------------------------------------
# MATH-500 grader
# ----------------------------------------------------------------------------------------------


def _change_last_digit(answer: str) -> str | None:
    """Increment (mod 10) the last digit that is not a unit exponent (`\\mbox{ cm}^2`)."""
    digits = [m.start() for m in re.finditer(r"\d", answer) if not answer[: m.start()].endswith("}^")]
    if not digits:
        return None
    k = digits[-1]
    return answer[:k] + str((int(answer[k]) + 1) % 10) + answer[k + 1 :]


def _change_first_digit(answer: str) -> str | None:
    m = re.search(r"\d", answer)
    if not m:
        return None
    k = m.start()
    return answer[:k] + str((int(answer[k]) + 1) % 10) + answer[k + 1 :]


class TestMath500Grader:
    @pytest.mark.parametrize(
        "output,reference",
        [
            (r"so $\boxed{\dfrac{14}{3}}$", r"\frac{14}{3}"),
            (r"\boxed{\frac{14}{3}}", r"\frac{14}{3}"),
            (r"\boxed{(3, \frac{\pi}{2})}", r"\left( 3, \frac{\pi}{2} \right)"),
            (r"\boxed{3\sqrt{13}}", r"3\sqrt{13}"),
            (r"\boxed{x = 5}", "x=5"),
            (r"\boxed{90^\circ}", r"90^\circ"),
            (r"\boxed{\text{(C)}}", r"\text{(C)}"),
            (r"\boxed{10080}", r"10,\!080"),
            (r"\boxed{52_8}", "52_8"),
            (r"\boxed{52_{8}}", "52_8"),
            (r"\boxed{52}", "52_8"),  # a bare number is accepted for a base-n answer (math-verify's reading)
            (r"\boxed{x_{1}}", "x_1"),  # variables with subscripts are not base-n numbers
            (r"\boxed{6.72 \times 10^{-5}}", ".0000672"),
            (r"\boxed{5, 3, 7}", "3, 5, 7"),
            ("\\boxed{\\begin{pmatrix} -1/3 \\\\\n 2/3 \\\\\n 5/3 \\end{pmatrix}}",
             r"\begin{pmatrix} -1/3 \\ 2/3 \\ 5/3 \end{pmatrix}"),
        ],
    )
    def test_equivalent_forms(self, output, reference):
        g = grade_math500(output, reference)
        assert g.correct, g

    @pytest.mark.parametrize(
        "output,reference",
        [
            (r"\boxed{\frac{13}{3}}", r"\frac{14}{3}"),
            (r"\boxed{52_9}", "52_8"),  # math-verify alone drops the base subscript
            (r"\boxed{4210_{6}}", "4210_{5}"),
            (r"\boxed{40_0}", "40_9"),  # invalid base on the answer side
            (r"\boxed{x_2}", "x_1"),
            (r"\boxed{.0000673}", ".0000672"),  # math-verify alone rounds to 6 decimals
            (r"\boxed{\text{(E)}}", r"\text{(C)}"),
            (r"\boxed{p + q}", "p - q"),
        ],
    )
    def test_different_values(self, output, reference):
        g = grade_math500(output, reference)
        assert not g.correct, g
        assert g.reason.startswith("mismatch"), g

    def test_no_box(self):
        assert grade_math500("I get 5.", "5") == Grade(False, None, "5", "no \\boxed{} or final-answer phrase found")

    def test_grade_fields(self):
        g = grade_math500(r"thus $\boxed{ \frac{3}{56} }$", r"\frac{3}{56}")
        assert g == Grade(True, r"\frac{3}{56}", r"\frac{3}{56}", "match (boxed, exact)")

    def test_never_raises(self):
        for out in [r"\boxed{\frac{}{}}", r"\boxed{)))(((}", r"\boxed{\\\\}", r"\boxed{" + "(" * 500 + "}", "\\boxed{$}"]:
            assert isinstance(grade_math500(out, r"\frac{1}{2}"), Grade)
        assert isinstance(grade_math500(r"\boxed{1}", ""), Grade)

    def test_oracle_all_gold_solutions_correct(self, data_env):
        task = get_task("math500")
        docs = task.load_docs()
        assert len(docs) == 500
        t0 = time.perf_counter()
        failures = [(d["doc_id"], g) for d in docs if not (g := task.grade(d["solution"], task.reference(d))).correct]
        elapsed = time.perf_counter() - t0
        assert failures == [], f"{len(failures)}/500 gold solutions graded incorrect: {failures[:5]}"
        print(f"MATH-500 oracle: 500/500 correct in {elapsed:.1f} s")

    @pytest.mark.parametrize(
        "name,perturb",
        [
            ("append +1", lambda a: a + "+1"),
            ("change last digit", _change_last_digit),
            ("change first digit", _change_first_digit),
        ],
    )
    def test_perturbed_answers_incorrect(self, data_env, name, perturb):
        task = get_task("math500")
        docs = task.load_docs()
        n = 0
        wrongly_correct = []
        for d in docs:
            new = perturb(d["answer"])
            if new is None:  # no digit to change (11 text/symbolic answers)
                continue
            n += 1
            g = task.grade(_replace_last_boxed(d["solution"], new), task.reference(d))
            if g.correct:
                wrongly_correct.append((d["doc_id"], d["answer"], new))
        assert n >= 489
        assert wrongly_correct == [], f"{name}: {len(wrongly_correct)}/{n} perturbed answers graded correct: {wrongly_correct[:5]}"

    def test_swapped_text_answers_incorrect(self, data_env):
        task = get_task("math500")
        docs = task.load_docs()
        texts = sorted({d["answer"] for d in docs if not re.search(r"\d", d["answer"])})
        assert len(texts) >= 8
        wrongly_correct = []
        for d in docs:
            if d["answer"] not in texts:
                continue
            other = texts[(texts.index(d["answer"]) + 1) % len(texts)]
            if task.grade(_replace_last_boxed(d["solution"], other), task.reference(d)).correct:
                wrongly_correct.append((d["doc_id"], d["answer"], other))
        assert wrongly_correct == []

    def test_from_threads(self, data_env):
        """math-verify's own timeouts use signal.alarm and fail off the main thread; ours must not."""
        task = get_task("math500")
        docs = task.load_docs()[:20]
        results: dict[int, Grade] = {}
        errors: list[BaseException] = []

        def work(chunk):
            try:
                for d in chunk:
                    results[d["doc_id"]] = task.grade(d["solution"], task.reference(d))
                    results[-1 - d["doc_id"]] = task.grade(_replace_last_boxed(d["solution"], d["answer"] + "+1"), task.reference(d))
            except BaseException as e:  # noqa: BLE001 - surface anything to the main thread
                errors.append(e)

        threads = [threading.Thread(target=work, args=(docs[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert len(results) == 40
        assert all(results[d["doc_id"]].correct for d in docs), results
        assert not any(results[-1 - d["doc_id"]].correct for d in docs), results
        assert not any("error" in g.reason for g in results.values()), results

    @pytest.mark.parametrize("isolated", [True, False])
    def test_timeout_gives_incorrect_grade(self, isolated):
        # A large expression: parsing alone takes far longer than 5 ms (interruptible Python work).
        big = "+".join(f"x^{{{i}}}" for i in range(1, 400))
        for run_in_thread in (False, True):
            out: list[Grade] = []

            def work():
                out.append(grade_math500(rf"\boxed{{{big}}}", big + "+1", timeout_s=0.005, isolated=isolated))

            if run_in_thread:
                t = threading.Thread(target=work)
                t.start()
                t.join(timeout=60)
            else:
                work()
            assert out and out[0].correct is False and out[0].reason == "timeout", out

    def test_in_process_mode(self):
        assert grade_math500(r"\boxed{\frac{14}{3}}", r"\frac{14}{3}", isolated=False).correct
        assert not grade_math500(r"\boxed{\frac{13}{3}}", r"\frac{14}{3}", isolated=False).correct

    def test_uninterruptible_work_is_killed(self):
        # sympy evaluates 9**387420489 in one C call (minutes); only killing the worker stops it.
        t0 = time.perf_counter()
        g = grade_math500(r"\boxed{9^{9^{9^{9}}}}", r"\frac{1}{2}", timeout_s=1.0)
        assert g == Grade(False, "9^{9^{9^{9}}}", r"\frac{1}{2}", "timeout")
        assert time.perf_counter() - t0 < 20
        # a fresh worker takes over
        assert grade_math500(r"\boxed{\frac{1}{2}}", "0.5").correct

    def test_falls_back_in_process_when_no_worker_starts(self, monkeypatch, caplog):
        import harness.tasks.math500 as m

        math500_shutdown = m.shutdown_workers
        math500_shutdown()
        monkeypatch.setattr(m, "_WORKER_CODE", "import sys; sys.exit(3)")
        try:
            with caplog.at_level("WARNING", logger="harness.tasks.math500"):
                assert grade_math500(r"\boxed{\frac{1}{2}}", "0.5").correct
                assert not grade_math500(r"\boxed{\frac{1}{3}}", "0.5").correct
            assert caplog.text.count("grading in-process from now on") == 1
            assert m._workers_unavailable is not None
        finally:
            math500_shutdown()  # drop the pool built with the broken command


# ----------------------------------------------------------------------------------------------
# call_with_time_limit
# ----------------------------------------------------------------------------------------------


def _spin(seconds: float) -> str:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return "done"


class TestTimeLimit:
    def test_returns_value_within_limit(self):
        assert call_with_time_limit(_spin, 5.0, 0.01) == "done"
        assert call_with_time_limit(lambda: 7, None) == 7

    def test_interrupts_busy_loop_in_main_thread(self):
        t0 = time.perf_counter()
        with pytest.raises(GradeTimeout):
            call_with_time_limit(_spin, 0.2, 10.0)
        assert time.perf_counter() - t0 < 3.0

    def test_interrupts_busy_loop_in_worker_thread(self):
        outcome: list[object] = []

        def work():
            try:
                outcome.append(call_with_time_limit(_spin, 0.2, 10.0))
            except GradeTimeout as e:
                outcome.append(e)

        t = threading.Thread(target=work)
        t0 = time.perf_counter()
        t.start()
        t.join(timeout=10)
        assert len(outcome) == 1 and isinstance(outcome[0], GradeTimeout)
        assert time.perf_counter() - t0 < 3.0

    def test_no_stray_exception_after_return(self):
        # Limits just above the work's duration: a late timer must never fire into later code.
        for _ in range(30):
            try:
                call_with_time_limit(_spin, 0.004, 0.003)
            except GradeTimeout:
                pass
        _spin(0.1)  # would be interrupted here by a stray injected exception

    def test_exceptions_propagate(self):
        with pytest.raises(ZeroDivisionError):
            call_with_time_limit(lambda: 1 / 0, 1.0)


def test_grade_convenience():
    assert grade("gsm8k", r"\boxed{18}", "18").correct
    assert grade("math500", r"\boxed{\frac{1}{2}}", "0.5").correct
    with pytest.raises(KeyError):
        grade("gsm9k", "1", "1")
