"""The decode loop against ``transformers``' ``generate``: batch 1, and a ragged batch-8 workload.

Issue 17's yardstick is ``model.generate`` with its defaults on the same model, dtype, device
and prompts; every figure below is a ratio measured in this one run (A/B alternating), and the
run checks that both sides wrote the same greedy tokens.

1. **Batch 1** — ``--b1-tokens`` new tokens (EOS ignored, so both sides write exactly that
   many), ``--rounds`` alternating rounds over ``--b1-prompts`` GSM8K prompts: decode tokens/s
   of each, their ratio, and the memory roofline = measured memory bandwidth (a large tensor
   read in this run) / bytes of weights read per step. A ``torch.profiler`` trace of 16 decode
   steps of the harness loop splits a step's time into matrix multiplies (weights read),
   attention, KV-cache growth, other ops, and Python/dispatch (the step's wall time minus the
   ops' own time).
   ``--compile`` adds the harness loop with its compiled step (:mod:`harness.compiled_step`:
   ``torch.compile`` over a static cache, compiled before the timed rounds; its compile time
   is reported) as a third side of the same alternating rounds.
2. **Ragged** — ``--ragged-prompts`` GSM8K prompts, caps drawn uniformly from
   ``[--cap-min, --cap-max]`` with ``--seed``, plus each request's own EOS. Harness: one
   continuous batch of ``--batch-size`` slots. ``generate``: static batches of ``--batch-size``
   in the same (prompt-length) order, each run to its largest cap, tokens past a request's own
   cap or EOS not counted. Reported: completed tokens/s of each and the ratio; the share of
   requests whose tokens are identical (left-padded static batches and continuous batches
   compute the same math in a different layout, so a rare fp32 near-tie can flip).

Usage: ``HARNESS_DATA_DIR=../shared/data .venv/bin/python benchmarks/decode_speed.py [--quick]``
Not a test: timings depend on the machine (run it alone on a quiet one).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch

from harness import models
from harness.generation import GenerationSettings, eos_ids, generate
from harness.tasks.data import data_dir


def gsm8k_prompts(tok, n: int) -> list[list[int]]:
    root = data_dir()
    if root is None:
        raise SystemExit("set HARNESS_DATA_DIR to the shared data folder (GSM8K prompts)")
    path = root / "gsm8k" / "test.jsonl"
    docs = [json.loads(line) for line in path.read_text().splitlines()[:n]]
    return [tok(tok.apply_chat_template([{"role": "user", "content": d["question"]}], tokenize=False,
                                        add_generation_prompt=True), add_special_tokens=False)["input_ids"]
            for d in docs]


def bandwidth_bytes_per_s(mib: int = 512, reps: int = 5) -> float:
    """Memory read bandwidth of this machine (bytes/s): the best of ``reps`` sums of a tensor
    far larger than the caches (what a decode step does with the weights: read them once)."""
    a = torch.empty(mib * 2**20 // 4, dtype=torch.float32).fill_(1.0)
    a.sum()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t)
    return a.numel() * 4 / best


def hf_generate(model, prompts: list[list[int]], cap: int, pad_id: int, eos) -> tuple[list[list[int]], float]:
    """``model.generate`` on one left-padded batch; (new ids per prompt, EOS cut; seconds)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    t = time.perf_counter()
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=cap,
                         pad_token_id=pad_id, eos_token_id=eos)
    spent = time.perf_counter() - t
    new = []
    for row in out[:, width:].tolist():
        cut = next((j for j, tok in enumerate(row) if eos is not None and tok in (eos if isinstance(eos, list) else [eos])),
                   len(row))
        new.append(row[:cut])
    return new, spent


