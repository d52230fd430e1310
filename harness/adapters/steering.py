"""``steering``: Efficiency Steering — add a "concise minus verbose" direction to the residual stream.

Follows Efficiency Steering from "Exploring and Exploiting the Inherent Efficiency within Large
Reasoning Models for Self-Guided Efficiency Enhancement" (Zhao et al., arXiv 2506.15647):
training-free activation steering along a single direction of the model's representation space
that separates concise from verbose reasoning.

Direction (:func:`calibrate_direction`, run in :meth:`Steering.prepare`, outside the cell's
telemetry window): on the task's last ``calibration_docs`` problems (held out from evaluation,
the slice of :func:`harness.adapters.think_calibration.calibration_slice`) each problem is asked
twice, with :data:`CONCISE_INSTRUCTION` and with :data:`VERBOSE_INSTRUCTION` appended (contrastive
prompts: the paper contrasts the model's own short and long *correct* solutions, which are too
few on a small model such as the embedded one). The model writes a short greedy continuation of
``calibration_tokens`` tokens to each; one forward pass over prompt + continuation records the
output of decoder layer ``layer`` (ℓ) at the last prompt position and every continuation position.
``d = mean(concise) − mean(verbose)`` (token-weighted means, ``[hidden]``);
``v = d / ‖d‖ · r̄`` where ``r̄`` is the mean L2 norm of the recorded hidden states, so ``alpha``
is in units of a typical residual norm at layer ℓ (``alpha = 0.1`` adds a tenth of it). Only
forward passes and ``calibration_tokens`` decode steps: no long generation (embedded model, GSM8K's
last 8 problems, 16 tokens, CPU: 16.8 s on a shared 2-core machine).

Measured (embedded model, GSM8K docs[0:4] held out, 128-token cap, ℓ = 15, width 4; mean output
tokens): alpha −0.1: 128.0, −0.05: 128.0, 0: 118.0, +0.05: 105.25, +0.1: 67.75 (at +0.2 the
output degenerates into repeated junk: keep |alpha| ≤ 0.1 on this model).

Inference: the variant is a shallow copy of the base (:func:`with_layer_wrappers`; weights shared,
the base's modules, hooks and weights untouched) whose decoder layers ``ℓ .. ℓ+width−1`` are
wrapped by :class:`SteeredLayer`, which adds ``alpha · v`` to the layer's output at every position
(prompt included). ``alpha > 0`` pushes towards the concise side, ``alpha < 0`` towards the
verbose one, ``alpha = 0`` is the base model exactly (a test). The transform is the same for every
row, so it works unchanged under continuous batching.

Calibration cache: keyed by everything that determines the direction (model, dtype, device, chat
template, task and version, slice, layer, continuation length, instructions; the calibration
prompts are decoded as one batch, whatever the cell's batch size), kept in
``<run dir>/steering_calibration.json`` through ``CellContext.files`` so variants differing only in
``alpha`` / ``width``, later cells and a resumed run reuse it.

Counters per request: ``steered_layers`` (= ``width``), ``alpha``, and
``calibration_concise_token_share`` = concise / (concise + verbose) tokens whose activations made
the two means (0.5 when both continuations ran their full length).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
from pydantic import Field

from harness.adapters.base import Adapter, AdapterParams, CellContext, register_adapter
from harness.generation import DecodePolicy, StaticCounters

CACHE_FILE = "steering_calibration.json"
CALIBRATION_FORMAT = 1  # bump when what a calibration measures changes (invalidates caches)
CONCISE_INSTRUCTION = "Answer in one line."
VERBOSE_INSTRUCTION = "Explain every step."


class SteeringParams(AdapterParams):
    alpha: float = Field(0.1, description="steering strength in units of layer ℓ's mean residual norm (>0: concise)")
    layer: int | None = Field(None, ge=0, description="ℓ, the first steered decoder layer (0-based); unset: depth // 2")
    width: int = Field(4, ge=1, description="decoder layers steered: ℓ .. ℓ+width-1")
    calibration_docs: int = Field(8, ge=1, description="last problems of the task's split used for the direction (held out)")
    calibration_tokens: int = Field(16, ge=1, description="greedy continuation tokens per calibration prompt")


def decoder_layers(model) -> torch.nn.ModuleList:
    """``model.model.layers`` of a ``transformers`` decoder-only LM (``ValueError`` if absent)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"{type(model).__name__} has no model.layers list: steering needs a decoder-only LM")
    return layers


