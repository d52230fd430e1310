"""A generation variant whose chat prompts carry a system prompt and/or a prefilled block.

lm-eval builds every chat prompt through the model's ``apply_chat_template`` (the cell runs
with ``apply_chat_template=True``; the user message is the task's prompt). This subclass adds
the variant's own system message (put in front of any system message lm-eval sends) and, for
NoThinking, the empty thinking block after the generation prompt
(:meth:`harness.adapters.reasoning_format.ReasoningFormat.no_thinking_prompt`). The stored
``prompt_text`` and ``input_tokens`` of each sample therefore include both. With neither set
it is exactly :class:`harness.variant.GenerationVariant`.

Both live in :attr:`PromptedVariant.prompt_transform` (a
:class:`~harness.adapters.reasoning_format.PromptTransform`), which a served variant reuses
(:meth:`harness.serve.backend.VariantBackend.from_variant`): ``harness serve`` and agent cells
build the same prompt as evaluation.

Imports lm-eval (through ``harness.variant``): import it inside the code path that wraps.
"""

from __future__ import annotations

from harness.adapters.reasoning_format import PromptTransform, ReasoningFormat
from harness.variant import GenerationVariant


class PromptedVariant(GenerationVariant):
    """:class:`~harness.variant.GenerationVariant` plus ``system_prompt`` and ``prefill_format``
    (the reasoning format whose empty block is prefilled; ``None`` = no prefill), kept together
    as :attr:`prompt_transform`."""

    def __init__(self, *args, system_prompt: str | None = None, prefill_format: ReasoningFormat | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.prompt_transform = PromptTransform(system_prompt, prefill_format)

    @property
    def system_prompt(self) -> str | None:
        return self.prompt_transform.system_prompt

    @property
    def prefill_format(self) -> ReasoningFormat | None:
        return self.prompt_transform.prefill_format

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        if self.prompt_transform.is_identity:
            return super().apply_chat_template(chat_history, add_generation_prompt)
        if not add_generation_prompt:
            raise ValueError("a prompted variant builds prompts that end with the generation prompt only")
        return self.prompt_transform.render(self.tokenizer, chat_history)
