"""Issue 16 §1: MATH / GSM8K grader cases found by checking the graders against public bug reports.

One class per kind of case (the issue's numbered items 1-6); each holds the issue's own examples
and at least four more. ``test_graders.py`` keeps the earlier grader tests and the oracles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from harness.tasks import Grade, get_task, grade
from harness.tasks.gsm8k import grade_gsm8k
from harness.tasks.math500 import grade_math500

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _math(output: str, reference: str, truncated: bool = False) -> Grade:
    return grade_math500(output, reference, truncated=truncated)


# ----------------------------------------------------------------------------------------------
# 1. A final answer stated without \boxed{}
# ----------------------------------------------------------------------------------------------


class TestAnswerPhrases:
    ISSUE = [
        (r"Therefore, the final answer is $\frac{3}{4}$.", r"\frac{3}{4}", r"\frac{3}{4}"),
        ("**Final answer:** 12", "12", "12"),
        ("Final Answer: The final answer is $(2,4)$. I hope it is correct.", "(2,4)", "(2,4)"),
        (r"The answer is: $\sqrt{5}$", r"\sqrt{5}", r"\sqrt{5}"),
    ]
    OWN = [
        ("We add them up.\n\n**Final Answer**: $x = 7$", "7", "x = 7"),
        ("so the final answer is 90^\\circ.", r"90^\circ", r"90^\circ"),
        ("Answer: \\(\\dfrac{9}{7}\\)", r"\frac{9}{7}", r"\dfrac{9}{7}"),
        ("Thus our answer is $\\pi - 2$, as required.", r"\pi-2", r"\pi - 2"),
        ("final answer = \\[ \\{1, 2, 3\\} \\]", r"\{3, 2, 1\}", r"\{1, 2, 3\}"),
        ("I first thought 5. The final answer is $6$.", "6", "6"),  # the later phrase wins
    ]

    @pytest.mark.parametrize("output,reference,extracted", ISSUE + OWN)
    def test_math_grades_the_phrase(self, output, reference, extracted):
        g = _math(output, reference)
        assert (g.correct, g.extracted) == (True, extracted), g
        assert g.reason.startswith("match (answer phrase"), g

    @pytest.mark.parametrize(
        "output,reference",
        [
            (r"Therefore, the final answer is $\frac{3}{5}$.", r"\frac{3}{4}"),
            ("**Final answer:** 13", "12"),
            ("Final Answer: The final answer is $(4,2)$. I hope it is correct.", "(2,4)"),
            (r"The answer is: $\sqrt{6}$", r"\sqrt{5}"),
        ],
    )
    def test_math_wrong_phrase_is_a_mismatch(self, output, reference):
        g = _math(output, reference)
        assert not g.correct and g.reason.startswith("mismatch (answer phrase"), g

    @pytest.mark.parametrize(
        "output",
        [
            "We get 12 apples in all.",  # a last number is a guess, not an answer
            "12",
            "The total is 3 + 9 = 12",
            "To find the final answer, we compute 12.",  # "final answer" without is / : / =
            "Is our answer right? It is 12.",
        ],
    )
    def test_math_never_falls_back_to_the_last_number(self, output):
        g = _math(output, "12")
        assert g == Grade(False, None, "12", "no \\boxed{} or final-answer phrase found"), g

    @pytest.mark.parametrize(
        "output,reference",
        [
            # a phrase in the prose after a boxed answer (MATH test solution test/prealgebra: 4428 in file order)
            (r"$=\boxed{\frac{130}{231}}$. The final answer is positive, because two factors are negative.",
             r"\frac{130}{231}"),
            (r"So $17^{-1} \equiv \boxed{44}$. We may check: $17 \cdot 44 = 748$, so our answer is correct.", "44"),
            (r"\boxed{5}. Final answer: the value above.", "5"),
            (r"The answer is 4. Let me redo it: \boxed{5}", "5"),
        ],
    )
    def test_a_box_outranks_phrases(self, output, reference):
        g = _math(output, reference)
        assert g.correct and g.reason.startswith("match (boxed"), g

    @pytest.mark.parametrize(
        "output,value,how",
        [
            ("Therefore, the final answer is $18$.", "18", "answer phrase"),
            ("**Final answer:** 18 dollars", "18", "answer phrase"),
            ("Final Answer: The final answer is $18. I hope it is correct.", "18", "answer phrase"),
            ("The answer is: 18 cupcakes, 2 more than 16.", "18", "answer phrase"),
            ("Answer: 9 + 9 = 18", "18", "answer phrase"),
            ("She has 3 left over.\n#### 18", "18", "####"),
            ("My answer is $\\frac{36}{2}$, i.e. 18.", "18", "answer phrase"),
            ("The final answer is 18. Check: 18 - 9 = 9.", "18", "answer phrase"),
        ],
    )
    def test_gsm8k_grades_the_phrase_not_the_last_number(self, output, value, how):
        g = grade_gsm8k(output, "18")
        assert g == Grade(True, value, "18", f"match ({how})"), g

    @pytest.mark.parametrize(
        "text,answer",
        [
            ("#### Step 1\nadd", None),  # a markdown heading is not a #### answer line
            ("we want the final answer, so", None),
            ("The final answer is", None),  # nothing after it
            ("our answer is correct", None),  # a running-text phrase needs a digit or math
            ("ANSWER: 4", "4"),
        ],
    )
    def test_markers(self, text, answer):
        from harness.tasks.answers import final_answer

        found = final_answer(text)
        assert (found.text if found else None) == answer


# ----------------------------------------------------------------------------------------------
# 2. Gold given as a raw MATH solution
# ----------------------------------------------------------------------------------------------


class TestSolutionReference:
    @pytest.mark.parametrize(
        "doc,reference",
        [
            ({"solution": r"The sum is $\boxed{7}$."}, "7"),
            ({"solution": r"The sum is $\boxed 7$."}, "7"),
            ({"solution": r"The sum is $\fbox{7}$."}, "7"),
            ({"solution": r"First $\boxed{3}$, then $x=\boxed{\frac{1}{2}}$."}, r"\frac{1}{2}"),
            ({"solution": r"So the set is $\boxed{\{1, 2\}}$."}, r"\{1, 2\}"),
            ({"solution": r"Hence \boxed{\text{(C)}}"}, r"\text{(C)}"),
            ({"answer": "5", "solution": r"\boxed{6}"}, "5"),  # an explicit answer wins
            ({"answer": "  ", "solution": r"\boxed{6}"}, "6"),  # a blank one does not count
            ({"answer": 12, "solution": "no box"}, "12"),
        ],
    )
    def test_reference_from_either_field(self, doc, reference):
        from harness.tasks.math500 import math_reference

        assert math_reference(doc) == reference

    @pytest.mark.parametrize(
        "doc,why",
        [
            ({"solution": "The sum is 7."}, "no \\boxed{}"),
            ({"solution": r"The sum is \boxed{}."}, "no \\boxed{}"),
            ({"solution": r"The sum is \boxed{7"}, "no \\boxed{}"),
            ({"problem": "p"}, "neither"),
            ({"answer": None, "solution": None}, "neither"),
        ],
    )
    def test_missing_reference_is_a_per_sample_error(self, doc, why):
        from harness.tasks.math500 import ReferenceUnavailable, math_reference

        with pytest.raises(ReferenceUnavailable, match=re.escape(why)):
            math_reference(doc)
        for name in ("math500", "math"):
            g = get_task(name).grade_doc(r"\boxed{7}", {"problem": "p", **doc})
            assert (g.correct, g.extracted, g.reference) == (False, None, None)
            assert g.reason.startswith("error: no usable reference") and why in g.reason

    def test_gsm8k_answer_without_hash_line_is_a_per_sample_error(self):
        g = get_task("gsm8k").grade_doc("#### 18", {"question": "q", "answer": "she has 18"})
        assert not g.correct and g.reason.startswith("error: no usable reference")
        assert get_task("gsm8k").grade("18", None).reason == "error: no reference"

    def test_graded_against_the_solution_box(self):
        task = get_task("math")
        doc = {"problem": "p", "solution": r"so $r = \boxed{\frac{\sqrt{3}}{2}}$."}
        assert task.grade_doc(r"\boxed{\frac{1}{2}\sqrt{3}}", doc).correct
        assert not task.grade_doc(r"\boxed{\frac{\sqrt{2}}{2}}", doc).correct

    def test_the_bridge_grades_a_doc_without_reference_as_error(self):
        from harness.tasks.lm_eval_bridge import task_config

        task = get_task("math")
        config, grades = task_config(task, 16, [])
        docs = [{"problem": "p", "solution": "no box", "doc_id": 0}, {"problem": "p", "solution": r"\boxed{2}", "doc_id": 1}]
        assert config["doc_to_target"](docs[0]) == "" and config["doc_to_target"](docs[1]) == "2"
        assert config["process_results"](docs[0], [r"\boxed{2}"]) == {"exact_match": 0.0}
        assert config["process_results"](docs[1], [r"\boxed{2}"]) == {"exact_match": 1.0}
        assert grades[(0, 0)].reason.startswith("error: no usable reference") and grades[(1, 0)].correct

    def test_math_oracle_all_5000_gold_solutions_correct(self, monkeypatch):
        if not (SHARED_DATA / "math" / "math_test_full.jsonl").is_file():
            pytest.skip("math/math_test_full.jsonl not found")
        monkeypatch.setenv("HARNESS_DATA_DIR", str(SHARED_DATA))
        task = get_task("math")
        docs = task.load_docs()
        failures = [(d["doc_id"], g) for d in docs if not (g := task.grade_doc(d["solution"], d)).correct]
        assert failures == [], f"{len(failures)}/5000 gold solutions graded incorrect: {failures[:5]}"


# ----------------------------------------------------------------------------------------------
# 3. Exact values compared exactly
# ----------------------------------------------------------------------------------------------


class TestExactValues:
    @pytest.mark.parametrize(
        "output,reference",
        [
            # the issue's
            (r"\boxed{2^{-60}}", "2^{-61}"),
            (r"\boxed{\frac{1}{3^{40}}}", r"\frac{1}{3^{41}}"),
            (r"\boxed{7 \cdot 10^{-30}}", r"8 \cdot 10^{-30}"),
            # own
            (r"\boxed{\frac{1}{2^{30}}}", r"\frac{1}{2^{30}+1}"),
            (r"\boxed{3^{-50}}", r"3^{-51}"),
            (r"\boxed{\sqrt{2} \cdot 10^{-20}}", r"\sqrt{3} \cdot 10^{-20}"),
            (r"\boxed{5 \times 10^{-12}}", r"\frac{1}{2 \cdot 10^{11}} + 10^{-18}"),
            (r"The final answer is $\frac{1}{7^{30}}$.", r"\frac{2}{7^{30}}"),
            (r"\boxed{x = 10^{-9}}", r"10^{-10}"),
        ],
    )
    def test_tiny_exact_differences_are_wrong(self, output, reference):
        g = _math(output, reference)
        assert not g.correct and g.reason.startswith("mismatch (") and "exact" in g.reason, g

    @pytest.mark.parametrize(
        "output,reference",
        [
            (r"\boxed{\frac{1}{2^{60}}}", "2^{-60}"),
            (r"\boxed{\frac{7}{10^{30}}}", r"7 \cdot 10^{-30}"),
            (r"\boxed{\sqrt{8}}", r"2\sqrt{2}"),
            (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{\sqrt{2}}{2}"),
            (r"\boxed{x = 3^{-40}}", r"\frac{1}{3^{40}}"),
            (r"\boxed{2^{100}}", "1267650600228229401496703205376"),
            (r"\boxed{\frac{\pi}{6}}", r"\frac{2\pi}{12}"),
        ],
    )
    def test_equal_exact_values_match(self, output, reference):
        g = _math(output, reference)
        assert g.correct and "exact" in g.reason, g

    @pytest.mark.parametrize(
        "output,reference",
        [
            (r"\boxed{\sqrt{2}}", "1.41421356"),  # the gold is a rounded decimal
            (r"\boxed{0.333333}", r"\frac{1}{3}"),  # the answer is a rounded decimal
            (r"\boxed{6.72 \times 10^{-5}}", ".0000672"),
            (r"\boxed{50\%}", r"\frac{1}{2}"),
        ],
    )
    def test_decimals_keep_the_numeric_tolerance(self, output, reference):
        g = _math(output, reference)
        assert g.correct and "exact" not in g.reason, g


# ----------------------------------------------------------------------------------------------
# 4. LaTeX thousands separators outside a box (GSM8K)
# ----------------------------------------------------------------------------------------------


class TestThousands:
    @pytest.mark.parametrize(
        "output",
        [
            # the issue's
            "She pays 12{,}400 dollars in total.",
            r"She pays 12\,400 dollars in total.",
            "She pays 12,400 dollars in total.",
            # own
            r"In total: $12{,}400.",
            r"so the cost is 12,\!400 dollars",
            "She pays 12\u202f400 dollars in total.",
            r"The answer is $12\,400$.",
            "#### 12{,}400",
        ],
    )
    def test_grouped_numbers_are_read_whole(self, output):
        g = grade_gsm8k(output, "12400")
        assert g.correct and g.extracted == "12400", g

    @pytest.mark.parametrize(
        "output,reference",
        [
            (r"That makes 1{,}000{,}000 grains.", "1000000"),
            (r"about 2\,500.50 dollars", "2500.5"),
            (r"She pays 12{,}400 dollars in total.", "400"),  # no longer read as its last group
            (r"3\,14 is not a grouping", "14"),  # not three digits after the separator: untouched
        ],
    )
    def test_more_groupings(self, output, reference):
        g = grade_gsm8k(output, reference)
        assert g.correct == (reference not in ("400",)), g


# ----------------------------------------------------------------------------------------------
# 5. An answer followed by an invented continuation (GSM8K)
# ----------------------------------------------------------------------------------------------


ISSUE_INVENTED = (
    "She bakes 24 and gives away 6, so she sells 18 cupcakes. #### 18\n\n"
    "Question: A baker has 5 trays of 4 rolls and sells 17. How many are left?\n"
    "Answer: 5 * 4 = 20, 20 - 17 = 3. #### 3"
)


class TestInventedContinuation:
    @pytest.mark.parametrize(
        "output",
        [
            ISSUE_INVENTED,
            "so she sells 18 cupcakes.\nQ: How many legs do 3 dogs have?\nA: 3 * 4 = 12. #### 12",
            "She sells 18 cupcakes. The answer is 18.\n**Question:** Tom has 7 apples.\n**Answer:** #### 7",
            "She sells 18 cupcakes. \\boxed{18}\n### Question: Two plus two? \\boxed{4}",
            "#### 17\nWait, she gave away 6, not 7: #### 18\nQuestion: what is 1 + 2? #### 3",
            "18 cupcakes\n\nquestion: How many? Answer: 3",
        ],
    )
    def test_graded_on_the_answer_before_the_invented_turn(self, output):
        g = grade_gsm8k(output, "18")
        assert g.correct and g.extracted == "18", g

    def test_cut(self):
        from harness.tasks.answers import cut_invented_turn

        assert cut_invented_turn(ISSUE_INVENTED).endswith("#### 18\n")
        assert cut_invented_turn("Question: restated.\nSo 18.") == "Question: restated.\nSo 18."  # not at the start
        assert cut_invented_turn("The question: is it 18?") == "The question: is it 18?"  # not a new line
        assert cut_invented_turn("") == ""


# ----------------------------------------------------------------------------------------------
# 6. Truncated outputs
# ----------------------------------------------------------------------------------------------


class TestTruncated:
    @pytest.mark.parametrize(
        "output,reference",
        [
            ("... so far we have 45 apples and then we need to", "45"),  # the issue's
            ("First, 9 * 2 = 18. Then she", "18"),
            ("First 1,000 + 250 = 1,250, and from that she must subtract", "1250"),
            ("She has 18 cupcakes", "18"),  # ends on the number: no marker either
            ("So the result is 12{,}400 and", "12400"),
        ],
    )
    def test_no_last_number_credit_when_truncated(self, output, reference):
        assert grade_gsm8k(output, reference).correct  # untruncated: the last number is the answer
        g = grade_gsm8k(output, reference, truncated=True)
        assert not g.correct and g.extracted is None and g.reason.startswith("truncated at the token cap"), g

    @pytest.mark.parametrize(
        "output,reference",
        [
            ("so the answer is \\boxed{45} and now let me double-check: 4", "45"),
            ("#### 45\nNow let us verify by adding 20 and", "45"),
            ("The final answer is $45$. To check, 9 * 5 = 4", "45"),
            ("Final answer: 45 apples because", "45"),
        ],
    )
    def test_an_explicit_answer_still_counts(self, output, reference):
        g = grade_gsm8k(output, reference, truncated=True)
        assert g.correct, g

    @pytest.mark.parametrize(
        "output,reference",
        [
            ("#### 4", "4"),
            ("The final answer is 4", "4"),
            ("**Final answer:** 4", "4"),
            # think_budget's forced cue "Final answer: \boxed{" cut by the cap (the smoke baseline's outputs)
            ("To solve this problem, we need to\n\nFinal answer: \\boxed{200", "200"),
            ("To solve this math problem step by step\n\nFinal answer: \\boxed{16 *", "16"),
        ],
    )
    def test_an_answer_cut_by_the_cap_is_not_credited(self, output, reference):
        assert grade_gsm8k(output, reference).correct  # untruncated, the stated answer counts
        g = grade_gsm8k(output, reference, truncated=True)
        assert not g.correct and "inside its final answer" in g.reason, g

    @pytest.mark.parametrize(
        "output,reference,correct",
        [
            ("... so far we have 45 apples and then we need to", "45", False),
            (r"so we get $\boxed{45}$ and then", "45", True),
            (r"The final answer is $\frac{3}{4", r"\frac{3}{4}", False),  # cut inside the math group
            (r"The final answer is $\frac{3}{4}$", r"\frac{3}{4}", True),
            (r"Final answer: \boxed{\frac{1}{2}", r"\frac{1}{2}", False),  # the forced box left open
            ("Final answer: (2,4)", "(2,4)", True),
        ],
    )
    def test_math_truncated(self, output, reference, correct):
        assert _math(output, reference, truncated=True).correct is correct

    def test_correct_truncated_per_cell(self):
        from harness.core.rows import cell_metrics

        rows = [
            {"correct": 1.0, "finish_reason": "length"},
            {"correct": 1.0, "finish_reason": "stop"},
            {"correct": 0.0, "finish_reason": "length"},
            {"correct": 1.0, "finish_reason": "length"},
        ]
        m = cell_metrics(rows, 1.0)
        assert (m["correct_truncated"], m["truncation_rate"], m["n_correct"]) == (2, 0.75, 3.0)
        assert cell_metrics([{"correct": 1.0, "finish_reason": None}], 1.0)["correct_truncated"] is None

    def test_the_bridge_passes_the_finish_reason_to_the_grader(self):
        """process_results runs after generation: it asks the runner's truncated_of (the
        variant's finish_reason) and grades each sample once, truncated ones without last-number credit."""
        from harness.tasks.lm_eval_bridge import task_config

        asked = []

        def truncated_of(doc_id, sample):
            asked.append((doc_id, sample))
            return doc_id == 1

        task = get_task("gsm8k")
        config, grades = task_config(task, 16, [], truncated_of=truncated_of)
        text = "... so far we have 45 apples and then we need to"
        for doc_id in (0, 1):
            config["process_results"]({"question": "q", "answer": "#### 45", "doc_id": doc_id}, [text])
        assert asked == [(0, 0), (1, 0)]
        assert grades[(0, 0)].correct and not grades[(1, 0)].correct
        assert grades[(1, 0)].reason.startswith("truncated at the token cap")

    def test_sample_rows_carry_the_grade_and_regrade_agrees(self):
        from harness.kinds.eval import EvalKind
        from harness.kinds.eval.runner import generation_sample_rows
        from harness.variant import RequestStats

        spec = get_task("gsm8k")
        text = "... so far we have 45 apples and then we need to"
        grades = {(0, 0): spec.grade(text, "45", truncated=True)}
        stats = {("gsm8k", 0, 0, 0): RequestStats(3, 24, "length", 0.2, 0.1, 0.1, [0.1], 1, {}, "p", text)}
        records = [{"doc_id": 0, "doc": {"question": "q", "answer": "#### 45", "doc_id": 0}, "filtered_resps": [text]}]
        cell = SimpleNamespace(task="gsm8k", model_id="m", variant=SimpleNamespace(name="v"))
        (row,) = generation_sample_rows(cell, spec, records, stats, grades)
        assert (row["correct"], row["finish_reason"], row["reference"]) == (0.0, "length", "45")
        row = {**row, "task": "gsm8k"}
        assert EvalKind().regrade(row) == (0.0, grades[(0, 0)].reason)  # re-grading sees the truncation too
        assert EvalKind().regrade({**row, "finish_reason": "stop"})[0] == 1.0