class SteeredLayer(torch.nn.Module):
    """A decoder layer whose output hidden states get ``delta`` added (``[hidden]``, broadcast over
    batch and positions), or are handed to ``record`` (a callable of ``[batch, seq, hidden]``)
    when ``delta`` is ``None``. Attributes it lacks are read from the wrapped layer (e.g. a Qwen2
    layer's ``attention_type``)."""

    def __init__(self, inner: torch.nn.Module, delta: torch.Tensor | None = None, record=None):
        super().__init__()
        self.inner = inner
        self.delta = delta
        self.record = record

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get("inner")
            if inner is None:
                raise
            return getattr(inner, name)

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out  # older transformers return tuples
        if self.delta is None:
            self.record(hidden)
            return out
        hidden = hidden + self.delta
        return (hidden, *out[1:]) if isinstance(out, tuple) else hidden


def with_layer_wrappers(model, wrappers: dict[int, Any]):
    """A shallow copy of ``model`` whose decoder layers ``i`` are replaced by ``wrappers[i](layer)``.

    Module objects (and so weights) are shared with ``model``; only the containers on the path
    to the layers are new, so ``model`` itself (its layer list, modules and hooks) is unchanged.
    """
    layers = decoder_layers(model)
    outer = copy.copy(model)
    outer._modules = dict(model._modules)
    inner = copy.copy(model.model)
    inner._modules = dict(model.model._modules)
    inner.layers = torch.nn.ModuleList([wrappers[i](m) if i in wrappers else m for i, m in enumerate(layers)])
    outer.model = inner
    return outer


def steered_layers(depth: int, layer: int | None, width: int) -> list[int]:
    """Indices ``ℓ .. ℓ+width−1`` (``ℓ`` = ``depth // 2`` when unset); ``ValueError`` past the depth."""
    start = depth // 2 if layer is None else layer
    if start + width > depth:
        raise ValueError(f"steering: layers {start}..{start + width - 1} exceed the model's {depth} decoder layers")
    return list(range(start, start + width))


@dataclass(frozen=True)
class SteeringCalibration:
    """A steering direction measured on a calibration slice.

    Attributes:
        task, task_version: the task; ``doc_start``, ``doc_stop``: the slice ``[start, stop)``.
        layer: ℓ, whose outputs were recorded.
        concise_tokens, verbose_tokens: positions averaged on each side.
        residual_norm: ``r̄``, mean L2 norm of the recorded hidden states.
        difference_norm: ``‖d‖`` before normalisation (same units).
        direction: ``d / ‖d‖`` (``[hidden]``, unit norm).
        measured_time_s: wall time of the measurement when it ran.
    """

    task: str
    task_version: str
    doc_start: int
    doc_stop: int
    layer: int
    concise_tokens: int
    verbose_tokens: int
    residual_norm: float
    difference_norm: float
    direction: list[float]
    measured_time_s: float

    @property
    def concise_token_share(self) -> float:
        return self.concise_tokens / (self.concise_tokens + self.verbose_tokens)

    def vector(self) -> torch.Tensor:
        """``v = direction · r̄`` (float32, ``[hidden]``)."""
        return torch.tensor(self.direction, dtype=torch.float32) * self.residual_norm

    def as_record(self) -> dict[str, Any]:
        """The cell's record (the direction itself stays in the kept file)."""
        record = {k: v for k, v in asdict(self).items() if k != "direction"}
        return {**record, "n": self.doc_stop - self.doc_start, "slice": f"docs[{self.doc_start}:{self.doc_stop}]",
                "concise_token_share": self.concise_token_share}


