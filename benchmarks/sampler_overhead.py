"""Sampler overhead on the CPU: the same decode with telemetry off (A) and on (B), alternating.

Goal (DESIGN.md §5): the sampler thread costs under 1 % of latency. The decode is timed
inside the window (so the ratio is the sampler's effect); the window's fixed open/close
cost per cell (codecarbon's tracker start/stop) is reported separately. Prints the median
on/off ratio and the run-to-run spread, measured in one run.

Usage: ``.venv/bin/python benchmarks/sampler_overhead.py [--pairs 6] [--tokens 48] [--batch 8]``
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness import models
from harness.generation import GenerationSettings, eos_ids, generate
from harness.telemetry import Telemetry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--period-s", default="auto", help="sampler period in s; auto = the harness's CPU default")
    args = ap.parse_args()

    base = models.load("embedded", device="cpu")
    tok = base.tokenizer
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Explain step by step why the sky is blue."}], tokenize=False, add_generation_prompt=True
    )
    prompts = [tok(prompt, add_special_tokens=False)["input_ids"]] * args.batch
    settings = GenerationSettings(max_new_tokens=args.tokens, eos_token_ids=[])  # fixed length: same work each run
    generate(base.model, tok, prompts, settings)  # warm-up
    tel = Telemetry(device="cpu", sample_period_s=args.period_s if args.period_s == "auto" else float(args.period_s))
    off, on, edges = [], [], []

    def timed() -> float:
        start = time.perf_counter()
        generate(base.model, tok, prompts, settings)
        return time.perf_counter() - start

    for i in range(args.pairs):
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
            if mode == "off":
                off.append(timed())
                continue
            outer = time.perf_counter()
            with tel.window(f"run{i}"):  # the sampler thread runs while the decode is timed
                on.append(timed())
            edges.append(time.perf_counter() - outer - on[-1])
    tel.close()
    ratio = statistics.median(on) / statistics.median(off)
    spread = statistics.pstdev(off) / statistics.mean(off)
    print(f"telemetry off: {[round(x, 3) for x in off]}")
    print(f"telemetry on:  {[round(x, 3) for x in on]}")
    print(f"median on/off ratio: {ratio:.4f} (goal <= 1.01); run-to-run CV of 'off': {spread:.3f}")
    pairs = [b / a for a, b in zip(off, on)]  # pair i: the two runs measured back to back
    half = 1.96 * statistics.stdev(pairs) / len(pairs) ** 0.5 if len(pairs) > 1 else float("nan")
    mean = statistics.mean(pairs)
    print(f"paired on/off ratios: median {statistics.median(pairs):.4f}, mean {mean:.4f} "
          f"(95% CI {mean - half:.4f}–{mean + half:.4f}); the goal is shown only if the CI's top is <= 1.01")
    print(f"window open+close cost per cell (codecarbon start/stop included): median {statistics.median(edges):.3f} s")


if __name__ == "__main__":
    main()
