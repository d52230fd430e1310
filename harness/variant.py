"""A technique variant as an lm-eval model: ``generate_until`` through the shared decode loop,
``loglikelihood`` through the shared scoring pass (:mod:`harness.scoring`).

The variant records per-request statistics keyed by the request's identity and sample
``(task, doc_id, idx, sample)``: lm-eval reorders requests, and the runner joins these
statistics to lm-eval's per-sample records. ``sample`` (0..n-1) is the occurrence of that
instance in the request list: for a task with ``repeats: n`` lm-eval puts the same ``Instance``
n times in the list (its responses are appended to ``resps`` in that order, so ``sample`` k is
``resps[k]``); it is 0 for every single-sample request.

Sampling: a ``generate_until`` request samples when its generation kwargs ask for it
(:func:`sampling_of`); each sample then draws from its own generator seeded
:func:`sample_seed` ``(seed, doc_id, sample)``, with ``seed`` the request's ``seed`` kwarg (the
cell seed, put there by :mod:`harness.tasks.lm_eval_bridge`; 0 when absent), so a sample's
tokens depend neither on the batch it lands in nor on the batch size. Greedy is the default.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from lm_eval.api.model import LM

from harness.generation import DecodePolicy, GenerationSettings, RowState, SequenceResult, eos_ids, generate


@dataclass
class RequestStats:
    """What a variant measured for one request (one lm-eval ``Instance``).

    For a log-likelihood request nothing is generated: ``output_tokens`` and
    ``finish_reason`` are ``None`` (not applicable), ``input_tokens`` counts context +
    continuation, ``latency_s`` is an attributed share of its batch's time
    (``latency_attributed``), ``ttft_s``/``tpot_s`` are ``None`` and ``output_text`` is the
    scored continuation.
    """

    input_tokens: int
    output_tokens: int | None
    finish_reason: str | None
    latency_s: float | None
    ttft_s: float | None
    tpot_s: float | None
    itl_s: list[float]
    batch_size: int
    counters: dict[str, float]
    prompt_text: str
    output_text: str
    latency_attributed: bool = False
    queue_s: float | None = 0.0  # wait for a batch slot before the request started (continuous batching)
    logprob: float | None = None  # log-likelihood requests: Σ log p(continuation), nats
    is_greedy: bool | None = None  # log-likelihood requests: continuation is the greedy one

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
            queue_s=result.queue_s,
        )


RequestKey = tuple[str, int, int, int]  # (task name, doc_id, request index within the doc, sample)


def sample_seed(seed: int, doc_id: int, sample: int) -> int:
    """The seed of one sample's generator: the first 8 bytes (big-endian, top bit cleared) of
    ``sha256("<seed>:<doc_id>:<sample>")``. Stable across runs, machines and batch layouts;
    distinct samples of a doc (and distinct docs) get unrelated streams."""
    digest = hashlib.sha256(f"{int(seed)}:{int(doc_id)}:{int(sample)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def sampling_of(kwargs: dict[str, Any]) -> tuple[float, float]:
    """``(temperature, top_p)`` that lm-eval generation kwargs ask for; temperature 0 = greedy.

    ``do_sample=False`` is greedy whatever else is set (``transformers``' rule). Otherwise the
    request samples when ``do_sample`` is true or ``temperature > 0`` or ``top_p < 1``, at
    ``temperature`` (1.0 when not given); an explicit ``temperature`` of 0 is greedy.
    """
    do_sample = kwargs.get("do_sample")
    temperature = kwargs.get("temperature")
    top_p = 1.0 if kwargs.get("top_p") is None else float(kwargs["top_p"])
    if do_sample is False:
        return 0.0, 1.0
    if temperature is None:
        temperature = 1.0 if do_sample or top_p < 1.0 else 0.0
    temperature = float(temperature)
    return (temperature, top_p) if temperature > 0 else (0.0, 1.0)


def sample_indices(requests) -> list[int]:
    """Each request's ``sample``: how many times the same instance (task, doc_id, idx) came
    before it in ``requests`` (lm-eval lists a repeated instance ``repeats`` times), unless the
    request carries its own ``sample`` (an int attribute; the prove kind's attempts, whose index
    continues across rounds of a cascade). lm-eval's instances carry none."""
    seen: dict[tuple, int] = {}
    out = []
    for req in requests:
        own = getattr(req, "sample", None)
        if isinstance(own, int):
            out.append(own)
            continue
        key = (req.task_name, req.doc_id, req.idx)
        out.append(seen.get(key, 0))
        seen[key] = out[-1] + 1
    return out


class GenerationVariant(LM):
    """A technique variant as an lm-eval model (``generate_until`` through the shared loop).

    Attributes:
        stats: ``(task, doc_id, idx, sample) → RequestStats`` for every request served.
        param_bytes: bytes of the model this variant runs (see :func:`harness.models.param_bytes`).
        generation_time_s: summed wall time of the decode batches (for throughput).
        on_progress: optional callback ``(n_done: float) -> None``: requests done, fractional
            while a batch decodes (each row counts ``tokens / max_new_tokens``, 1 once finished),
            called after each batch and at most every ``progress_interval_s`` seconds during one.
        progress_interval_s: the shortest gap between two in-batch progress calls (seconds).
        telemetry: optional :class:`harness.telemetry.Telemetry`; when set, each
            ``generate_until`` / ``loglikelihood`` call runs inside one measurement window (the
            model's work only: lm-eval's bookkeeping and grading stay outside), collected in
            ``window_results``.
        supports_loglikelihood: the technique is a model transform whose forward pass is the
            whole technique (``Adapter.supports_loglikelihood``); else ``loglikelihood`` raises.
        compiled: a :class:`harness.compiled_step.CompiledStep` of :attr:`model` when the variant
            decodes with a compiled step (the suite's ``compile: true``); ``None``: eager.
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
        supports_loglikelihood: bool = False,
    ):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.policy_factory = policy_factory
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.param_bytes = param_bytes
        self.name = name
        self.supports_loglikelihood = supports_loglikelihood
        self.stats: dict[RequestKey, RequestStats] = {}
        self.generation_time_s = 0.0
        self.on_progress: Callable[[float], None] | None = None
        self.progress_interval_s = 0.25
        self.telemetry = None
        self.window_key = "generation"
        self.window_results: list = []
        self.compiled = None

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

    def warmup(self, prompts: list[str], max_new_tokens: int, measured: list[str] | None = None,
               requests: int = 0) -> float:
        """Decode ``prompts`` (chat-formatted texts) once, outside any telemetry window and
        without recording stats: the cold start (first allocations, kernel selection, lazy
        initialisation) is paid here instead of by the first measured batch. With a compiled step
        (:attr:`compiled`) it also fixes the cell's cache length from the ``measured`` prompts and
        compiles the step at every batch size ``requests`` requests decode in (the full batch and
        the last, smaller one), so the measured window compiles nothing.

        Returns:
            The wall time in seconds (the cell's ``warmup_time_s``).
        """
        from harness.telemetry.clock import monotonic_s

        settings = GenerationSettings(max_new_tokens=max_new_tokens, eos_token_ids=eos_ids(self.model, self.tokenizer))
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        began = monotonic_s()
        if self.compiled is not None and type(self.policy_factory()).forward is DecodePolicy.forward:
            # (a technique that replaces the forward decodes eagerly: nothing to compile for it)
            lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in measured or prompts]
            self.compiled.plan(lengths + [len(e) for e in encoded], self.max_new_tokens)
            n = max(requests, 1)
            self.compiled.precompile(self.tokenizer, [min(self.batch_size, n), n % self.batch_size])
        for start, stop, policy in self._decode_calls(len(encoded)):
            generate(self.model, self.tokenizer, encoded[start:stop], settings, policy, batch_size=self.batch_size,
                     compiled=self.compiled)
        if self.compiled is not None:
            self.compiled.reset_counts()
        return monotonic_s() - began

    def _decode_calls(self, n: int):
        """``(start, stop, policy)`` of each decode-loop call over ``n`` requests: one continuous
        batch when the technique's policy keeps per-row state (``DecodePolicy.continuous``), else
        static batches of ``batch_size``, each with a fresh policy."""
        policy = self.policy_factory()
        step = max(n if policy.continuous else self.batch_size, 1)
        for start in range(0, n, step):
            yield start, min(start + step, n), policy if start == 0 else self.policy_factory()

    def _generate_until(self, requests) -> list[str]:
        """Generation for lm-eval ``generate_until`` requests: greedy, or sampling when the
        request's kwargs ask for it (:func:`sampling_of`; ``top_p`` too), one generator per
        sample seeded :func:`sample_seed` ``(kwargs["seed"] or 0, doc_id, sample)``.

        Requests are grouped by generation settings, sorted by prompt length (longest
        first, as lm-eval's HF backend does; the samples of one prompt stay together) and
        decoded ``batch_size`` at a time.

        Raises:
            ValueError: sampling asked of a technique that decodes greedily only
                (``DecodePolicy.greedy_only``, e.g. speculative decoding).
        """
        from harness.telemetry.clock import monotonic_s

        outputs: list[str | None] = [None] * len(requests)
        samples = sample_indices(requests)
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            _, kwargs = req.args
            key = repr(sorted((k, repr(v)) for k, v in kwargs.items()))
            groups.setdefault(key, []).append(i)
        eos = eos_ids(self.model, self.tokenizer)
        done = 0
        for indices in groups.values():
            _, kwargs = requests[indices[0]].args
            until = kwargs.get("until") or []
            temperature, top_p = sampling_of(kwargs)
            base_seed = int(kwargs.get("seed") or 0)
            settings = GenerationSettings(
                max_new_tokens=int(kwargs.get("max_gen_toks", self.max_new_tokens)),
                stop_strings=[until] if isinstance(until, str) else list(until),
                eos_token_ids=eos,
                temperature=temperature,
                top_p=top_p,
            )
            encoded = {i: self.tokenizer(requests[i].args[0], add_special_tokens=False)["input_ids"] for i in indices}
            order = sorted(indices, key=lambda i: (-len(encoded[i]), requests[i].args[0]))
            for start, stop, policy in self._decode_calls(len(order)):
                chunk = order[start:stop]
                began = monotonic_s()
                seeds = [sample_seed(base_seed, requests[i].doc_id, samples[i]) for i in chunk] if temperature else None
                results = generate(
                    self.model, self.tokenizer, [encoded[i] for i in chunk], settings, policy, seeds=seeds,
                    on_step=self._step_progress(done) if self.on_progress else None, batch_size=self.batch_size,
                    compiled=self.compiled,
                )
                self.generation_time_s += monotonic_s() - began
                for i, result in zip(chunk, results):
                    req = requests[i]
                    outputs[i] = result.text
                    self.stats[(req.task_name, req.doc_id, req.idx, samples[i])] = RequestStats.of(
                        result, min(len(chunk), self.batch_size), req.args[0]
                    )
                done += len(chunk)
                if self.on_progress:
                    self.on_progress(done)
        return [o if o is not None else "" for o in outputs]

    def _step_progress(self, done_before: int) -> Callable[[list[RowState]], None]:
        """The decode loop's per-step callback: reports ``done_before`` plus each row's share
        (finished rows 1, others ``tokens / max_new_tokens``), at most every
        ``progress_interval_s`` seconds (one clock read per step otherwise)."""
        from harness.telemetry.clock import monotonic_s

        last = [monotonic_s()]

        def on_step(rows: list[RowState]) -> None:
            now = monotonic_s()
            if now - last[0] < self.progress_interval_s:
                return
            last[0] = now
            share = sum(1.0 if r.done else len(r.token_ids) / max(r.max_new_tokens, 1) for r in rows)
            self.on_progress(done_before + share)

        return on_step

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """lm-eval entry point: :meth:`_loglikelihood` inside a telemetry window when one is set
        (the requests are tokenized before the window opens: it covers the model's work only).

        Raises:
            NotImplementedError: the technique lives in the decode loop (early exit, budget
                forcing, ...) and has no log-likelihood of its own.
        """
        if not self.supports_loglikelihood:
            raise NotImplementedError(
                f"{self.name}: this variant's technique lives in the decode loop; it has no log-likelihood "
                "(only adapters with supports_loglikelihood = True run log-likelihood tasks)"
            )
        from harness.scoring import encode_pair

        pairs = [encode_pair(self.tokenizer, *req.args) for req in requests]  # tokenization: outside the window
        if self.telemetry is None:
            return self._loglikelihood(requests, pairs)
        with self.telemetry.window(f"{self.window_key}:{len(self.window_results)}") as window:
            outputs = self._loglikelihood(requests, pairs)
        self.window_results.append(window.result)
        return outputs

    def _loglikelihood(self, requests, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """``(logprob, is_greedy)`` per ``(context, continuation)`` request, as lm-eval defines
        them (:mod:`harness.scoring`), with this variant's model, ``batch_size`` rows at a time.

        Args:
            requests: lm-eval ``loglikelihood`` instances.
            pairs: their ``(context_ids, continuation_ids)`` (:func:`harness.scoring.encode_pair`).

        Counters: what the adapter's decode policy reports when a row finishes having generated
        nothing (a model transform's static facts, e.g. ``layers_executed`` of ``depth_subnet``).
        """
        from harness.scoring import max_length_of, score

        policy = self.policy_factory()
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = eos_ids(self.model, self.tokenizer)[0]
        n_docs = len({(req.task_name, req.doc_id) for req in requests})

        def on_batch(done: int) -> None:  # progress in documents, like generate_until's
            if self.on_progress:
                self.on_progress(done * n_docs // max(len(requests), 1))

        scored = score(
            self.model,
            pairs,
            self.batch_size,
            pad_id,
            forward=policy.forward,
            max_length=max_length_of(self.model, self.tokenizer),
            on_batch=on_batch,
        )
        self.generation_time_s += sum(s.latency_s for s in scored)
        outputs = []
        for req, result, sample in zip(requests, scored, sample_indices(requests)):
            row = RowState(index=0, input_tokens=result.input_tokens)
            policy.finish(row)
            context, continuation = req.args
            self.stats[(req.task_name, req.doc_id, req.idx, sample)] = RequestStats(
                input_tokens=result.input_tokens,
                output_tokens=None,
                finish_reason=None,
                latency_s=result.latency_s,
                ttft_s=None,
                tpot_s=None,
                itl_s=[],
                queue_s=None,
                batch_size=result.batch_rows,
                counters=dict(row.counters),
                prompt_text=context,
                output_text=continuation,
                latency_attributed=True,
                logprob=result.logprob,
                is_greedy=result.is_greedy,
            )
            outputs.append((result.logprob, result.is_greedy))
        return outputs

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("loglikelihood_rolling is not supported by generation variants")
