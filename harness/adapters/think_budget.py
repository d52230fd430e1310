"""``think_budget``: reasoning-effort control by budget forcing, with effort modes.

Two forms:

* **Explicit budget** (``mode`` unset; the default main job's variants): let the model reason
  for at most ``max_reasoning_tokens``; if it has not stopped by then, force the end of
  reasoning and let it finish the answer within ``max_answer_tokens`` (forced tokens count
  towards that budget). Budget forcing follows "s1: Simple test-time scaling" (arXiv
  2501.19393). Once the boxed answer's brace after the cue closes, the sequence stops. So
  ``output_tokens <= max_reasoning_tokens + max_answer_tokens``.
* **Effort modes** (``mode``): the High / Medium / Low modes of "ThinkDial: An Open Recipe for
  Controlling Reasoning Effort in Large Language Models" (arXiv 2508.18773), which ThinkDial
  trains into the model, approximated training-free by budget forcing at calibrated budgets
  plus the mode's system prompt (our wording, :data:`SYSTEM_PROMPTS`; the prompt only asks,
  the budget enforces). ``high`` reasons up to the cell's token cap less ``max_answer_tokens``;
  ``medium`` and ``low`` get 0.5x and 0.25x of the High mode's *mean reasoning length measured
  on a calibration slice* (:mod:`harness.adapters.think_calibration`: the last
  ``calibration_docs`` problems of the task's split, held out from evaluation, recorded in the
  cell). ``no_thinking`` is NoThinking from "AdaptThink: Reasoning Models Can Learn When to
  Think" (arXiv 2505.13417): an empty thinking block is prefilled, no system prompt is added.

How reasoning is marked and ended depends on the model's reasoning format, read from its
tokenizer (:mod:`harness.adapters.reasoning_format`): ``</think>`` + the answer cue for models
with think tokens, the answer cue alone (default ``"\\n\\nFinal answer: \\boxed{"``) for
plain-text models such as the embedded default, whose explicit-budget behaviour is unchanged.

Counters per request (``reasoning_tokens + answer_tokens == output_tokens``):
``reasoning_tokens`` — tokens generated while reasoning (all of them when the model stopped
without ending its reasoning); ``answer_tokens`` — the rest, from the end-of-reasoning marker
(``</think>`` or the cue) on, marker included; ``budget_forced`` — 1 when the budget ran out and
the end was forced (its cell mean is the share of requests whose reasoning was truncated; the
cell's ``truncation_rate`` is the share that hit the token cap); ``reasoning_skipped`` — 1 when
the model itself closed its thinking block with nothing but whitespace inside (AdaptThink's
NoThinking response; its cell mean is the share of responses that skip thinking), always 0 for
plain-text models (no think tokens) and for a prefilled ``no_thinking`` block (the model did not
choose it). The task's cap still applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_serializer, model_validator

from harness.adapters.base import Adapter, AdapterParams, CellContext, register_adapter
from harness.adapters.reasoning_format import ReasoningFormat, detect_format
from harness.adapters.think_calibration import CACHE_FILE, calibrate_high
from harness.generation import DecodePolicy, RowState

DEFAULT_MAX_REASONING_TOKENS = 128
DEFAULT_CALIBRATION_DOCS = 8

MODE_SCALE = {"high": 1.0, "medium": 0.5, "low": 0.25}
"""Budget of a calibrated mode as a share of the High mode's measured mean reasoning length."""

SYSTEM_PROMPTS = {
    "high": "Reasoning effort: high. Work through the problem carefully and completely, "
    "checking each step, before you give the final answer.",
    "medium": "Reasoning effort: medium. Reason through the main steps only, without detours, "
    "then give the final answer.",
    "low": "Reasoning effort: low. Use as few reasoning steps as you can and give the final answer quickly.",
}
"""System prompt of each effort mode (ThinkDial's idea of a mode prompt, in our own words)."""

Mode = Literal["high", "medium", "low", "no_thinking"]


