"""MATH (Hendrycks et al., "Measuring Mathematical Problem Solving With the MATH Dataset",
NeurIPS 2021, arXiv 2103.03874): the full test set, 5000 problems, task name ``math``.

The docs carry the worked ``solution`` only (no separate ``answer``): the reference is the last
``\\boxed{...}`` / ``\\boxed 7`` / ``\\fbox{...}`` of the solution (:func:`~harness.tasks.math500.math_reference`);
a doc without one grades its samples ``error: ...`` and the cell runs on. Prompt and grader are
MATH-500's (:func:`~harness.tasks.math500.grade_math500`, math-verify with exact comparison of
exact values). MATH-500 is a 500-problem subset of this set (PRM800K's split).
"""

from __future__ import annotations

from harness.tasks.math500 import PROMPT, grade_math500, math_reference
from harness.tasks.registry import register_task
from harness.tasks.spec import TaskSpec

__all__ = ["TASK"]

TASK = register_task(TaskSpec(
    name="math",
    version="1.0",
    description="MATH test set (5000 competition problems, 7 subjects, levels 1-5), zero-shot chain of "
    "thought, answer in \\boxed{} or an explicit answer phrase, graded with math-verify against the "
    "solution's last \\boxed{}.",
    data_relpath="math/math_test_full.jsonl",
    hub_id="hendrycks/competition_math",
    hub_config=None,
    hub_split="test",
    size=5000,
    prompt_template=PROMPT,
    question_field="problem",
    required_fields=("problem",),
    reference_fn=math_reference,
    grade_fn=grade_math500,
))
