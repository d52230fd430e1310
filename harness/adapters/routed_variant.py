"""A generation variant that routes each request to a strategy chosen by a probe (``difficulty_router``).

For each lm-eval ``generate_until`` request: the plain chat prompt lm-eval built (through
:meth:`RoutedVariant.apply_chat_template`, which is the base class's and remembers each rendered
prompt's messages) is run once through the model; the probe classifies the last token's final
hidden state (:func:`harness.adapters.difficulty_probe.last_token_state`). The requests of each
class are then decoded together by :meth:`harness.variant.GenerationVariant._generate_until`
(unchanged), as copies whose prompt is re-rendered with the class's system prompt and whose
generation kwargs carry the class's budget and temperature
(:meth:`~harness.adapters.difficulty_probe.Strategy.generation_kwargs`), with a decode policy
that reports the class's counters. Stats keep each request's identity ``(task, doc_id, idx,
sample)``; their ``prompt_text`` is the prompt actually decoded. A request whose prompt did not
come from :meth:`apply_chat_template` keeps its prompt (no system prompt is added).

Imports lm-eval (through ``harness.variant``): import it inside the code path that wraps.
"""

from __future__ import annotations

import copy

from harness.adapters.difficulty_probe import CLASSES, Probe, Strategy, counters_of, last_token_state
from harness.adapters.reasoning_format import chat_prompt
from harness.generation import StaticCounters
from harness.variant import GenerationVariant


class RoutedVariant(GenerationVariant):
    """:class:`~harness.variant.GenerationVariant` plus ``probe`` (a
    :class:`~harness.adapters.difficulty_probe.Probe`), ``strategies`` (class → strategy) and
    ``cv_accuracy`` (reported in each request's counters)."""

    def __init__(self, *args, probe: Probe, strategies: dict[str, Strategy], cv_accuracy: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.probe, self.strategies, self.cv_accuracy = probe, strategies, cv_accuracy
        self.chats: dict[str, list[dict]] = {}  # rendered plain prompt → its messages

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        text = super().apply_chat_template(chat_history, add_generation_prompt)
        if add_generation_prompt:
            self.chats[text] = [dict(m) for m in chat_history]
        return text

    def route(self, prompts: list[str]) -> list[str]:
        """The class of each plain prompt text (one forward pass per distinct prompt)."""
        distinct = list(dict.fromkeys(prompts))
        if self.probe.const is not None:
            return [self.probe.const] * len(prompts)
        states = [last_token_state(self.model, self.tokenizer(p, add_special_tokens=False)["input_ids"])
                  for p in distinct]
        label = dict(zip(distinct, self.probe.predict(states)))
        return [label[p] for p in prompts]

    def strategy_prompt(self, prompt: str, strategy: Strategy) -> str:
        """``prompt`` re-rendered with ``strategy``'s system prompt (as it is when it has none or
        when its messages are unknown)."""
        messages = self.chats.get(prompt)
        if strategy.system_prompt is None or messages is None:
            return prompt
        return chat_prompt(self.tokenizer, messages, strategy.system_prompt)

    def _generate_until(self, requests) -> list[str]:
        classes = self.route([req.args[0] for req in requests])
        outputs: list[str] = [""] * len(requests)
        factory, on_progress, done = self.policy_factory, self.on_progress, 0
        try:
            for name in CLASSES:
                indices = [i for i, c in enumerate(classes) if c == name]
                if not indices:
                    continue
                strategy = self.strategies[name]
                shims = []
                for i in indices:
                    shim = copy.copy(requests[i])
                    context, kwargs = requests[i].args
                    args = (self.strategy_prompt(context, strategy), strategy.generation_kwargs(kwargs, self.max_new_tokens))
                    if hasattr(shim, "arguments"):  # lm-eval's Instance: args is a read-only view of arguments
                        shim.arguments = args
                    else:
                        shim.args = args
                    shims.append(shim)
                counters = counters_of(name, self.cv_accuracy)
                self.policy_factory = lambda counters=counters: StaticCounters(counters)
                if on_progress:
                    self.on_progress = lambda n, before=done: on_progress(before + n)
                for i, text in zip(indices, super()._generate_until(shims)):
                    outputs[i] = text
                done += len(indices)
        finally:
            self.policy_factory, self.on_progress = factory, on_progress
        return outputs