class ThinkBudgetParams(AdapterParams):
    mode: Mode | None = Field(
        None, description="high | medium | low | no_thinking; unset = the explicit max_reasoning_tokens budget"
    )
    max_reasoning_tokens: int | None = Field(
        None,
        ge=1,
        description=f"explicit form only (default {DEFAULT_MAX_REASONING_TOKENS}): reasoning tokens before "
        "the end of reasoning is forced; a mode sets the budget itself",
    )
    max_answer_tokens: int = Field(32, ge=1, description="tokens for the forced answer, forced tokens included")
    answer_cue: str = Field("\n\nFinal answer: \\boxed{", description="text forced when the budget runs out")
    calibration_docs: int | None = Field(
        None,
        ge=1,
        description=f"modes high/medium/low only (default {DEFAULT_CALIBRATION_DOCS}): last problems of the "
        "task's split on which the High mode's mean reasoning length is measured (held out from evaluation)",
    )

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        mode = data.get("mode")
        if mode is None:
            if data.get("calibration_docs") is not None:
                raise ValueError("calibration_docs needs mode high, medium or low")
            if data.get("max_reasoning_tokens") is None:
                data["max_reasoning_tokens"] = DEFAULT_MAX_REASONING_TOKENS
            return data
        if data.get("max_reasoning_tokens") is not None:
            raise ValueError(f"mode={mode!r} sets the reasoning budget itself; drop max_reasoning_tokens")
        if mode in MODE_SCALE and data.get("calibration_docs") is None:
            data["calibration_docs"] = DEFAULT_CALIBRATION_DOCS
        if mode == "no_thinking" and data.get("calibration_docs") is not None:
            raise ValueError("mode='no_thinking' has no budget to calibrate; drop calibration_docs")
        return data

    @model_validator(mode="after")
    def _cue_fits(self):
        if not self.answer_cue:
            raise ValueError("answer_cue must not be empty")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # Unset optional fields are left out, so the explicit form dumps (and hashes) exactly as
        # before modes existed: results and gate baselines keep matching.
        return {k: v for k, v in handler(self).items() if v is not None}


def boxed_closed(text: str) -> bool:
    """True when ``text`` (what follows an opening ``\\boxed{``) closes that brace."""
    depth = 1
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0:
            return True
    return False


@dataclass(frozen=True)
class BudgetPlan:
    """What budget forcing does to every request of one variant (all counts in tokens).

    Attributes:
        reasoning_budget: reasoning tokens before ``end_ids`` are forced (``None``: never forced).
        max_tokens: cap on a request's output tokens (``None``: the task's cap only).
        end_ids: forced when the reasoning budget runs out (``</think>`` + cue, or the cue).
        close_id: a token by which the model ends its reasoning itself (``</think>``), or ``None``.
        open_id: a token by which it (re)opens reasoning (``<think>``), or ``None``.
        start_ids: forced as the first output tokens (plain-text NoThinking: the cue).
        starts_in_answer: the prompt already ended the reasoning (NoThinking).
        box_after_start: stop once the brace opened by ``start_ids`` closes.
    """

    reasoning_budget: int | None
    max_tokens: int | None
    end_ids: list[int] = field(default_factory=list)
    close_id: int | None = None
    open_id: int | None = None
    start_ids: list[int] = field(default_factory=list)
    starts_in_answer: bool = False
    box_after_start: bool = False


def budget_plan(
    tokenizer,
    fmt: ReasoningFormat,
    reasoning_budget: int | None,
    max_answer_tokens: int,
    answer_cue: str,
    no_thinking: bool = False,
) -> BudgetPlan:
    """The :class:`BudgetPlan` of a budget (or of NoThinking when ``no_thinking``).

    Raises:
        ValueError: the forced tokens alone fill ``max_answer_tokens``.
    """
    think = (fmt.open_id, fmt.close_id)
    if no_thinking:
        start = fmt.no_thinking_forced_ids(tokenizer, answer_cue)
        if start and len(start) >= max_answer_tokens:
            raise ValueError(f"max_answer_tokens={max_answer_tokens} leaves no room after the {len(start)}-token cue")
        return BudgetPlan(
            reasoning_budget=None,
            # plain text: the answer after the forced cue has the answer budget; think tokens: a free answer
            max_tokens=max_answer_tokens if start else None,
            open_id=think[0],
            start_ids=start,
            starts_in_answer=True,
            box_after_start=bool(start),
        )
    end = fmt.end_of_reasoning_ids(tokenizer, answer_cue)
    if len(end) >= max_answer_tokens:
        raise ValueError(
            f"max_answer_tokens={max_answer_tokens} leaves no room after the {len(end)}-token answer cue"
        )
    return BudgetPlan(
        reasoning_budget=reasoning_budget,
        max_tokens=reasoning_budget + max_answer_tokens,
        end_ids=end,
        close_id=think[1],
        open_id=think[0],
    )


