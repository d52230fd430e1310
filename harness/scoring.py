"""Log-likelihood scoring of continuations: the forward pass every log-likelihood variant shares.

What is computed is lm-eval's ``loglikelihood`` (``lm_eval.api.model.LM.loglikelihood``, the
HF backend's ``_loglikelihood_tokens``): for a request ``(context, continuation)``

* tokens: :func:`encode_pair` — trailing whitespace of the context moves to the continuation,
  the continuation's tokens are ``encode(context + continuation)[len(encode(context)):]`` (so
  merges across the boundary are the whole string's), an empty context becomes the prefix
  token (BOS, else EOS);
* model input: ``(context + continuation)[:-1]``, left-truncated to the model's maximum length;
* ``logprob`` = Σ over the continuation tokens of ``log_softmax(logits)`` at each token (nats);
* ``is_greedy`` = every continuation token is the argmax of its position's logits.

How it is batched (the numbers are the same; only the work differs):

* requests whose model input is identical (e.g. the choices of one multiple-choice question
  that are one token each: same context, continuation differs only in its last token) share
  one forward row — lm-eval's "one-token continuation cache" (``Collator(group_by="contexts")``);
* rows are sorted longest first and run ``batch_size`` at a time, **left**-padded with an
  attention mask and position ids, so that every row's scored positions are the last ones and
  only those get logits (``logits_to_keep``): the LM head — about a fifth of a small model's
  work per token — runs on the continuation positions only. lm-eval right-pads and computes
  logits everywhere; the results agree to float tolerance (a test against its HF backend).

Timing: a batch's wall time runs from its tensors on the device to its results on the host
(``.tolist()`` synchronises a GPU). A request's ``latency_s`` is its **attributed** share of
that time (batch time / requests the batch served): a batch's requests are not timed one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from harness.telemetry.clock import monotonic_s

DEFAULT_MAX_LENGTH = 2048  # lm-eval's HF backend default when the model states none


@dataclass(frozen=True)
class ScoredRequest:
    """One scored continuation.

    Attributes:
        logprob: Σ log p(continuation token | prefix), natural log (nats), ≤ 0.
        is_greedy: every continuation token is its position's argmax.
        input_tokens: context + continuation tokens (after truncation to the model's length).
        batch_rows: forward rows in the batch that served it (its batch size).
        latency_s: attributed share of its batch's wall time (batch time / requests served).
    """

    logprob: float
    is_greedy: bool
    input_tokens: int
    batch_rows: int
    latency_s: float


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``(context, continuation)`` exactly as lm-eval's causal HF backend makes them.

    ``tokenizer.encode`` with the tokenizer's own special-token default (as lm-eval's
    ``tok_encode``; no special tokens when the string already starts with BOS). An empty
    context becomes ``[prefix]`` (BOS, else EOS) unless the continuation starts with it.

    Raises:
        ValueError: the continuation encodes to no tokens, or an empty context meets a
            tokenizer with neither BOS nor EOS.
    """

    def encode(text: str, special: bool = True) -> list[int]:
        bos = tokenizer.bos_token
        if special and bos and text.startswith(bos):
            special = False
        return list(tokenizer.encode(text, add_special_tokens=special))

    if context == "":
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if prefix is None:
            raise ValueError("empty context needs a BOS or EOS token to condition on")
        cont = encode(continuation, special=False)
        ctx, cont = ([prefix], cont) if not cont or cont[0] != prefix else (cont[:1], cont[1:])
    else:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        whole = encode(context + continuation)
        ctx = encode(context)
        cont = whole[len(ctx) :]
    if not cont:
        raise ValueError(f"continuation {continuation!r} encodes to no tokens after context {context[-40:]!r}")
    return ctx, cont


def max_length_of(model, tokenizer=None) -> int:
    """The model's context length in tokens: its config's ``max_position_embeddings`` /
    ``n_positions`` / ``n_ctx``, else a tokenizer's sane ``model_max_length``, else 2048."""
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    return DEFAULT_MAX_LENGTH


@torch.inference_mode()
def score(
    model,
    pairs: list[tuple[list[int], list[int]]],
    batch_size: int,
    pad_id: int,
    forward: Callable[..., Any] | None = None,
    max_length: int | None = None,
    clock: Callable[[], float] = monotonic_s,
    on_batch: Callable[[int], None] | None = None,
) -> list[ScoredRequest]:
    """Log-likelihood of each continuation given its context (see the module docstring).

    Args:
        model: a ``transformers`` causal LM (any device); called as
            ``forward(model, input_ids, attention_mask, position_ids, use_cache=False,
            logits_to_keep=K)`` returning a mapping with ``logits`` ``[rows, K, vocab]``.
        pairs: ``(context_ids, continuation_ids)`` per request; both non-empty.
        batch_size: forward rows per batch (≥ 1).
        pad_id: id written into the left padding (masked out).
        forward: the variant's forward hook (default: ``model(**inputs)``).
        max_length: context length; longer inputs lose tokens on the left (default:
            :func:`max_length_of`).
        clock: monotonic seconds, injectable for tests.
        on_batch: called with the number of requests served so far after each batch.

    Returns:
        One :class:`ScoredRequest` per pair, in input order.

    Raises:
        ValueError: an empty context or continuation, a continuation longer than
            ``max_length``, or ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    forward = forward or (lambda m, **inputs: m(**inputs))
    max_length = max_length or max_length_of(model)
    rows: dict[tuple[int, ...], list[int]] = {}  # model input -> indices of the requests it serves
    for i, (ctx, cont) in enumerate(pairs):
        if not ctx or not cont:
            raise ValueError(f"request {i}: context and continuation must both have tokens")
        if len(cont) > max_length:
            raise ValueError(f"request {i}: continuation of {len(cont)} tokens exceeds max_length {max_length}")
        rows.setdefault(tuple((ctx + cont)[-(max_length + 1) :][:-1]), []).append(i)
    order = sorted(rows, key=lambda inp: (-len(inp), inp))
    device = next(model.parameters()).device
    results: list[ScoredRequest | None] = [None] * len(pairs)
    served = 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(inp) for inp in chunk)
        keep = max(len(pairs[i][1]) for inp in chunk for i in rows[inp])
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, inp in enumerate(chunk):
            input_ids[r, width - len(inp) :] = torch.tensor(inp, dtype=torch.long)
            attention[r, width - len(inp) :] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        began = clock()
        out = forward(
            model,
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=position_ids,
            use_cache=False,
            logits_to_keep=keep,
        )
        logprobs = out["logits"][:, -keep:, :].float().log_softmax(dim=-1)  # [rows, keep, vocab]
        greedy = logprobs.argmax(dim=-1)
        scored = []  # (request index, logprob, is_greedy) as host values
        for r, inp in enumerate(chunk):
            for i in rows[inp]:
                cont = pairs[i][1]
                target = torch.tensor(cont, dtype=torch.long, device=device)
                picked = logprobs[r, keep - len(cont) :, :].gather(-1, target.unsqueeze(-1)).squeeze(-1)
                scored.append((i, picked.sum(), (greedy[r, keep - len(cont) :] == target).all()))
        values = torch.stack([s[1] for s in scored]).tolist()  # host sync: the batch's end
        greedy_flags = torch.stack([s[2] for s in scored]).tolist()
        elapsed = clock() - began
        share = elapsed / len(scored)
        for (i, _, _), value, flag in zip(scored, values, greedy_flags):
            ctx, cont = pairs[i]
            results[i] = ScoredRequest(
                logprob=float(value),
                is_greedy=bool(flag),
                input_tokens=min(len(ctx) + len(cont), max_length + 1),
                batch_rows=len(chunk),
                latency_s=share,
            )
        served += len(scored)
        if on_batch:
            on_batch(served)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]
