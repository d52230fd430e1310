"""Does early exit's layer saving turn into wall time? Same prompts, batch 1, alternating A/B.

For each ``tau`` the same greedy decode runs with the plain loop (A: every layer) and with
:class:`harness.adapters.early_exit.ExitPolicy` (B), alternating order per pair, on the embedded
model. Reports the mean decoder layers executed per decode step and the median B/A ratio of
decode time per generated token (prefill excluded: TPOT), measured in one run. Early exit does
extra work per token (a cosine similarity per layer, the skipped layers' K/V projections), so
the wall ratio is expected above ``layers_executed / depth``; this measures by how much.

Usage: ``.venv/bin/python benchmarks/early_exit_walltime.py [--taus 0.9,0.95,0.98] [--tokens 48] [--pairs 3]``
Not a test: timings depend on the machine (run it on a quiet one).
"""

from __future__ import annotations

import argparse
import statistics

from harness import models
from harness.adapters.early_exit import EarlyExitParams, ExitPolicy
from harness.generation import GenerationSettings, eos_ids, generate

PROMPTS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "What is the smallest positive integer n such that 3n is a perfect square and 2n is a perfect cube?",
]


def tpot(results) -> float:
    values = [r.tpot_s for r in results if r.tpot_s is not None]
    return statistics.mean(values)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--taus", default="0.9,0.95,0.98")
    ap.add_argument("--min-layers", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()

    base = models.load("embedded", device="cpu")
    tok, model = base.tokenizer, base.model
    depth = model.config.num_hidden_layers
    encoded = [
        tok(tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False)["input_ids"]
        for p in PROMPTS
    ]
    settings = GenerationSettings(max_new_tokens=args.tokens, eos_token_ids=eos_ids(model, tok))
    generate(model, tok, [encoded[0]], settings)  # warm-up

    print(f"embedded model, {depth} layers, batch 1, {args.tokens} new tokens, {len(PROMPTS)} prompts, {args.pairs} pairs")
    print(f"{'tau':>6} {'layers/step':>12} {'layer share':>12} {'TPOT full':>10} {'TPOT exit':>10} {'wall ratio':>11}")
    for tau in [float(t) for t in args.taus.split(",")]:
        params = EarlyExitParams(tau=tau, min_layers=args.min_layers)
        full_t, exit_t, layers = [], [], []
        for i in range(args.pairs):
            order = ("full", "exit") if i % 2 == 0 else ("exit", "full")
            for mode in order:
                for ids in encoded:
                    if mode == "full":
                        full_t.append(tpot(generate(model, tok, [ids], settings)))
                    else:
                        policy = ExitPolicy(params)
                        exit_t.append(tpot(generate(model, tok, [ids], settings, policy)))
                        layers.extend(policy.executed)
        mean_layers = statistics.mean(layers)
        ratio = statistics.median(exit_t) / statistics.median(full_t)
        print(f"{tau:>6} {mean_layers:>12.1f} {mean_layers / depth:>12.3f} {statistics.median(full_t) * 1e3:>8.1f}ms "
              f"{statistics.median(exit_t) * 1e3:>8.1f}ms {ratio:>11.3f}")


if __name__ == "__main__":
    main()