def profile_steps(model, tok, prompt: list[int], steps: int = 16) -> dict[str, float]:
    """Seconds per decode step of the harness loop by kind of work (batch 1)."""
    from torch.profiler import ProfilerActivity, profile

    settings = GenerationSettings(max_new_tokens=steps, eos_token_ids=[])
    t = time.perf_counter()
    generate(model, tok, [prompt], settings)
    wall = time.perf_counter() - t
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        generate(model, tok, [prompt], settings)
        wall = time.perf_counter() - t
    groups = {"matmul (weights read)": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul"),
              "attention": ("aten::scaled_dot_product_attention", "aten::_scaled_dot_product"),
              "KV-cache growth (cat)": ("aten::cat",)}
    spent = {g: 0.0 for g in groups}
    other = 0.0
    for ev in prof.key_averages():
        self_s = ev.self_cpu_time_total / 1e6
        for g, names in groups.items():
            if any(ev.key.startswith(n) for n in names):
                spent[g] += self_s
                break
        else:
            other += self_s
    spent["other ops"] = other
    spent["Python / dispatch (wall − ops)"] = max(0.0, wall - sum(spent.values()))
    return {k: v / steps for k, v in spent.items()} | {"wall per step": wall / steps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--b1-tokens", type=int, default=128)
    ap.add_argument("--b1-prompts", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ragged-prompts", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cap-min", type=int, default=16)
    ap.add_argument("--cap-max", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a 2-minute check: 16 tokens, 8 ragged prompts")
    ap.add_argument("--skip-ragged", action="store_true")
    ap.add_argument("--compile", action="store_true", help="batch 1: also the compiled decode step")
    args = ap.parse_args()
    if args.quick:
        args.b1_tokens, args.ragged_prompts, args.cap_max, args.rounds = 16, 8, 48, 1

    torch.manual_seed(0)
    base = models.load("embedded", dtype="fp32", device="cpu")
    tok, model = base.tokenizer, base.model
    eos = eos_ids(model, tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, embedded SmolLM2-135M fp32 on CPU")

    # -- 1. batch 1 --------------------------------------------------------------------------
    prompts = gsm8k_prompts(tok, max(args.b1_prompts, args.ragged_prompts))
    b1 = prompts[: args.b1_prompts]
    settings = GenerationSettings(max_new_tokens=args.b1_tokens, eos_token_ids=[])
    generate(model, tok, [b1[0]], GenerationSettings(max_new_tokens=4, eos_token_ids=[]))  # warm-up
    hf_generate(model, [b1[0]], 4, pad_id, None)
    step, compile_s = None, 0.0
    if args.compile:
        from harness.compiled_step import CompiledStep

        step = CompiledStep(model)
        step.plan([len(p) for p in b1], args.b1_tokens)
        t = time.perf_counter()
        step.precompile(tok, [1])
        compile_s = time.perf_counter() - t
    ours_tps, hf_tps, comp_tps, same = [], [], [], True
    for r in range(args.rounds):
        for p in b1:
            order = ["ours", "hf"] + (["compiled"] if step is not None else [])
            sides = order[r % len(order):] + order[: r % len(order)]  # each side leads in turn
            got = {}
            for side in sides:
                if side in ("ours", "compiled"):
                    res = generate(model, tok, [p], settings, compiled=step if side == "compiled" else None)[0]
                    got[side] = res.token_ids
                    (comp_tps if side == "compiled" else ours_tps).append(
                        (res.output_tokens - 1) / (res.latency_s - res.ttft_s))
                else:
                    # generate's decode rate: total minus a 1-token run (its prefill and first token)
                    _, t1 = hf_generate(model, [p], 1, pad_id, None)
                    ids, tn = hf_generate(model, [p], args.b1_tokens, pad_id, None)
                    got[side] = ids[0]
                    hf_tps.append((args.b1_tokens - 1) / (tn - t1))
            same &= got["ours"] == got["hf"] and got.get("compiled", got["hf"]) == got["hf"]
    n_params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bw = bandwidth_bytes_per_s()
    roofline = bw / weight_bytes
    print("\n## Batch 1\n")
    print(f"{args.b1_tokens} new tokens, {len(b1)} prompts × {args.rounds} rounds (alternating); identical tokens: {same}")
    print("| loop | decode tok/s (median) | × generate | share of roofline |\n|---|---:|---:|---:|")
    mo, mh = statistics.median(ours_tps), statistics.median(hf_tps)
    print(f"| harness | {mo:.1f} | {mo / mh:.2f} | {mo / roofline:.0%} |")
    if comp_tps:
        mc = statistics.median(comp_tps)
        print(f"| harness, compiled step (compile {compile_s:.0f} s, before the rounds) | {mc:.1f} | {mc / mh:.2f} | "
              f"{mc / roofline:.0%} |")
    print(f"| generate | {mh:.1f} | 1.00 | {mh / roofline:.0%} |")
    print(f"| roofline | {roofline:.1f} | {roofline / mh:.2f} | 100% |")
    print(f"\nroofline: {bw / 1e9:.1f} GB/s (read: a sum over 512 MiB) / {weight_bytes / 1e6:.0f} MB of weights "
          f"({n_params / 1e6:.1f} M parameters, tied embedding read once) per step")
    print("\nWhere a harness decode step goes (batch 1, torch.profiler, 16 steps):\n")
    print("| work | ms per step | share |\n|---|---:|---:|")
    prof = profile_steps(model, tok, b1[0])
    wall = prof.pop("wall per step")
    for k, v in prof.items():
        print(f"| {k} | {v * 1e3:.1f} | {v / wall:.0%} |")
    print(f"| total (wall, profiler on) | {wall * 1e3:.1f} | 100% |")

    if args.skip_ragged:
        return
    # -- 2. ragged ---------------------------------------------------------------------------
    rng = random.Random(args.seed)
    ragged = prompts[: args.ragged_prompts]
    caps = [rng.randint(args.cap_min, args.cap_max) for _ in ragged]
    order = sorted(range(len(ragged)), key=lambda i: -len(ragged[i]))  # as the variant orders requests
    settings = GenerationSettings(max_new_tokens=args.cap_max, eos_token_ids=eos)
    results = {}
    step8, compile8_s = None, 0.0
    if args.compile:  # static compiled batches: compiled before the timed runs
        from harness.compiled_step import CompiledStep

        step8 = CompiledStep(model)
        step8.plan([len(p) for p in ragged], args.cap_max)
        t = time.perf_counter()
        step8.precompile(tok, [min(args.batch_size, len(ragged)), len(ragged) % args.batch_size])
        compile8_s = time.perf_counter() - t
    sides = ["ours", "hf"] if args.seed % 2 == 0 else ["hf", "ours"]
    for side in sides + (["compiled"] if step8 is not None else []):
        t = time.perf_counter()
        if side in ("ours", "compiled"):
            out = generate(model, tok, [ragged[i] for i in order], settings, max_new_tokens=[caps[i] for i in order],
                           batch_size=args.batch_size, compiled=step8 if side == "compiled" else None)
            tokens = {i: r.token_ids for i, r in zip(order, out)}
        else:
            tokens = {}
            for s in range(0, len(order), args.batch_size):
                chunk = order[s: s + args.batch_size]
                ids, _ = hf_generate(model, [ragged[i] for i in chunk], max(caps[i] for i in chunk), pad_id, eos)
                for i, new in zip(chunk, ids):
                    tokens[i] = new[: caps[i]]
        spent = time.perf_counter() - t
        results[side] = (tokens, spent)
        print(f"  {side}: {spent:.1f} s", flush=True)
    (ot, os_), (ht, hs) = results["ours"], results["hf"]
    n_ours, n_hf = sum(len(v) for v in ot.values()), sum(len(v) for v in ht.values())
    same = sum(ot[i] == ht[i] for i in ot)
    print("\n## Ragged workload\n")
    print(f"{len(ragged)} GSM8K prompts, batch {args.batch_size}, caps uniform in [{args.cap_min}, {args.cap_max}] "
          f"(seed {args.seed}) + EOS; identical tokens in {same} of {len(ragged)} requests")
    print("| loop | completed tokens | wall s | tok/s | × generate |\n|---|---:|---:|---:|---:|")
    print(f"| harness (continuous batch of {args.batch_size}) | {n_ours} | {os_:.1f} | {n_ours / os_:.1f} | "
          f"{(n_ours / os_) / (n_hf / hs):.2f} |")
    print(f"| generate (static batches of {args.batch_size}) | {n_hf} | {hs:.1f} | {n_hf / hs:.1f} | 1.00 |")
    if step8 is not None:
        ct, cs = results["compiled"]
        n_c = sum(len(v) for v in ct.values())
        print(f"| harness, compiled step (static batches of {args.batch_size}; compile {compile8_s:.0f} s before) | "
              f"{n_c} | {cs:.1f} | {n_c / cs:.1f} | {(n_c / cs) / (n_hf / hs):.2f} |")
        print(f"compiled: identical tokens to the eager harness in {sum(ct[i] == ot[i] for i in ot)} of {len(ot)} requests")


if __name__ == "__main__":
    main()
