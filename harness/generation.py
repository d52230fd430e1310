"""The decode loop every generation adapter shares.

One loop over a ``transformers`` causal LM with a KV cache: a batched prefill of the
left-padded prompts, then one step per token. The batch is continuous (Orca, Yu et al., OSDI
2022: iteration-level scheduling): a finished sequence leaves the batch at once and the next
prompt takes its slot (:mod:`harness.kv_batch`); stop strings are checked on each token's new
text only (:mod:`harness.detok`), never by re-decoding the output. Techniques are *policies* plugged into it
(:class:`DecodePolicy`), not forks of it: a policy may force tokens for a row (budget
forcing), veto a row's continuation, or keep its own counters. Greedy decoding with the
default policy is token-for-token equal to ``model.generate(do_sample=False)`` (a test).

Sampling (``settings.temperature > 0``): temperature, then nucleus (``top_p``) truncation, then
one draw per row and step from that row's *own* seeded generator (:class:`Sampling`), by
inverse CDF over the vocabulary in id order: a row's tokens depend on its prompt and seed only,
not on its batch neighbours or the batch size (a test). Greedy stays the default. The draw
happens in :meth:`DecodePolicy.pick`; a policy that picks tokens itself (overrides
:meth:`DecodePolicy.choose` without calling ``pick``) stays greedy, and a policy whose technique
needs greedy decoding says so with ``greedy_only`` (:func:`generate` then refuses to sample).

Token timing (DESIGN.md §4) is taken here, with an injectable clock:

* a request starts when it enters the batch (the call's start, after tokenization with the
  inputs on the device, for the first ``batch_size`` prompts; the clock read just before its
  own prefill for a prompt that waited for a slot, whose wait is its ``queue_s``), so its TTFT
  includes its own prefill and no wait;
* a token's timestamp is when its id is available on the host (``.tolist()`` after the
  step, which synchronises a CUDA device);
* an *emission* is the set of a sequence's tokens one model pass produced: one token per step
  normally, several when a policy's ``forward`` returns logits an earlier pass already computed
  (``"reused": True`` in its output, e.g. the accepted drafts of a speculative round). Its time
  is the stamp of its last token;
* ``ttft_s`` = first emission's time − start (prefill included), ``latency_s`` = that
  sequence's own last emission's time − start; ``itl_s`` has one entry per token after the
  first: a token of emission j (j ≥ 1) of k tokens gets (time_j − time_{j−1}) / k (the convention
  of vLLM's and SGLang's serving benchmarks for chunked streaming: per-token ITL = the chunk's
  gap / its tokens), the other tokens of the first emission get 0 — so
  ``ttft_s + sum(itl_s) == latency_s`` and ``len(itl_s) == output_tokens − 1`` by construction;
* a sequence whose first generated token is EOS (``output_tokens = 0``) still took that step:
  ``ttft_s = latency_s`` = the time its EOS was available, ``itl_s = []`` (not ``None``: the
  request stays in the percentiles);
* ``tpot_s = (latency_s − ttft_s) / (output_tokens − 1)`` for more than one output token,
  else ``None`` (the vLLM / MLPerf convention).

Tokenization and detokenization lie outside the timed region.

``output_tokens`` counts generated (and forced) tokens, EOS excluded; when a stop string
ends a sequence the text is cut before it and the tokens generated up to it are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from harness.telemetry.clock import monotonic_s

if TYPE_CHECKING:
    from harness.compiled_step import CompiledStep


@dataclass
class SequenceResult:
    """One sequence's output and timing.

    Attributes:
        token_ids: generated ids (EOS excluded), as fed back to the model.
        text: decoded output, cut before the first stop string.
        finish_reason: ``stop`` (EOS or stop string), ``length`` (token cap), or ``error``.
        input_tokens: prompt length in tokens (padding excluded).
        ttft_s, latency_s, tpot_s: seconds (see module docstring); ``None`` only if the row
            never took a step.
        itl_s: per-token inter-token latencies in seconds, ``len == max(output_tokens - 1, 0)``.
        counters: the policy's per-sequence counters (e.g. ``reasoning_tokens``).
        queue_s: seconds the sequence waited for a batch slot before its request started
            (``0`` for the rows that started with the call; continuous batching only).
    """

    token_ids: list[int]
    text: str
    finish_reason: str
    input_tokens: int
    ttft_s: float | None
    latency_s: float | None
    tpot_s: float | None
    itl_s: list[float]
    counters: dict[str, float] = field(default_factory=dict)
    queue_s: float = 0.0

    @property
    def output_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class RowState:
    """Mutable per-sequence state the loop and the policy share."""

    index: int
    input_tokens: int
    token_ids: list[int] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)
    emissions: list[list[float]] = field(default_factory=list)  # [time_s, tokens] per emission
    end_time: float | None = None  # when an EOS ended the row (its own last step)
    forced: list[int] = field(default_factory=list)  # queue of ids the policy forces next
    max_new_tokens: int = 0
    finish_reason: str | None = None
    counters: dict[str, float] = field(default_factory=dict)
    start_time: float = 0.0  # when the row entered the batch (its request's start)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class DecodePolicy:
    """Hook points of the decode loop; the default is plain greedy decoding.

    Subclasses override what their technique changes. Every hook sees the rows of the
    current batch. Under continuous batching (:attr:`continuous`, the default) rows come and
    go: :meth:`begin` is the *join* event of each group of rows that enters the batch (after
    its prefill), :meth:`leave` the event of each row that finished and left; a policy keeps
    its per-row state keyed by ``row.index`` (unique within one :func:`generate` call). A policy
    whose state belongs to the whole batch (its own caches aligned with the batch, a counter
    per batch: early exit, model switching, speculative decoding) sets ``continuous = False``;
    its batches are then static and rows that are ``done`` are still fed a pad token (as
    ``generate`` does) with their choices ignored.

    Sampling lives in :meth:`pick`: a subclass that overrides :meth:`choose` without calling
    :meth:`pick` picks its tokens itself and stays greedy whatever the settings say. A policy
    whose technique is only correct under greedy decoding (e.g. speculative decoding's greedy
    verification) sets ``greedy_only = True``: :func:`generate` raises ``ValueError`` when
    asked to sample with it.
    """

    greedy_only: bool = False
    continuous: bool = True

    def begin(self, rows: list[RowState]) -> None:
        """Rows join the batch: called after their prefill, before their first token is chosen
        (once for a static batch; once per admitted group under continuous batching)."""

    def leave(self, row: RowState) -> None:
        """``row`` is done and left the batch (its slot goes to the next prompt)."""

    def choose(self, rows: list[RowState], logits: torch.Tensor) -> list[int]:
        """Pick each row's next token from ``logits`` (shape ``[batch, vocab]``).

        Default: a forced token if the row has one queued, else :meth:`pick` (the argmax, or a
        sample when the settings ask for sampling).
        """
        picked = self.pick(logits)
        return [row.forced.pop(0) if row.forced else tok for row, tok in zip(rows, picked)]

    sampling: "Sampling | None" = None  # set by generate() when settings.temperature > 0

    def pick(self, logits: torch.Tensor) -> list[int]:
        """The argmax of each row, or each row's draw (:meth:`Sampling.draw`: temperature, top-p,
        the row's own generator) when :func:`generate` set :attr:`sampling` (policies that pick
        tokens themselves stay greedy)."""
        if self.sampling is None:
            return logits.argmax(dim=-1).tolist()
        return self.sampling.draw(logits)

    def forward(self, model, **inputs) -> Any:
        """Run the model on one prefill or decode step; returns a mapping with ``logits``
        (``[batch, seq, vocab]``) and the KV cache (``cache`` or ``past_key_values``), and
        ``"reused": True`` when these logits come from an earlier pass (the tokens chosen from
        them then belong to that pass's emission: see the module docstring on ITL).

        Default: the model's own forward. Techniques that change how much of the model a
        token gets (early exit) override this.
        """
        return model(**inputs)

    def after_token(self, row: RowState, token: int, text_so_far: Callable[[], str]) -> None:
        """Called after ``token`` was appended to a live row (may queue forced tokens or
        set ``row.finish_reason``)."""

    def finish(self, row: RowState) -> None:
        """Called once per row when it is done (final counters)."""


class StaticCounters(DecodePolicy):
    """Plain greedy decoding that reports fixed per-request counters (a model transform's
    facts, e.g. layers kept or modules quantized)."""

    def __init__(self, counters: dict[str, float]):
        self.counters = counters

    def finish(self, row: RowState) -> None:
        row.counters.update(self.counters)


@dataclass
class GenerationSettings:
    """Settings shared by a cell's requests.

    Attributes:
        max_new_tokens: cap on generated tokens per sequence (forced tokens count).
        stop_strings: the output is cut before the first of these and the row stops.
        eos_token_ids: ids that end a sequence (excluded from the output).
        temperature: ``0`` (default) = greedy; ``> 0`` = sample from ``softmax(logits / T)``
            (after ``top_p``) in :meth:`DecodePolicy.pick`.
        top_p: nucleus sampling: only the most likely tokens whose probabilities sum to at least
            ``top_p`` (``0 < top_p <= 1``; ``1`` = the whole vocabulary) can be drawn; a token is
            kept when the mass of the tokens more likely than it is below ``top_p`` (the first one
            always), as ``transformers``' ``TopPLogitsWarper``. Unused when greedy.
        seed: base seed of the rows' generators when :func:`generate` gets no per-row ``seeds``:
            row ``i`` of the batch is seeded ``seed + i`` (``None`` = random seeds); unused when
            greedy.
    """

    max_new_tokens: int
    stop_strings: Sequence[str] = ()
    eos_token_ids: Sequence[int] = ()
    temperature: float = 0.0
    seed: int | None = None
    top_p: float = 1.0


@dataclass
class Sampling:
    """Sampling state of one :func:`generate` call: temperature, nucleus mass and one seeded
    CPU generator per prompt (so a row's draws never depend on its neighbours, nor on when it
    joined the batch); ``rows`` maps the batch's rows to their prompts."""

    temperature: float
    top_p: float
    generators: list[torch.Generator]
    rows: list[int] | None = None  # the live rows' indices, in batch order (None: all, in order)

    @classmethod
    def of(
        cls, settings: GenerationSettings, n_rows: int = 1, seeds: Sequence[int | None] | None = None
    ) -> "Sampling | None":
        """``None`` when greedy (``temperature <= 0``); else one generator per row, seeded
        ``seeds[i]`` when given, else ``settings.seed + i`` (random when that is ``None``).

        Raises:
            ValueError: ``top_p`` outside ``(0, 1]``, or ``seeds`` not one per row.
        """
        if not settings.temperature or settings.temperature <= 0:
            return None
        if not 0 < settings.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {settings.top_p}")
        if seeds is None:
            seeds = [None if settings.seed is None else int(settings.seed) + i for i in range(n_rows)]
        if len(seeds) != n_rows:
            raise ValueError(f"{len(seeds)} seeds for {n_rows} rows")
        generators = []
        for seed in seeds:
            generator = torch.Generator()
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(int(seed))
            generators.append(generator)
        return cls(float(settings.temperature), float(settings.top_p), generators)

    def draw(self, logits: torch.Tensor) -> list[int]:
        """One token per row of ``logits`` (``[batch, vocab]``): ``softmax(logits / T)``, cut to
        the ``top_p`` nucleus, then the inverse CDF (vocabulary in id order, float64) at one
        uniform from the row's generator. Each row consumes exactly one uniform per step; rows
        are independent of each other (no shared random stream, no batch-wide sort)."""
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            ordered, order = torch.sort(probs, dim=-1, descending=True, stable=True)
            keep_ordered = (ordered.cumsum(dim=-1) - ordered) < self.top_p  # mass of the more likely tokens
            keep = torch.zeros_like(probs, dtype=torch.bool).scatter_(-1, order, keep_ordered)
            probs = probs.masked_fill(~keep, 0.0)
        cdf = probs.double().cumsum(dim=-1)
        generators = self.generators if self.rows is None else [self.generators[i] for i in self.rows]
        uniforms = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])
        targets = (uniforms.to(cdf.device) * cdf[:, -1]).unsqueeze(-1)
        picked = torch.searchsorted(cdf, targets, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)
        return picked.tolist()