def _contrastive_prompts(tok, spec, docs) -> list[list[int]]:
    """Per doc: the concise prompt, then the verbose one (chat-templated token ids)."""
    from harness.adapters.reasoning_format import chat_prompt

    prompts = []
    for doc in docs:
        for instruction in (CONCISE_INSTRUCTION, VERBOSE_INSTRUCTION):
            text = chat_prompt(tok, [{"role": "user", "content": f"{spec.prompt(doc)}\n\n{instruction}"}])
            prompts.append(tok(text, add_special_tokens=False)["input_ids"])
    return prompts


def measure_direction(model, tok, prompts: list[list[int]], layer: int, tokens: int):
    """Record layer ``layer``'s outputs over each prompt's last position + its greedy continuation
    of at most ``tokens`` tokens (all prompts decoded as one batch); prompts alternate concise, verbose.

    Returns:
        ``(sum_concise, n_concise, sum_verbose, n_verbose, norm_sum)``: float32 ``[hidden]`` sums,
        position counts, and the sum of the recorded states' L2 norms.
    """
    from harness.generation import GenerationSettings, eos_ids, generate

    settings = GenerationSettings(max_new_tokens=tokens, eos_token_ids=eos_ids(model, tok))
    continuations = generate(model, tok, prompts, settings)
    captured: list[torch.Tensor] = []
    recorder = with_layer_wrappers(model, {layer: lambda m: SteeredLayer(m, record=captured.append)})
    device = next(model.parameters()).device
    sums, counts, norm_sum = [None, None], [0, 0], 0.0
    with torch.inference_mode():
        for i, (prompt, cont) in enumerate(zip(prompts, continuations)):
            ids = torch.tensor([prompt + cont.token_ids], dtype=torch.long, device=device)
            captured.clear()
            recorder(input_ids=ids, use_cache=False, logits_to_keep=1)
            states = captured[0][0, len(prompt) - 1 :].float().cpu()  # [1 + continuation, hidden]
            side = i % 2
            total = states.sum(dim=0)
            sums[side] = total if sums[side] is None else sums[side] + total
            counts[side] += states.shape[0]
            norm_sum += states.norm(dim=-1).sum().item()
    return sums[0], counts[0], sums[1], counts[1], norm_sum


def calibrate_direction(base, spec, docs, context: CellContext, params: SteeringParams) -> tuple[SteeringCalibration, float]:
    """Measure (or reuse from ``context.files``) the steering direction on the held-out slice.

    Returns:
        The calibration and the seconds spent measuring in this call (0.0 when reused).

    Raises:
        ValueError: the evaluated docs would overlap the calibration slice, or the steered layers
            exceed the model's depth.
    """
    from harness.adapters.think_calibration import calibration_slice, read_kept_json
    from harness.core.hashing import stable_hash
    from harness.telemetry.clock import monotonic_s

    layer = steered_layers(len(decoder_layers(base.model)), params.layer, params.width)[0]
    start, stop = calibration_slice(len(docs), params.calibration_docs, context.limit, spec.name)
    key = stable_hash(
        {
            "format": CALIBRATION_FORMAT,
            "model": base.canonical_id,
            "dtype": base.dtype,
            "device": str(base.device),
            "chat_template": base.chat_template_hash,
            "task": spec.name,
            "task_version": spec.version,
            "slice": [start, stop],
            "layer": layer,
            "tokens": params.calibration_tokens,
            "instructions": [CONCISE_INSTRUCTION, VERBOSE_INSTRUCTION],
        }
    )
    cached = read_kept_json(context.files, CACHE_FILE).get(key)
    if cached is not None:
        return SteeringCalibration(**cached), 0.0
    began = monotonic_s()
    prompts = _contrastive_prompts(base.tokenizer, spec, docs[start:stop])
    sum_c, n_c, sum_v, n_v, norm_sum = measure_direction(
        base.model, base.tokenizer, prompts, layer, params.calibration_tokens
    )
    diff = sum_c / n_c - sum_v / n_v
    norm = diff.norm().item()
    if not norm > 0:
        raise ValueError(f"steering: concise and verbose activations at layer {layer} are identical (no direction)")
    spent_s = monotonic_s() - began
    calibration = SteeringCalibration(
        task=spec.name,
        task_version=spec.version,
        doc_start=start,
        doc_stop=stop,
        layer=layer,
        concise_tokens=n_c,
        verbose_tokens=n_v,
        residual_norm=norm_sum / (n_c + n_v),
        difference_norm=norm,
        direction=(diff / norm).tolist(),
        measured_time_s=spent_s,
    )
    if context.files is not None:
        entries = read_kept_json(context.files, CACHE_FILE)
        entries[key] = asdict(calibration)
        context.files[CACHE_FILE] = json.dumps(entries, sort_keys=True).encode()
    return calibration, spent_s


