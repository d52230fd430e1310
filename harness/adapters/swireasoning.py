"""``swireasoning``: switch each sequence between latent and explicit thinking by its entropy trend.

Follows "SwiReasoning: Switch-Thinking in Latent and Explicit for Pareto-Superior Reasoning LLMs"
(Shi et al., arXiv 2510.05069), training-free. Every step the model predicts a next-token
distribution ``p_t = softmax(logits_t)`` (untempered) for each sequence; what is fed back as the
next input depends on the sequence's *mode*:

* **explicit** — the embedding row of the emitted token (ordinary decoding);
* **latent** — the probability-weighted embedding ``p_t @ E`` (``E``: the input embedding
  matrix, ``[vocab, hidden]``; cast to the model's dtype), passed as ``inputs_embeds``: the model
  conditions on the whole distribution, not on one token ("soft thinking").

Mode switches (per sequence; entropy ``H_t = -Σ p log p`` in **nats**, of the untempered
distribution, float32):

1. a sequence starts in ``start`` mode (default ``latent``, as the paper's code) and its
   reference entropy ``H_ref`` is the entropy of its first distribution (after its prefill);
2. latent → explicit *at once* when ``H_t < H_ref`` (the model grew more confident);
3. explicit → latent only after ``window`` steps in explicit mode and when ``H_t > H_ref``;
4. ``H_ref`` resets to ``H_t`` at each switch;
5. tokens whose text is a digit, an operator or LaTeX (:func:`math_token_mask`) are fed
   explicitly even in latent mode (exact values must not be blurred into a mix), as are forced
   tokens and every token once the reasoning has ended;
6. ``max_switch_count`` (``None``: no cap) caps the latent → explicit switches (the count the
   paper's code caps): the switch that reaches it forces the end of reasoning at once, exactly as
   ``think_budget`` does (:mod:`harness.adapters.reasoning_format`: ``</think>`` + the answer cue
   for models with think tokens, the cue alone — default ``"\\n\\nFinal answer: \\boxed{"`` — for
   plain-text models such as the embedded default), then the answer gets ``max_answer_tokens``
   (forced tokens included) and the sequence stops when the boxed answer's brace closes.

**The recorded token.** Each step emits the argmax of ``p_t`` (or the row's sample, when the cell
samples) in both modes, and that is what the output text records. After a latent step the model
never saw that token: it saw ``p_t @ E``, of which the token is the heaviest component. So a
latent stretch of the text is a readable trace of the latent thought (its top tokens), not text
the model conditioned on; the answer after the end of reasoning is always explicit.

Left out from the paper's code: the blends with the ``<think>`` / ``</think>`` embeddings at the
switch points (its ``alpha`` / ``beta``; they need think tokens, which the plain-text models here
lack), the line-break blend of the very first latent step, and its second-stage termination
(after ``2 × max_switch_count`` switches): here the cap ends the reasoning with the forced answer
cue directly. The paper samples (T = 0.6, top-p 0.95, top-k 20); here decoding is greedy unless
the cell samples (the latent mix is always the untempered distribution, as in the paper).

Batching: each row keeps its own state, keyed by ``row.index``, so rows join and leave a
continuous batch freely. ``forward`` learns which row each batch position holds from the rows
:meth:`DecodePolicy.choose` saw (the loop drops finished rows in order before the next forward,
or feeds them a pad token in a static batch).

Counters per request (output tokens, EOS excluded): ``latent_steps`` — tokens fed back as a
probability-weighted embedding; ``explicit_steps`` — tokens fed back as themselves (so
``latent_steps + explicit_steps == output_tokens``); ``switches`` — latent → explicit switches;
``end_forced`` — 1 when ``max_switch_count`` forced the end of reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import Field

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.adapters.reasoning_format import detect_format
from harness.adapters.think_budget import BudgetPlan, BudgetPolicy
from harness.generation import DecodePolicy, RowState

LATENT, EXPLICIT = "latent", "explicit"

MATH_CHARS = frozenset("+-*/^=<>()[]{}|_%$\\")
"""Characters of operator / bracket / LaTeX-delimiter tokens (a token made only of these is math)."""


class SwiReasoningParams(AdapterParams):
    window: int = Field(
        512, ge=1, description="explicit steps before a switch back to latent is allowed (paper code default 512)"
    )
    max_switch_count: int | None = Field(
        None, ge=1, description="latent->explicit switches before the end of reasoning is forced (None: no cap)"
    )
    start: Literal["latent", "explicit"] = Field("latent", description="mode of each sequence's first step")
    max_answer_tokens: int = Field(32, ge=1, description="tokens for the forced answer, forced tokens included")
    answer_cue: str = Field("\n\nFinal answer: \\boxed{", description="text forced when the switch cap is reached")


def entropy_nats(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of the distributions ``probs`` (``[..., vocab]``, rows sum to 1).

    Returns:
        ``[...]`` float32 entropies in ``[0, ln(vocab)]`` (zero-probability entries add 0).
    """
    p = probs.float()
    return -(p * p.clamp_min(1e-30).log()).sum(dim=-1)


