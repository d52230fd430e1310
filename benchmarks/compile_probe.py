"""Does a static KV cache + ``torch.compile`` pay for the decode step on this CPU? (issue 17, item 1)

Batch 1, the embedded SmolLM2-135M in fp32, one GSM8K-length chat prompt, greedy. Three loops,
each ``--tokens`` decode steps after one prefill, timed per step after ``--warm`` steps:

* ``eager-dynamic`` — the model's forward with ``transformers``' dynamic cache (what the
  harness loop runs);
* ``eager-static`` — the same with a pre-allocated ``StaticCache`` (fixed shapes);
* ``compiled-static`` — ``torch.compile`` (inductor, ``dynamic=False``, ``freezing=True`` so the
  weights are constants inductor may pre-pack for its CPU matmuls) of the forward with the
  static cache: the first steps compile (reported as compile time), later ones run the graph.

Reports compile time, steady decode tok/s of each and the ratio to eager-dynamic, and checks
the three write the same tokens. ``mode="reduce-overhead"`` (CUDA graphs) applies on CUDA only.

Usage: ``.venv/bin/python benchmarks/compile_probe.py [--tokens 64] [--warm 3]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from harness import models


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--warm", type=int, default=3)
    args = ap.parse_args()
    from transformers import DynamicCache, StaticCache

    base = models.load("embedded", dtype="fp32", device="cpu")
    tok, model = base.tokenizer, base.model
    text = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
            "How many clips did Natalia sell altogether in April and May?")
    prompt = tok(tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    n = len(prompt)
    total = n + args.tokens + 1

    def run(kind: str, forward) -> tuple[list[int], list[float], float]:
        cache = DynamicCache(config=model.config) if kind == "dynamic" else StaticCache(config=model.config,
                                                                                        max_cache_len=total)
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            out = model(input_ids=ids, past_key_values=cache, use_cache=True,
                        cache_position=torch.arange(n), logits_to_keep=1)
            token = int(out.logits[0, -1].argmax())
            tokens, times, first = [token], [], 0.0
            for step in range(args.tokens):
                pos = n + step
                t = time.perf_counter()
                out = forward(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True,
                              cache_position=torch.tensor([pos]), position_ids=torch.tensor([[pos]]))
                token = int(out.logits[0, -1].argmax())
                spent = time.perf_counter() - t
                if step < args.warm:
                    first += spent
                else:
                    times.append(spent)
                tokens.append(token)
        return tokens, times, first

    results = {}
    results["eager-dynamic"] = run("dynamic", model.forward)
    results["eager-static"] = run("static", model.forward)
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    compiled = torch.compile(model.forward, dynamic=False)
    t = time.perf_counter()
    results["compiled-static"] = run("static", compiled)
    print(f"compiled run incl. compile: {time.perf_counter() - t:.1f} s")
    ref_tokens, ref_times, _ = results["eager-dynamic"]
    ref = 1 / statistics.median(ref_times)
    print(f"batch 1, {args.tokens} decode steps ({args.warm} warm-up steps excluded), prompt {n} tokens, "
          f"{torch.get_num_threads()} threads\n")
    print("| loop | first steps s | decode tok/s (median step) | × eager-dynamic | same tokens |\n|---|---:|---:|---:|---|")
    for name, (tokens, times, first) in results.items():
        rate = 1 / statistics.median(times)
        print(f"| {name} | {first:.1f} | {rate:.1f} | {rate / ref:.2f} | {tokens == ref_tokens} |")


if __name__ == "__main__":
    main()