# ----------------------------------------------------------------------------------------------
# `harness grade` shows the extracted answer and the reason of each kind of case
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,extracted,verdict",
    [
        (["math500", "-p", "Therefore, the final answer is $\\frac{3}{4}$.", "-r", "\\frac{3}{4}"],
         "'\\\\frac{3}{4}'", "correct (match (answer phrase, exact))"),
        (["math", "-p", "\\boxed{2^{-60}}", "-r", "2^{-61}"], "'2^{-60}'", "wrong (mismatch (boxed, exact): 2^{-60} != 2^{-61})"),
        (["gsm8k", "-p", "She pays 12{,}400 dollars in total.", "-r", "12400"], "'12400'", "correct (match (last number))"),
        (["gsm8k", "-p", ISSUE_INVENTED, "-r", "18"], "'18'", "correct (match (####))"),
        (["gsm8k", "-p", "... so far we have 45 apples and then we need to", "-r", "45", "--truncated"], "None",
         "wrong (truncated at the token cap with no explicit final answer (last number 45 not credited))"),
        (["math500", "-p", "\\boxed{[0, 1]}", "-r", "[0,1]"], "'[0, 1]'", "correct (match (boxed))"),
    ],
)
def test_cli_grade_prints_extracted_answer_and_reason(args, extracted, verdict):
    from harness.cli import app

    result = CliRunner().invoke(app, ["grade", *args])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == f"extracted: {extracted}" and lines[-1] == verdict, result.output


def test_grade_convenience_takes_truncated():
    assert grade("gsm8k", "we have 45 and", "45").correct
    assert not grade("gsm8k", "we have 45 and", "45", truncated=True).correct
    assert json.dumps(grade("sst2", "positive", "positive").correct) == "true"  # choice tasks ignore it
