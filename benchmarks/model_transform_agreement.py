"""Quality drop of a model-transform adapter: greedy top-1 agreement with the base model.

The base decodes ``--tokens`` greedy tokens for each prompt (chat-formatted); each variant then
reads the same token sequence (teacher forcing) and we count the positions where its argmax
equals the base's. Also reports each variant's ``param_bytes`` and the KV-cache bytes a real
``DynamicCache`` holds after a prefill of the first sequence
(:func:`harness.adapters.kv_pool.kv_cache_bytes`). Not timed: the figures are machine-independent.

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/model_transform_agreement.py [--model embedded] [--tokens 128]``
(figures quoted in ``harness/adapters/int4.py`` and ``kv_pool.py``: embedded model, 128 tokens).
"""

from __future__ import annotations

import argparse

import torch

from harness import models
from harness.adapters import ADAPTERS
from harness.adapters.kv_pool import kv_cache_bytes
from harness.generation import GenerationSettings, generate

PROMPTS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Write a short story about a robot who learns to paint.",
    "Explain why the sky is blue.",
]
VARIANTS = [
    ("baseline", {}), ("int8", {}), ("int4", {"group_size": 64}), ("int4", {"group_size": 32}),
    ("kv_pool", {"num_kv_heads": 3}), ("kv_pool", {"num_kv_heads": 1}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    base = models.load(args.model, dtype="fp32", device="cpu")
    tok = base.tokenizer
    prompts = [
        tok(tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False)["input_ids"]
        for q in PROMPTS
    ]
    ref = generate(base.model, tok, prompts, GenerationSettings(args.tokens, eos_token_ids=[]))
    seqs = [torch.tensor([p + r.token_ids]) for p, r in zip(prompts, ref)]
    for name, params in VARIANTS:
        try:
            variant = ADAPTERS.get(name)(params).wrap(base)
        except ValueError as exc:  # e.g. kv_pool heads that do not divide this model's
            print(f"{name} {params}: skipped ({exc})")
            continue
        agree = total = 0
        for p, s in zip(prompts, seqs):
            with torch.no_grad():
                a = base.model(s).logits[0, len(p) - 1 : -1].argmax(-1)
                b = variant.model(s).logits[0, len(p) - 1 : -1].argmax(-1)
            agree += int((a == b).sum())
            total += a.numel()
        print(f"{name} {params}: top1_agreement={agree / total:.3f} over {total} tokens; "
              f"param_bytes={variant.param_bytes}; kv_cache_bytes({seqs[0].shape[1]} tokens)="
              f"{kv_cache_bytes(variant.model, seqs[0])}", flush=True)


if __name__ == "__main__":
    main()
