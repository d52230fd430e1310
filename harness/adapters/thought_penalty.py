"""``thought_penalty``: penalise (TIP) or ban (NoWait) thought-switch words while decoding.

The training-free stand-in for Retro-Search ("Retro-Search: Exploring Untaken Paths for Deeper
and Efficient Reasoning", arXiv 2504.04383), which shortens reasoning by cutting premature
thought switches out of training traces; here the switches are discouraged at decode time:

* ``mode: penalty`` — TIP, the thought-switching penalty of "Thoughts Are All Over the Place: On
  the Underthinking of o1-Like LLMs" (Wang et al., arXiv 2501.18585): the logits of the
  thought-switch tokens get ``z − alpha`` while ``t < Ψ + beta``, ``t`` the output position being
  decoded and ``Ψ`` the start of the current thought. TIP's thoughts are the segments its
  switch expressions delimit, so ``Ψ`` is the output position of the first token of the last
  switch word emitted (0 before any): a new thought starts *at* its switch word. The paper's
  best setting is ``alpha = 3``, ``beta = 600`` (QwQ-32B-Preview).
* ``mode: ban`` — NoWait ("Wait, We Don't Need to 'Wait'! Removing Thinking Tokens Improves
  Reasoning Efficiency", arXiv 2506.08343): the same words can never be emitted (logit −inf,
  everywhere), with ``words`` as the keyword list.

Which tokens are penalised (:class:`SwitchWords`, built from the tokenizer's vocabulary): each
word in the forms given, lower-cased and capitalised ("Wait", "wait"), in **every** tokenization —
leading space or newline forms (" Wait", "\\nWait") are the tokens whose text is the word after
non-alphanumeric characters. A word is penalised at its *completing* token, never at a bare first
sub-token that also starts unrelated words (the "H" of "Hmm"): a token is penalised when

* its text is ``p + word + q`` (``p`` empty or only non-alphanumerics; when ``p`` is empty, the
  output so far is empty or ends in a non-alphanumeric), or
* the output so far ends with a proper prefix ``word[:j]`` at a word boundary (nothing, or a
  non-alphanumeric, before it) and the token's text is ``word[j:] + q``;

where ``q`` is empty or starts with a non-alphanumeric ("Hmm," completes "Hmm"; "Hmmm", "Waiting"
and "await" are other words). So once "H" (or "Hm") is out, the token that would make it "Hmm" is
penalised; the prefix's own probability is untouched. This is the "ban the sequence" reading of a
multi-token word, chosen over lookahead (which would need extra forward passes per step); for the
embedded model's and Qwen's byte-level BPE vocabularies the default words are single tokens
in their usual forms, where it is exactly TIP. Assumes a tokenizer whose single-token decode
gives the token's text (byte-level BPE, character vocabularies).

Counters per request: ``penalised_steps`` — decode steps whose logits were penalised (or had
words banned), the step that chose EOS included; with single-token forms such as " Wait" every
step inside the window is one (embedded model, GSM8K: all of them at ``beta = 600``);
``thought_switches`` — switch words emitted.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Literal

import torch
from pydantic import Field, model_serializer, model_validator

from harness.adapters.base import Adapter, AdapterParams, register_adapter
from harness.generation import DecodePolicy, RowState

DEFAULT_WORDS = ("Wait", "Alternatively", "Hmm")
DEFAULT_ALPHA = 3.0
DEFAULT_BETA = 600
TAIL_CHARS = 64  # output characters kept per row (longer than any switch word)


class ThoughtPenaltyParams(AdapterParams):
    mode: Literal["penalty", "ban"] = Field("penalty", description="penalty = TIP; ban = NoWait")
    alpha: float | None = Field(None, ge=0, description=f"penalty only (default {DEFAULT_ALPHA}): subtracted from the logits")
    beta: int | None = Field(None, ge=0, description=f"penalty only (default {DEFAULT_BETA}): tokens from a thought's start penalised")
    words: tuple[str, ...] = Field(DEFAULT_WORDS, min_length=1, description="thought-switch words (case forms added)")

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("mode", "penalty") == "ban":
            given = [k for k in ("alpha", "beta") if data.get(k) is not None]
            if given:
                raise ValueError(f"mode='ban' bans the words everywhere; drop {', '.join(given)}")
            return data
        if data.get("alpha") is None:
            data["alpha"] = DEFAULT_ALPHA
        if data.get("beta") is None:
            data["beta"] = DEFAULT_BETA
        return data

    @model_validator(mode="after")
    def _words_are_words(self):
        for word in self.words:
            if not word or not word[0].isalnum() or not word[-1].isalnum():
                raise ValueError(f"switch word {word!r} must start and end with a letter or digit")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None}  # ban mode: no alpha / beta


def word_forms(words) -> list[str]:
    """Each word as given, lower-cased and capitalised, deduplicated, sorted."""
    return sorted({f for w in words for f in (w, w.lower(), w[:1].upper() + w[1:])})


def _bounded(text: str, at: int) -> bool:
    """Whether position ``at`` of ``text`` is a word boundary (text end, or a non-alphanumeric)."""
    return at >= len(text) or not text[at].isalnum()


class SwitchWords:
    """The tokens that complete a thought-switch word, for one tokenizer (rules: module docstring).

    Attributes:
        forms: the word forms matched.
        free: ids that complete a word whatever precedes them (text ``p + word + q``, ``p`` non-empty).
        after_boundary: ids ``word + q`` that complete a word when the output ends at a boundary.
        tails: ``(form, j, ids)``: ids ``form[j:] + q`` that complete ``form`` after ``form[:j]``.
        start_offset: id → characters before the word in the token's text (``len(p)``).
    """

    def __init__(self, tokenizer, words):
        self.forms = word_forms(words)
        special = set(tokenizer.all_special_ids)
        ids = [i for i in range(len(tokenizer)) if i not in special]
        texts = tokenizer.batch_decode([[i] for i in ids])
        heads: dict[str, set[int]] = {}  # a token text's word-bounded heads → ids
        self.free: set[int] = set()
        self.after_boundary: set[int] = set()
        self.start_offset: dict[int, int] = {}
        for i, text in zip(ids, texts):
            if not text:
                continue
            core = text.lstrip("".join(c for c in text if not c.isalnum()))
            lead = len(text) - len(core)
            for form in self.forms:
                if core.startswith(form) and _bounded(core, len(form)):
                    (self.free if lead else self.after_boundary).add(i)
                    self.start_offset[i] = lead
            for k in range(1, len(text) + 1):
                if _bounded(text, k):
                    heads.setdefault(text[:k], set()).add(i)
        self.tails = [
            (form, j, frozenset(heads[form[j:]])) for form in self.forms for j in range(1, len(form)) if form[j:] in heads
        ]

    def completing(self, text: str) -> tuple[set[int], list[tuple[int, frozenset]]]:
        """Ids that would complete a switch word after output ``text`` (the last characters suffice),
        and the ``(j, ids)`` prefix matches that contributed (for :meth:`word_start`)."""
        found = set(self.free)
        if not text or not text[-1].isalnum():
            found |= self.after_boundary
        matches = []
        for form, j, ids in self.tails:
            if text.endswith(form[:j]) and (len(text) == j or not text[-j - 1].isalnum()):
                found |= ids
                matches.append((j, ids))
        return found, matches

    def word_start(self, token: int, matches) -> int:
        """Characters from the output's end *before* ``token`` to where its word starts (negative:
        the word began in earlier tokens)."""
        earlier = [j for j, ids in matches if token in ids]
        return -max(earlier) if earlier else self.start_offset[token]


class ThoughtPenaltyPolicy(DecodePolicy):
    """Per-row TIP / NoWait state, keyed by ``row.index`` (continuous batching: rows join and leave).

    Per row: the last output characters, the output's character length after each token, ``Ψ``
    (the current thought's first output position), and the candidates of the current step.
    """

    def __init__(self, params: ThoughtPenaltyParams, switch: SwitchWords):
        self.p, self.switch = params, switch
        self.tail: dict[int, str] = {}
        self.ends: dict[int, list[int]] = {}  # output characters after each token
        self.thought_start: dict[int, int] = {}
        self.pending: dict[int, tuple[set[int], list]] = {}
        self.penalised: dict[int, int] = {}
        self.switches: dict[int, int] = {}

    def begin(self, rows: list[RowState]) -> None:
        for row in rows:
            i = row.index
            self.tail[i], self.ends[i], self.thought_start[i] = "", [], 0
            self.penalised[i] = self.switches[i] = 0

    def choose(self, rows: list[RowState], logits: torch.Tensor) -> list[int]:
        ban = self.p.mode == "ban"
        where_rows, where_ids = [], []
        for r, row in enumerate(rows):
            if row.done:
                continue
            i = row.index
            found, matches = self.switch.completing(self.tail[i])
            self.pending[i] = (found, matches)
            active = ban or len(row.token_ids) < self.thought_start[i] + self.p.beta
            if found and active and not row.forced:
                where_rows.extend([r] * len(found))
                where_ids.extend(found)
                self.penalised[i] += 1
        if where_rows:
            logits = logits.clone()
            index = (torch.tensor(where_rows, device=logits.device), torch.tensor(where_ids, device=logits.device))
            if ban:
                logits[index] = float("-inf")
            else:
                logits[index] -= self.p.alpha
        return super().choose(rows, logits)

    def after_token(self, row: RowState, token: int, text_so_far) -> None:
        i = row.index
        text = text_so_far()
        before = self.ends[i][-1] if self.ends[i] else 0
        self.ends[i].append(len(text))
        self.tail[i] = text[-TAIL_CHARS:]
        found, matches = self.pending.pop(i, (set(), []))
        if token in found:
            self.switches[i] += 1
            start_char = before + self.switch.word_start(token, matches)
            # Ψ: the output position of the token holding the word's first character
            self.thought_start[i] = bisect_right(self.ends[i], start_char)

    def finish(self, row: RowState) -> None:
        i = row.index
        row.counters["penalised_steps"] = float(self.penalised.get(i, 0))
        row.counters["thought_switches"] = float(self.switches.get(i, 0))
        for state in (self.tail, self.ends, self.thought_start, self.pending, self.penalised, self.switches):
            state.pop(i, None)


@register_adapter("thought_penalty")
class ThoughtPenalty(Adapter):
    paper = (
        "Thoughts Are All Over the Place: On the Underthinking of o1-Like LLMs (TIP; NoWait arXiv 2506.08343), "
        "a training-free stand-in for Retro-Search (arXiv 2504.04383)"
    )
    arxiv = "2501.18585"
    Params = ThoughtPenaltyParams
    counters = {
        "penalised_steps": "decode steps whose thought-switch tokens were penalised (or banned)",
        "thought_switches": "thought-switch words emitted",
    }

    def __init__(self, params=None):
        super().__init__(params)
        self._switch: tuple[Any, SwitchWords] | None = None

    def switch_words(self, tokenizer) -> SwitchWords:
        """The :class:`SwitchWords` of ``tokenizer`` (built once per tokenizer)."""
        if self._switch is None or self._switch[0] is not tokenizer:
            self._switch = (tokenizer, SwitchWords(tokenizer, self.params.words))
        return self._switch[1]

    def make_policy(self, tokenizer) -> DecodePolicy:
        return ThoughtPenaltyPolicy(self.params, self.switch_words(tokenizer))
