"""Tiny randomly initialised Llama models and a character tokenizer: no download, seconds.

Used by the tests and by ``benchmarks/`` (the GPU check builds a larger model the same way).
"""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<eos>", "<unk>"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer over printable ASCII (ids 3..), ``<pad>``=0, ``<eos>``=1."""
    chars = [c for c in string.printable if c not in "\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tok.padding_side = "left"
    tok.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    return tok


def tiny_model(
    seed: int = 0,
    layers: int = 4,
    hidden: int = 64,
    heads: int = 4,
    vocab_size: int | None = None,
    sharpen: bool = True,
    device: str = "cpu",
) -> LlamaForCausalLM:
    """A Llama-architecture causal LM with random weights (eval mode, fp32).

    Args:
        seed: torch seed for the initialisation.
        layers, hidden, heads: depth, width (intermediate = 2 × hidden) and attention heads
            (key/value heads = heads / 2).
        vocab_size: default: the :func:`tiny_tokenizer` vocabulary.
        sharpen: scale the weights ×4 so greedy choices are decisive (random init is near-uniform).
        device: where the weights are initialised (``cuda`` builds a large model in seconds).
    """
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size or len(tiny_tokenizer()),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    with torch.device(device):
        model = LlamaForCausalLM(config).eval()
    if sharpen:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.mul_(4.0)
    return model


class TinyBase:
    """Stand-in for :class:`harness.models.BaseModel` built from the tiny model."""

    def __init__(self, seed: int = 0, layers: int = 4):
        self.model = tiny_model(seed, layers)
        self.tokenizer = tiny_tokenizer()
        self.canonical_id = f"test:tiny-llama-{layers}l@{seed}"
        self.dtype = "fp32"
        self.device = "cpu"
        self.chat_template_hash = None