class BudgetPolicy(DecodePolicy):
    """Per-batch state of budget forcing (see the module docstring and :class:`BudgetPlan`).

    Each generated token is counted in its row's current phase: reasoning until the model
    writes ``close_id`` or the budget runs out (then ``end_ids`` are forced), answer after;
    a ``open_id`` written in an answer that was not forced counts as reasoning again.
    """

    def __init__(self, plan: BudgetPlan, tokenizer):
        self.plan, self.tokenizer = plan, tokenizer
        self.answering: dict[int, bool] = {}
        self.reasoning: dict[int, int] = {}
        self.forced_end: set[int] = set()
        self.box_from: dict[int, int] = {}  # row → index of the first token inside the opened box
        self.skipped: set[int] = set()  # rows that closed their thinking block with only whitespace in it

    def begin(self, rows: list[RowState]) -> None:
        plan = self.plan
        for row in rows:
            if plan.max_tokens is not None:
                row.max_new_tokens = min(row.max_new_tokens, plan.max_tokens)
            self.answering[row.index] = plan.starts_in_answer
            self.reasoning[row.index] = 0
            row.forced.extend(plan.start_ids)
            if plan.box_after_start:
                self.box_from[row.index] = len(plan.start_ids)

    def after_token(self, row, token, text_so_far) -> None:
        plan, i, n = self.plan, row.index, len(row.token_ids)
        if not self.answering[i]:
            if plan.close_id is not None and token == plan.close_id:
                self.answering[i] = True  # the model ended its reasoning: the marker opens the answer
                if not self.tokenizer.decode(row.token_ids[:-1], skip_special_tokens=True).strip():
                    self.skipped.add(i)
                return
            self.reasoning[i] += 1
            if plan.reasoning_budget is not None and i not in self.forced_end and self.reasoning[i] >= plan.reasoning_budget:
                self.answering[i] = True
                self.forced_end.add(i)
                row.forced.extend(plan.end_ids)
                self.box_from[i] = n + len(plan.end_ids)
            return
        if plan.open_id is not None and token == plan.open_id and i not in self.forced_end:
            self.answering[i] = False  # reasoning reopened after a prefilled or self-closed block
            self.reasoning[i] += 1
            return
        start = self.box_from.get(i)
        if start is not None and n > start:
            if boxed_closed(self.tokenizer.decode(row.token_ids[start:], skip_special_tokens=True)):
                row.finish_reason = "stop"

    def finish(self, row: RowState) -> None:
        n, reasoning = len(row.token_ids), self.reasoning.get(row.index, 0)
        row.counters["reasoning_tokens"] = float(reasoning)
        row.counters["answer_tokens"] = float(n - reasoning)
        row.counters["budget_forced"] = float(row.index in self.forced_end)
        row.counters["reasoning_skipped"] = float(row.index in self.skipped)