def is_math_text(text: str) -> bool:
    """Whether a token's decoded text is math: it holds a digit, starts with a backslash (a LaTeX
    command), or is made only of :data:`MATH_CHARS` (operators, brackets, ``$``); surrounding
    whitespace is ignored, so whitespace alone is not math."""
    text = text.strip()
    if not text:
        return False
    return any(c.isdigit() for c in text) or text.startswith("\\") or all(c in MATH_CHARS for c in text)


def math_token_mask(tokenizer, size: int | None = None) -> list[bool]:
    """``mask[id]`` = the token's decoded text is math (:func:`is_math_text`), for every id.

    Args:
        tokenizer: decodes each id alone (special tokens kept as text).
        size: entries (default ``len(tokenizer)``); ids past the tokenizer (padded embedding
            rows) are not math.
    """
    n = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
    mask = [is_math_text(t) for t in texts]
    size = n if size is None else size
    return (mask + [False] * (size - n))[:size]


@dataclass
class RowMode:
    """One sequence's switching state.

    Attributes:
        mode: ``latent`` or ``explicit``.
        ref_nats: reference entropy (``None`` until the first step).
        stay: steps since the last switch (or the start).
        switches: latent → explicit switches so far.
        fed: per chosen token, how it was fed back (``latent`` / ``explicit``).
    """

    mode: str
    ref_nats: float | None = None
    stay: int = 0
    switches: int = 0
    fed: list[str] = field(default_factory=list)


def update_mode(state: RowMode, entropy: float, window: int) -> bool:
    """Apply one step's entropy (nats) to ``state`` (rules 1–4 of the module docstring).

    Returns:
        ``True`` when this step switched latent → explicit (the switch the cap counts).
    """
    if state.ref_nats is None:
        state.ref_nats = entropy
        return False
    state.stay += 1
    if state.mode == LATENT and entropy < state.ref_nats:
        state.mode, state.stay, state.ref_nats = EXPLICIT, 0, entropy
        state.switches += 1
        return True
    if state.mode == EXPLICIT and state.stay >= window and entropy > state.ref_nats:
        state.mode, state.stay, state.ref_nats = LATENT, 0, entropy
    return False


class SwiPolicy(BudgetPolicy):
    """Per-row latent/explicit switching on the shared decode loop (module docstring).

    Builds on :class:`~harness.adapters.think_budget.BudgetPolicy` for the reasoning/answer
    phases (``</think>`` ends the reasoning, forced ends, the boxed answer's stop) with no token
    budget of its own: the end is forced only by ``max_switch_count``.

    Args:
        params: the adapter's params.
        plan: end-of-reasoning ids and think-token ids (``reasoning_budget=None``).
        tokenizer: the model's tokenizer.
        embed: the model's input embedding module (``weight``: ``[vocab, hidden]``).
        math_mask: ``math_mask[id]`` = the token is always fed explicitly.
    """

    def __init__(self, params: SwiReasoningParams, plan: BudgetPlan, tokenizer, embed, math_mask: list[bool]):
        super().__init__(plan, tokenizer)
        self.p, self.embed, self.math = params, embed, math_mask
        self.modes: dict[int, RowMode] = {}
        self._rows: list[RowState] = []  # the rows of the last choose(), in batch order
        self._latent: list[bool] = []  # whether each of them is fed a latent embedding next
        self._probs: torch.Tensor | None = None  # [len(_rows), vocab] float32

    def begin(self, rows: list[RowState]) -> None:
        super().begin(rows)
        for row in rows:
            self.modes[row.index] = RowMode(mode=self.p.start)

    def _force_end(self, row: RowState) -> None:
        """The switch cap is reached: queue the end of reasoning and give the answer its budget."""
        i, n = row.index, len(row.token_ids)
        self.answering[i] = True
        self.forced_end.add(i)
        row.forced.extend(self.plan.end_ids)
        self.box_from[i] = n + len(self.plan.end_ids)
        row.max_new_tokens = min(row.max_new_tokens, n + self.p.max_answer_tokens)

    def choose(self, rows: list[RowState], logits: torch.Tensor) -> list[int]:
        picked = self.pick(logits)
        probs = torch.softmax(logits.float(), dim=-1)
        entropies = entropy_nats(probs).tolist()
        chosen, latent = [], []
        for row, token, entropy in zip(rows, picked, entropies):
            if row.done:  # a static batch feeds it a pad token; nothing to decide
                chosen.append(token)
                latent.append(False)
                continue
            state = self.modes[row.index]
            if not self.answering[row.index]:
                switched = update_mode(state, entropy, self.p.window)
                cap = self.p.max_switch_count
                if switched and cap is not None and state.switches >= cap:
                    self._force_end(row)
            forced = bool(row.forced)
            if forced:
                token = row.forced.pop(0)
            soft = (
                state.mode == LATENT
                and not forced
                and not self.answering[row.index]
                and not (token < len(self.math) and self.math[token])
            )
            state.fed.append(LATENT if soft else EXPLICIT)
            chosen.append(token)
            latent.append(soft)
        self._rows, self._latent, self._probs = list(rows), latent, probs
        return chosen

    def forward(self, model, **inputs):
        """The model's forward; a decode step with latent rows passes ``inputs_embeds`` instead of
        ``input_ids``: each explicit row's token embedding, each latent row's ``p @ E`` (its last
        distribution, in the model's dtype). Prefills and all-explicit steps pass ``input_ids``.

        Raises:
            RuntimeError: the batch does not match the rows of the last :meth:`choose`.
        """
        if ("cache" not in inputs and "past_key_values" not in inputs) or not any(self._latent):
            return model(**inputs)
        ids = inputs.pop("input_ids")  # [batch, 1]
        positions = list(range(len(self._rows)))
        if ids.shape[0] != len(positions):  # the loop dropped the rows that finished, in order
            positions = [j for j, row in enumerate(self._rows) if not row.done]
        if ids.shape[0] != len(positions) or ids.shape[1] != 1:
            raise RuntimeError(f"swireasoning: a step of {tuple(ids.shape)} ids for {len(positions)} live rows")
        embeds = self.embed(ids).clone()  # [batch, 1, hidden]
        soft = [b for b, j in enumerate(positions) if self._latent[j]]
        if soft:
            weight = self.embed.weight
            rows = torch.tensor([positions[b] for b in soft], device=self._probs.device)
            mix = self._probs.index_select(0, rows).to(weight.dtype) @ weight  # [k, hidden]
            scale = getattr(self.embed, "embed_scale", None)  # embeddings that scale inside the module
            if scale is not None:
                mix = mix * scale
            embeds[torch.tensor(soft, device=embeds.device), 0] = mix.to(embeds.dtype)
        return model(inputs_embeds=embeds, **inputs)

    def finish(self, row: RowState) -> None:
        state = self.modes.get(row.index) or RowMode(mode=self.p.start)
        fed = state.fed[: len(row.token_ids)]  # an EOS was chosen but not kept
        latent = fed.count(LATENT)
        row.counters["latent_steps"] = float(latent)
        row.counters["explicit_steps"] = float(len(fed) - latent)
        row.counters["switches"] = float(state.switches)
        row.counters["end_forced"] = float(row.index in self.forced_end)