def eos_ids(model, tokenizer) -> list[int]:
    """EOS ids from the generation config and the tokenizer (deduplicated)."""
    ids: list[int] = []
    for source in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if source is None:
            continue
        for value in source if isinstance(source, (list, tuple)) else [source]:
            if value not in ids:
                ids.append(int(value))
    return ids


def cache_kwarg(module) -> str:
    """Name of a module's KV-cache keyword argument: ``cache`` (transformers >= 5.2x) or
    ``past_key_values`` (older releases), read from ``module.forward``'s signature.

    Use it to pass a cache back in: ``model(..., **{cache_kwarg(model): cache})``.
    """
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def cache_of(output):
    """The KV cache in a forward's ``output`` (or in the keyword ``inputs`` of one): its ``cache``
    entry when set (transformers >= 5.2x), else ``past_key_values``.

    Raises:
        KeyError: neither is present.
    """
    cache = output["cache"] if "cache" in output else None
    return cache if cache is not None else output["past_key_values"]


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    settings: GenerationSettings,
    policy: DecodePolicy | None = None,
    max_new_tokens: list[int] | None = None,
    clock: Callable[[], float] = monotonic_s,
    seeds: Sequence[int | None] | None = None,
    on_step: Callable[[list[RowState]], None] | None = None,
    batch_size: int | None = None,
    compiled: "CompiledStep | None" = None,
) -> list[SequenceResult]:
    """Decode tokenized prompts with a KV cache (greedy unless ``settings.temperature > 0``).

    With ``batch_size`` smaller than ``len(prompts)`` the batch is *continuous*: at most
    ``batch_size`` sequences are in flight; a finished one leaves the batch at once and the next
    prompt takes its slot (its prefill runs between two decode steps of the others). Without
    ``batch_size`` all prompts start together; finished rows still leave, so the batch shrinks
    instead of waiting for its longest row. Rows come and go only under a policy whose state is
    per row (:attr:`DecodePolicy.continuous`) and a cache made of plain dynamic layers
    (:func:`harness.kv_batch.supports`); otherwise the batch is static (finished rows are fed a
    pad token until all are done, as ``model.generate`` does).

    Args:
        model: a ``transformers`` causal LM (any device).
        tokenizer: its tokenizer (for ``pad_token_id`` and decoding).
        prompts: token ids per sequence, unpadded; batches are left-padded here.
        settings: token cap, stop strings, EOS ids.
        policy: technique hooks (default: plain greedy).
        max_new_tokens: optional per-row caps (``<= settings.max_new_tokens``).
        clock: seconds, monotonic; injectable for tests.
        seeds: optional per-row seeds of the sampling generators (default: from
            ``settings.seed``, see :class:`GenerationSettings`); unused when greedy.
        on_step: optional callback with all rows (waiting, live and done) after each decode
            step (progress); it runs inside the timed loop, so it must be cheap.
        batch_size: most sequences in flight (default: all of them).
        compiled: the model's :class:`harness.compiled_step.CompiledStep`: decode steps run its
            compiled graph over a static cache, in static batches of ``batch_size``, unless the
            policy replaces the forward (then they run eager and are counted as such).

    Returns:
        One :class:`SequenceResult` per prompt, in input order. A row's timing starts when it
        entered the batch (its ``queue_s`` is how long it waited for a slot before that).

    Raises:
        ValueError: sampling asked of a ``greedy_only`` policy, bad ``top_p`` / ``seeds``, or
            ``batch_size < len(prompts)`` with a policy that is not ``continuous``.
    """
    from harness.detok import IncrementalText, find_stop
    from harness.kv_batch import LiveBatch, supports

    policy = policy or DecodePolicy()
    sampling = Sampling.of(settings, len(prompts), seeds)
    if sampling is not None and policy.greedy_only:
        raise ValueError(f"{type(policy).__name__} decodes greedily only; it cannot sample (temperature > 0)")
    slots = len(prompts) if batch_size is None else max(1, int(batch_size))
    if slots < len(prompts) and not policy.continuous:
        raise ValueError(f"{type(policy).__name__} keeps per-batch state: it decodes static batches only "
                         f"(call generate once per batch of {slots})")
    policy.sampling = sampling
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else settings.eos_token_ids[0]
    eos = set(settings.eos_token_ids)
    caps = max_new_tokens or [settings.max_new_tokens] * len(prompts)
    rows = [RowState(index=i, input_tokens=len(p), max_new_tokens=caps[i]) for i, p in enumerate(prompts)]
    texts = {row.index: IncrementalText(tokenizer) for row in rows}
    cache_kw = cache_kwarg(model)
    waiting = list(rows)
    waiting.reverse()  # pop() takes the next prompt in input order
    live: list[RowState] = []
    batch = LiveBatch()
    static = compiled is not None and type(policy).forward is DecodePolicy.forward  # the compiled path
    dynamic = policy.continuous and not static  # rows may leave and join (decided for good after the first prefill)
    logits: torch.Tensor | None = None  # [live rows, vocab]
    reused = False  # the logits of this step came from an earlier pass (same emission)

    def text_of(row: RowState) -> Callable[[], str]:
        return lambda: texts[row.index].text

    def admit(joining: list[RowState], at: float) -> torch.Tensor:
        """Prefill ``joining`` (left-padded together) and add them to the batch; their logits."""
        nonlocal batch
        width = max(row.input_tokens for row in joining)
        ids = torch.full((len(joining), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(joining), width), dtype=torch.long)
        for j, row in enumerate(joining):
            row.start_time = at
            ids[j, width - row.input_tokens :] = torch.tensor(prompts[row.index], dtype=torch.long)
            mask[j, width - row.input_tokens :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        if static:  # eager prefill into the static cache that the compiled steps continue
            batch = compiled.batch(len(joining), width + max(row.max_new_tokens for row in joining) + 1)
            out = policy.forward(model, input_ids=ids, position_ids=positions, use_cache=True, logits_to_keep=1,
                                 **{cache_kw: batch.cache}, **batch.prefill_kwargs(mask))
        else:
            out = policy.forward(
                model, input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
            )
            batch.add(cache_of(out), [row.input_tokens for row in joining], mask)
        policy.begin(joining)
        return out["logits"][:, -1, :].float()

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    call_start = clock()
    first = True  # the first rows start with the call (queue_s = 0)
    while True:
        free = slots - len(live)
        if waiting and free > 0 and (dynamic or not live):
            joining = [waiting.pop() for _ in range(min(free, len(waiting)))]
            fresh = admit(joining, call_start if first else clock())
            first = False
            logits = fresh if logits is None else torch.cat([logits, fresh], dim=0)
            live += joining
            dynamic = dynamic and supports(batch.cache)
        if sampling is not None:
            sampling.rows = [row.index for row in live]
        chosen = policy.choose(live, logits)
        now = clock()  # ids are on the host: choose() returned Python ints
        feed = []
        for row, token in zip(live, chosen):
            if row.done:
                feed.append(pad_id)
                continue
            if token in eos:
                row.finish_reason = "stop"
                row.end_time = now
                feed.append(pad_id)
                continue
            row.token_ids.append(token)
            row.token_times.append(now)
            if reused and row.emissions:
                row.emissions[-1][0] = now
                row.emissions[-1][1] += 1
            else:
                row.emissions.append([now, 1])
            feed.append(token)
            text = texts[row.index]
            added = text.push(token)
            if settings.stop_strings and find_stop(text.text, added, settings.stop_strings) >= 0:
                row.finish_reason = "stop"
                continue
            policy.after_token(row, token, text_of(row))
            if not row.done and len(row.token_ids) >= row.max_new_tokens:
                row.finish_reason = "length"
        if on_step is not None:
            on_step(rows)
        if dynamic:
            kept = [j for j, row in enumerate(live) if not row.done]
            if len(kept) < len(live):
                for row in live:
                    if row.done:
                        policy.leave(row)
                batch.keep(kept)
                live, feed = [live[j] for j in kept], [feed[j] for j in kept]
        elif all(row.done for row in live):
            for row in live:
                policy.leave(row)
            live, batch, logits = [], LiveBatch(), None  # static batches: the next one starts afresh
        if not live:
            if not waiting:
                break
            logits = None
            continue
        step_ids = torch.tensor(feed, dtype=torch.long, device=device).unsqueeze(-1)
        if static:
            out = compiled.fn(input_ids=step_ids, use_cache=True, **{cache_kw: batch.cache}, **batch.step_kwargs())
            compiled.compiled_steps += 1
        else:
            mask, positions = batch.step_inputs()
            out = policy.forward(
                model,
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{cache_kw: batch.cache},
            )
            batch.stepped(mask, cache_of(out))
            if compiled is not None:
                compiled.eager_steps += 1
        logits = out["logits"][:, -1, :].float()
        reused = bool(out.get("reused", False)) if hasattr(out, "get") else False

    results = []
    for row in rows:
        policy.finish(row)
        text = tokenizer.decode(row.token_ids, skip_special_tokens=True)
        text, _ = _cut_at_stop(text, settings.stop_strings)
        ttft, latency, itl, tpot = token_timing(row.start_time, row.emissions, row.end_time)
        results.append(
            SequenceResult(
                token_ids=list(row.token_ids),
                text=text,
                finish_reason=row.finish_reason or "length",
                input_tokens=row.input_tokens,
                ttft_s=ttft,
                latency_s=latency,
                tpot_s=tpot,
                itl_s=itl,
                counters=dict(row.counters),
                queue_s=row.start_time - call_start,
            )
        )
    return results


def token_timing(
    start: float, emissions: Sequence[Sequence[float]], end_time: float | None = None
) -> tuple[float | None, float | None, list[float], float | None]:
    """``(ttft_s, latency_s, itl_s, tpot_s)`` of one sequence (rules: the module docstring).

    Args:
        start: the request's start, s.
        emissions: ``(time_s, tokens)`` per emission, in order (``tokens >= 1``).
        end_time: when an EOS ended a sequence that emitted nothing (``output_tokens = 0``).
    """
    if not emissions:
        if end_time is None:
            return None, None, [], None
        return end_time - start, end_time - start, [], None
    (t0, k0), rest = emissions[0], emissions[1:]
    itl = [0.0] * (int(k0) - 1)
    previous = t0
    for t, k in rest:
        itl.extend([(t - previous) / k] * int(k))
        previous = t
    ttft, latency = t0 - start, previous - start
    n = len(itl) + 1
    return ttft, latency, itl, (latency - ttft) / (n - 1) if n > 1 else None
