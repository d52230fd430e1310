"""How a model marks its reasoning, read from its tokenizer (never assumed from its name).

Two formats, chosen by :func:`detect_format`:

* ``think_tokens`` — the vocabulary holds ``<think>`` and ``</think>``, each encoded as one
  token from text (Qwen3, the DeepSeek-R1 distills). The reasoning is what the model writes
  up to ``</think>``; budget forcing ends it by forcing ``</think>`` and then the answer cue;
  NoThinking ("AdaptThink: Reasoning Models Can Learn When to Think", arXiv 2505.13417)
  prefills the empty block ``<think>\\n\\n</think>\\n\\n`` right after the chat template's
  generation prompt (when the template already opened ``<think>``, as the R1 distills' does,
  only the rest of the block is appended). That is also what Qwen3's own template writes for
  ``enable_thinking=False``.
* ``plain_text`` — no such tokens (e.g. the embedded SmolLM2). The model's chain of thought is
  ordinary text with no opening marker; the end-of-reasoning marker is the **answer cue**
  (default ``"\\n\\nFinal answer: \\boxed{"``): reasoning is everything before it. There is no
  block to prefill, so NoThinking forces the cue (leading whitespace stripped) as the very
  first output tokens — a zero-token reasoning budget — and the answer opening is part of the
  output exactly as in the budget-forced path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class ReasoningFormat:
    """A model's reasoning markers.

    Attributes:
        kind: ``think_tokens`` or ``plain_text``.
        open_id, close_id: ids of ``<think>`` / ``</think>`` (``None`` for ``plain_text``).
    """

    kind: Literal["think_tokens", "plain_text"]
    open_id: int | None = None
    close_id: int | None = None

    @property
    def has_think_tokens(self) -> bool:
        return self.kind == "think_tokens"

    def end_of_reasoning_ids(self, tokenizer, answer_cue: str) -> list[int]:
        """Ids forced when the reasoning budget runs out: ``</think>`` + cue, or the cue alone."""
        cue = tokenizer(answer_cue, add_special_tokens=False)["input_ids"]
        return ([self.close_id] + cue) if self.has_think_tokens else cue

    def no_thinking_prompt(self, prompt: str) -> str:
        """``prompt`` (a chat-templated prompt ending with the generation prompt) with the empty
        thinking block prefilled; unchanged for ``plain_text`` (its NoThinking forces the cue)."""
        if not self.has_think_tokens:
            return prompt
        if prompt.rstrip().endswith(THINK_OPEN):  # the template already opened the block
            return prompt.rstrip() + "\n\n" + THINK_CLOSE + "\n\n"
        return prompt + THINK_OPEN + "\n\n" + THINK_CLOSE + "\n\n"

    def no_thinking_forced_ids(self, tokenizer, answer_cue: str) -> list[int]:
        """Ids forced first under NoThinking: the stripped cue (``plain_text``), else none."""
        if self.has_think_tokens:
            return []
        return tokenizer(answer_cue.lstrip(), add_special_tokens=False)["input_ids"]


def _single_token_id(tokenizer, text: str) -> int | None:
    """The id of ``text`` when the vocabulary has it and text encodes to exactly that token."""
    token_id = tokenizer.get_vocab().get(text)
    if token_id is None:
        return None
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return token_id if ids == [token_id] else None


def detect_format(tokenizer) -> ReasoningFormat:
    """The reasoning format of ``tokenizer``: ``think_tokens`` when both ``<think>`` and
    ``</think>`` are single tokens of its vocabulary, else ``plain_text``."""
    open_id, close_id = _single_token_id(tokenizer, THINK_OPEN), _single_token_id(tokenizer, THINK_CLOSE)
    if open_id is not None and close_id is not None:
        return ReasoningFormat("think_tokens", open_id, close_id)
    return ReasoningFormat("plain_text")


@dataclass(frozen=True)
class PromptTransform:
    """What a variant does to a chat before its model reads it: a system prompt and/or a
    prefilled empty thinking block. The one place that builds a variant's prompt: evaluation
    (:class:`harness.adapters.prompted_variant.PromptedVariant` through lm-eval), calibration
    (:func:`chat_prompt`) and serving (:func:`harness.serve.chat_format.render`, for ``harness
    serve`` and agent cells) all call :meth:`render`. ``PromptTransform()`` changes nothing.

    Attributes:
        system_prompt: put first: a new system message, or in front of an existing first
            system message's content after a blank line (``None``: none).
        prefill_format: the reasoning format whose NoThinking prefill
            (:meth:`ReasoningFormat.no_thinking_prompt`) follows the generation prompt
            (``None``: no prefill).
    """

    system_prompt: str | None = None
    prefill_format: ReasoningFormat | None = None

    @property
    def is_identity(self) -> bool:
        return not (self.system_prompt or self.prefill_format)

    def messages(self, messages: list[dict]) -> list[dict]:
        """``messages`` (copied) with the system prompt put first."""
        messages = [dict(m) for m in messages]
        if self.system_prompt:
            if messages and messages[0].get("role") == "system":
                messages[0]["content"] = f"{self.system_prompt}\n\n{messages[0]['content']}"
            else:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def render(self, tokenizer, messages: list[dict], **template_kwargs) -> str:
        """The prompt text for chat ``messages``: the tokenizer's chat template (with a
        generation prompt and ``template_kwargs``, e.g. ``tools``) over :meth:`messages`, then
        the prefill. Raises what the template raises (e.g. roles that must alternate)."""
        text = tokenizer.apply_chat_template(
            self.messages(messages), tokenize=False, add_generation_prompt=True, **template_kwargs
        )
        return self.prefill_format.no_thinking_prompt(text) if self.prefill_format else text


def chat_prompt(
    tokenizer,
    messages: list[dict[str, str]],
    system_prompt: str | None = None,
    prefill_format: ReasoningFormat | None = None,
) -> str:
    """The prompt text a variant gives the model for chat ``messages``:
    ``PromptTransform(system_prompt, prefill_format).render(tokenizer, messages)`` (the chat
    template with a generation prompt, the system prompt first, then the NoThinking prefill).

    Evaluation prompts (through lm-eval), calibration prompts and served prompts are all built
    by :class:`PromptTransform`.
    """
    return PromptTransform(system_prompt, prefill_format).render(tokenizer, messages)