def switch_plan(tokenizer, params: SwiReasoningParams) -> BudgetPlan:
    """The end-of-reasoning plan for ``tokenizer``'s reasoning format (no token budget).

    Raises:
        ValueError: the forced end alone fills ``max_answer_tokens``.
    """
    fmt = detect_format(tokenizer)
    end = fmt.end_of_reasoning_ids(tokenizer, params.answer_cue)
    if len(end) >= params.max_answer_tokens:
        raise ValueError(
            f"max_answer_tokens={params.max_answer_tokens} leaves no room after the {len(end)}-token end of reasoning"
        )
    return BudgetPlan(reasoning_budget=None, max_tokens=None, end_ids=end, close_id=fmt.close_id, open_id=fmt.open_id)


@register_adapter("swireasoning")
class SwiReasoning(Adapter):
    paper = "SwiReasoning: Switch-Thinking in Latent and Explicit for Pareto-Superior Reasoning LLMs"
    arxiv = "2510.05069"
    Params = SwiReasoningParams
    counters = {
        "latent_steps": "output tokens fed back as the probability-weighted embedding softmax(logits) @ E",
        "explicit_steps": "output tokens fed back as their own embedding",
        "switches": "latent -> explicit switches (what max_switch_count caps)",
        "end_forced": "1 when max_switch_count forced the end of reasoning",
    }

    def check(self, max_new_tokens: int) -> None:
        p = self.params
        if p.start == EXPLICIT and p.window >= max_new_tokens:
            raise ValueError(
                f"start='explicit' with window={p.window} >= max_new_tokens={max_new_tokens}: no step could "
                "be latent (the variant would be the baseline)"
            )
        if p.max_switch_count is not None and p.max_answer_tokens >= max_new_tokens:
            raise ValueError(f"max_answer_tokens={p.max_answer_tokens} >= max_new_tokens={max_new_tokens}")
        if not p.answer_cue:
            raise ValueError("answer_cue must not be empty")

    def prepare_model(self, base):
        """The base model itself (never changed); keeps its input embedding module, the
        end-of-reasoning plan and the vocabulary's math mask (computed once per variant)."""
        model = base.model
        self.embed = model.get_input_embeddings()
        self.plan = switch_plan(base.tokenizer, self.params)
        self.math = math_token_mask(base.tokenizer, int(self.embed.weight.shape[0]))
        return model

    def make_policy(self, tokenizer) -> DecodePolicy:
        return SwiPolicy(self.params, self.plan, tokenizer, self.embed, self.math)