@register_adapter("think_budget")
class ThinkBudget(Adapter):
    paper = "ThinkDial: An Open Recipe for Controlling Reasoning Effort in Large Language Models (budget forcing)"
    arxiv = "2508.18773"
    Params = ThinkBudgetParams
    counters = {
        "reasoning_tokens": "tokens generated while reasoning (all, when the model never ended its reasoning)",
        "answer_tokens": "tokens from the end of reasoning on (</think> or the answer cue included)",
        "budget_forced": "1 when the reasoning budget ran out and the end of reasoning was forced",
        "reasoning_skipped": "1 when the model closed its thinking block itself with only whitespace inside",
    }
    kept_files = (CACHE_FILE,)

    def __init__(self, params=None):
        super().__init__(params)
        self.calibration = None  # a think_calibration.HighCalibration, set by prepare() for calibrated modes

    def check(self, max_new_tokens: int) -> None:
        p = self.params
        if p.mode is None and p.max_reasoning_tokens >= max_new_tokens:
            raise ValueError(
                f"max_reasoning_tokens={p.max_reasoning_tokens} >= max_new_tokens={max_new_tokens}: "
                "the budget would never be forced (the variant would be the baseline)"
            )
        if p.mode in MODE_SCALE and p.max_answer_tokens >= max_new_tokens:
            raise ValueError(
                f"max_answer_tokens={p.max_answer_tokens} >= max_new_tokens={max_new_tokens}: "
                f"mode {p.mode!r} would have no reasoning budget"
            )

    def needs_preparation(self) -> str | None:
        """Medium and Low take their budget from the High mode's calibrated mean reasoning
        length (:meth:`prepare`); the other forms wrap unprepared (High's calibration is a record)."""
        mode = self.params.mode
        if mode in MODE_SCALE and mode != "high":
            return (
                f"think_budget mode {mode!r} sets its reasoning budget from a calibration on a task's "
                f"last {self.params.calibration_docs} docs"
            )
        return None

    def reasoning_budget(self, max_new_tokens: int) -> int | None:
        """Reasoning tokens before the end is forced, under a task cap of ``max_new_tokens``.

        Explicit form: ``max_reasoning_tokens``. ``high``: the cap less ``max_answer_tokens``.
        ``medium`` / ``low``: :data:`MODE_SCALE` x the calibrated High mean (at least 1).
        ``no_thinking``: ``None``.

        Raises:
            RuntimeError: a ``medium`` / ``low`` adapter that was not prepared (calibrated).
        """
        p = self.params
        if p.mode is None:
            return p.max_reasoning_tokens
        if p.mode == "no_thinking":
            return None
        if p.mode == "high":
            return max_new_tokens - p.max_answer_tokens
        if self.calibration is None:
            raise RuntimeError(f"think_budget mode {p.mode!r} needs its calibration: call prepare() before wrap()")
        return self.calibration.budget(MODE_SCALE[p.mode])

    def plan(self, tokenizer, max_new_tokens: int) -> BudgetPlan:
        """This variant's :class:`BudgetPlan` for ``tokenizer``'s reasoning format."""
        p = self.params
        return budget_plan(
            tokenizer,
            detect_format(tokenizer),
            self.reasoning_budget(max_new_tokens),
            p.max_answer_tokens,
            p.answer_cue,
            no_thinking=p.mode == "no_thinking",
        )

    def prepare(self, base, spec, docs, context: CellContext) -> dict[str, Any]:
        """Calibrate a High/Medium/Low mode on the held-out slice (cached; see
        :func:`harness.adapters.think_calibration.calibrate_high`); nothing for other forms.

        Returns:
            ``calibration_json`` (slice, n, measured High mean, this mode's budget, reuse) and
            ``calibration_time_s`` (wall time spent calibrating in this call; 0 when reused).

        Raises:
            ValueError: the evaluated docs would overlap the calibration slice.
        """
        from harness.core.hashing import stable_json

        mode = self.params.mode
        if mode not in MODE_SCALE:
            return {}
        high = ThinkBudget({**self.params.model_dump(), "mode": "high"})
        plan = high.plan(base.tokenizer, context.max_new_tokens)
        self.calibration, spent_s = calibrate_high(
            base,
            spec,
            docs,
            context,
            n_docs=self.params.calibration_docs,
            system_prompt=SYSTEM_PROMPTS["high"],
            high_budget=plan.reasoning_budget,
            policy_factory=lambda: BudgetPolicy(plan, base.tokenizer),
            key_extra={"answer_cue": self.params.answer_cue, "max_answer_tokens": self.params.max_answer_tokens},
        )
        record = {
            **self.calibration.as_record(),
            "mode": mode,
            "scale": MODE_SCALE[mode],
            "reasoning_budget": self.reasoning_budget(context.max_new_tokens),
            "reused": spent_s == 0.0,
        }
        return {"calibration_json": stable_json(record), "calibration_time_s": spent_s}

    def wrap(self, base, batch_size: int = 1, max_new_tokens: int = 256):
        """The variant: budget forcing, and for a mode its system prompt / NoThinking prefill
        (:class:`harness.adapters.prompted_variant.PromptedVariant`; the explicit form's prompts
        are the task's own)."""
        from harness.adapters.prompted_variant import PromptedVariant
        from harness.models import param_bytes

        plan = self.plan(base.tokenizer, max_new_tokens)
        mode = self.params.mode
        return PromptedVariant(
            model=base.model,
            tokenizer=base.tokenizer,
            policy_factory=lambda: BudgetPolicy(plan, base.tokenizer),
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            param_bytes=param_bytes(base.model),
            name=base.canonical_id,
            system_prompt=SYSTEM_PROMPTS.get(mode) if mode else None,
            prefill_format=detect_format(base.tokenizer) if mode == "no_thinking" else None,
        )
