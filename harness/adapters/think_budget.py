"""``think_budget``: cap the reasoning, then force an answer (budget forcing).

Follows the budget modes of "ThinkDial: An Open Recipe for Controlling Reasoning Effort
in Large Language Models" (arXiv 2508.18773), realised training-free by budget forcing as
in "s1: Simple test-time scaling" (arXiv 2501.19393): let the model reason for at most
``max_reasoning_tokens``; if it has not stopped by then, append ``answer_cue`` (by default
``"\\n\\nFinal answer: \\boxed{"``) and let it finish the answer within
``max_answer_tokens`` (the cue counts towards that budget). Once the boxed answer's brace
closes, the sequence stops. So ``output_tokens <= max_reasoning_tokens + max_answer_tokens``.

Counters per request: ``reasoning_tokens`` (before the cue, or all when the model stopped
on its own), ``answer_tokens`` (cue included), ``budget_forced`` (1 when the cue was
injected). The task's own token cap still applies on top.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.generation import DecodePolicy, RowState


class ThinkBudgetParams(AdapterParams):
    max_reasoning_tokens: int = Field(128, ge=1, description="reasoning tokens before the answer cue is forced")
    max_answer_tokens: int = Field(32, ge=1, description="tokens for the forced answer, cue included")
    answer_cue: str = Field("\n\nFinal answer: \\boxed{", description="text appended when the budget runs out")

    @model_validator(mode="after")
    def _cue_fits(self):
        if not self.answer_cue:
            raise ValueError("answer_cue must not be empty")
        return self


def boxed_closed(text: str) -> bool:
    """True when ``text`` (what follows an opening ``\\boxed{``) closes that brace."""
    depth = 1
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0:
            return True
    return False


class BudgetPolicy(DecodePolicy):
    """Per-batch state of budget forcing (see module docstring)."""

    def __init__(self, params: ThinkBudgetParams, cue_ids: list[int], tokenizer):
        self.p, self.cue_ids, self.tokenizer = params, cue_ids, tokenizer
        if len(cue_ids) >= params.max_answer_tokens:
            raise ValueError(
                f"max_answer_tokens={params.max_answer_tokens} leaves no room after the "
                f"{len(cue_ids)}-token answer cue"
            )
        self.cue_at: dict[int, int] = {}

    def begin(self, rows: list[RowState]) -> None:
        for row in rows:
            row.max_new_tokens = min(row.max_new_tokens, self.p.max_reasoning_tokens + self.p.max_answer_tokens)

    def after_token(self, row, token, text_so_far) -> None:
        n = len(row.token_ids)
        if row.index not in self.cue_at:
            if n == self.p.max_reasoning_tokens:
                self.cue_at[row.index] = n
                row.forced.extend(self.cue_ids)
            return
        start = self.cue_at[row.index] + len(self.cue_ids)
        if n > start:
            answer = self.tokenizer.decode(row.token_ids[start:], skip_special_tokens=True)
            if boxed_closed(answer):
                row.finish_reason = "stop"

    def finish(self, row: RowState) -> None:
        n = len(row.token_ids)
        cue = self.cue_at.get(row.index)
        row.counters["reasoning_tokens"] = float(n if cue is None else cue)
        row.counters["answer_tokens"] = float(0 if cue is None else n - cue)
        row.counters["budget_forced"] = float(cue is not None)


@register_adapter("think_budget")
class ThinkBudget(Adapter):
    paper = "ThinkDial: An Open Recipe for Controlling Reasoning Effort in Large Language Models (budget forcing)"
    arxiv = "2508.18773"
    Params = ThinkBudgetParams
    counters = {
        "reasoning_tokens": "tokens generated before the answer cue (all, when the model stopped by itself)",
        "answer_tokens": "tokens from the answer cue on (cue included)",
        "budget_forced": "1 when the reasoning budget ran out and the cue was injected",
    }

    def check(self, max_new_tokens: int) -> None:
        if self.params.max_reasoning_tokens >= max_new_tokens:
            raise ValueError(
                f"max_reasoning_tokens={self.params.max_reasoning_tokens} >= max_new_tokens={max_new_tokens}: "
                "the budget would never be forced (the variant would be the baseline)"
            )

    def make_policy(self, tokenizer) -> DecodePolicy:
        cue_ids = tokenizer(self.params.answer_cue, add_special_tokens=False)["input_ids"]
        return BudgetPolicy(self.params, cue_ids, tokenizer)
