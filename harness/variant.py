"""A technique variant as an lm-eval model: ``generate_until`` through the shared decode loop.

The variant records per-request statistics keyed by the request's identity
``(task, doc_id, idx)``: lm-eval reorders requests, and the runner joins these statistics
to lm-eval's per-sample records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lm_eval.api.model import LM

from harness.generation import DecodePolicy, GenerationSettings, SequenceResult, eos_ids, generate


@dataclass
class RequestStats:
    """What a variant measured for one request (one lm-eval ``Instance``)."""

    input_tokens: int
    output_tokens: int
    finish_reason: str
    latency_s: float | None
    ttft_s: float | None
    tpot_s: float | None
    itl_s: list[float]
    batch_size: int
    counters: dict[str, float]
    prompt_text: str
    output_text: str

    @classmethod
    def of(cls, result: SequenceResult, batch_size: int, prompt: str) -> "RequestStats":
        return cls(
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            finish_reason=result.finish_reason,
            latency_s=result.latency_s,
            ttft_s=result.ttft_s,
            tpot_s=result.tpot_s,
            itl_s=result.itl_s,
            batch_size=batch_size,
            counters=result.counters,
            prompt_text=prompt,
            output_text=result.text,
        )


RequestKey = tuple[str, int, int]  # (task name, doc_id, request index within the doc)


class GenerationVariant(LM):
    """A technique variant as an lm-eval model (``generate_until`` through the shared loop).

    Attributes:
        stats: ``(task, doc_id, idx) → RequestStats`` for every request served.
        param_bytes: bytes of the model this variant runs (see :func:`harness.models.param_bytes`).
        generation_time_s: summed wall time of the decode batches (for throughput).
        on_progress: optional callback ``(n_done: int) -> None`` after each batch.
        telemetry: optional :class:`harness.telemetry.Telemetry`; when set, each
            ``generate_until`` call runs inside one measurement window (the model's work only:
            lm-eval's bookkeeping and grading stay outside), collected in ``window_results``.
    """

    def __init__(
        self,
        model,
        tokenizer,
        policy_factory: Callable[[], DecodePolicy],
        batch_size: int,
        max_new_tokens: int,
        param_bytes: int,
        name: str,
    ):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.policy_factory = policy_factory
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.param_bytes = param_bytes
        self.name = name
        self.stats: dict[RequestKey, RequestStats] = {}
        self.generation_time_s = 0.0
        self.on_progress: Callable[[int], None] | None = None
        self.telemetry = None
        self.window_key = "generation"
        self.window_results: list = []

    # -- lm-eval's chat-template interface -------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return self.name.replace("/", "__").replace(":", "_")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        template = getattr(self.tokenizer, "chat_template", None)
        return template if isinstance(template, str) else None

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    # -- requests ----------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """lm-eval entry point: :meth:`_generate_until` inside a telemetry window when one is set."""
        if self.telemetry is None:
            return self._generate_until(requests)
        with self.telemetry.window(f"{self.window_key}:{len(self.window_results)}") as window:
            outputs = self._generate_until(requests)
        self.window_results.append(window.result)
        return outputs

    def warmup(self, prompts: list[str], max_new_tokens: int) -> float:
        """Decode ``prompts`` (chat-formatted texts) once, outside any telemetry window and
        without recording stats: the cold start (first allocations, kernel selection, lazy
        initialisation) is paid here instead of by the first measured batch.

        Returns:
            The wall time in seconds (the cell's ``warmup_time_s``).
        """
        from harness.telemetry.clock import monotonic_s

        settings = GenerationSettings(max_new_tokens=max_new_tokens, eos_token_ids=eos_ids(self.model, self.tokenizer))
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        began = monotonic_s()
        for start in range(0, len(encoded), self.batch_size):
            generate(self.model, self.tokenizer, encoded[start : start + self.batch_size], settings, self.policy_factory())
        return monotonic_s() - began

    def _generate_until(self, requests) -> list[str]:
        """Greedy generation for lm-eval ``generate_until`` requests.

        Requests are grouped by generation settings, sorted by prompt length (longest
        first, as lm-eval's HF backend does) and decoded ``batch_size`` at a time.

        Raises:
            ValueError: a request asks for sampling (``do_sample=True`` / temperature > 0);
                the harness measures greedy decoding only, for now.
        """
        from harness.telemetry.clock import monotonic_s

        outputs: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            _, kwargs = req.args
            if kwargs.get("do_sample") or float(kwargs.get("temperature", 0.0) or 0.0) > 0:
                raise ValueError(f"{req.task_name}: sampling is not supported by the harness yet (got {kwargs})")
            key = repr(sorted((k, repr(v)) for k, v in kwargs.items()))
            groups.setdefault(key, []).append(i)
        eos = eos_ids(self.model, self.tokenizer)
        done = 0
        for indices in groups.values():
            _, kwargs = requests[indices[0]].args
            until = kwargs.get("until") or []
            settings = GenerationSettings(
                max_new_tokens=int(kwargs.get("max_gen_toks", self.max_new_tokens)),
                stop_strings=[until] if isinstance(until, str) else list(until),
                eos_token_ids=eos,
            )
            encoded = {i: self.tokenizer(requests[i].args[0], add_special_tokens=False)["input_ids"] for i in indices}
            order = sorted(indices, key=lambda i: (-len(encoded[i]), requests[i].args[0]))
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                began = monotonic_s()
                results = generate(
                    self.model, self.tokenizer, [encoded[i] for i in chunk], settings, self.policy_factory()
                )
                self.generation_time_s += monotonic_s() - began
                for i, result in zip(chunk, results):
                    req = requests[i]
                    outputs[i] = result.text
                    self.stats[(req.task_name, req.doc_id, req.idx)] = RequestStats.of(
                        result, len(chunk), req.args[0]
                    )
                done += len(chunk)
                if self.on_progress:
                    self.on_progress(done)
        return [o if o is not None else "" for o in outputs]

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            "log-likelihood tasks are not supported by generation variants yet (the NLU suite adds them)"
        )

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("loglikelihood_rolling is not supported by generation variants")