def steer(model, vector: torch.Tensor, layers: list[int], alpha: float):
    """The steered shallow copy of ``model``: ``alpha · vector`` added to the outputs of ``layers``."""
    param = next(model.parameters())
    delta = (alpha * vector.float()).to(device=param.device, dtype=param.dtype)
    return with_layer_wrappers(model, {i: (lambda m: SteeredLayer(m, delta=delta)) for i in layers})


@register_adapter("steering")
class Steering(Adapter):
    paper = "Exploring and Exploiting the Inherent Efficiency within Large Reasoning Models (Efficiency Steering)"
    arxiv = "2506.15647"
    Params = SteeringParams
    counters = {
        "steered_layers": "decoder layers whose output gets alpha·v (width)",
        "alpha": "steering strength, in units of layer ℓ's mean residual norm",
        "calibration_concise_token_share": "concise / (concise + verbose) calibration positions behind the direction",
    }
    kept_files = (CACHE_FILE,)

    def __init__(self, params=None):
        super().__init__(params)
        self.calibration: SteeringCalibration | None = None  # set by prepare()

    def needs_preparation(self) -> str | None:
        return (
            f"steering takes its direction from a calibration on a task's last {self.params.calibration_docs} docs"
        )

    def prepare(self, base, spec, docs, context: CellContext) -> dict[str, Any]:
        """Measure (or reuse) the direction on the held-out slice (:func:`calibrate_direction`).

        Returns:
            ``calibration_json`` (slice, n, layer, token counts and share, norms, steered layers,
            alpha, reuse) and ``calibration_time_s`` (0 when reused).
        """
        from harness.core.hashing import stable_json

        self.calibration, spent_s = calibrate_direction(base, spec, docs, context, self.params)
        layers = steered_layers(len(decoder_layers(base.model)), self.params.layer, self.params.width)
        record = {**self.calibration.as_record(), "steered": layers, "alpha": self.params.alpha, "reused": spent_s == 0.0}
        return {"calibration_json": stable_json(record), "calibration_time_s": spent_s}

    def prepare_model(self, base):
        """The steered shallow copy of the base (``RuntimeError`` before :meth:`prepare`)."""
        if self.calibration is None:
            raise RuntimeError("steering needs its direction: call prepare() before wrap()")
        layers = steered_layers(len(decoder_layers(base.model)), self.params.layer, self.params.width)
        return steer(base.model, self.calibration.vector(), layers, self.params.alpha)

    def make_policy(self, tokenizer) -> DecodePolicy:
        share = self.calibration.concise_token_share if self.calibration else float("nan")
        return StaticCounters(
            {
                "steered_layers": float(self.params.width),
                "alpha": float(self.params.alpha),
                "calibration_concise_token_share": share,
            }
        )
