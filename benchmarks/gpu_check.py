"""GPU verification of the telemetry and the shared decode loop (one H200-sized script).

Builds a Llama-architecture model with random weights (no download), decodes with the
``baseline`` and ``think_budget`` policies through :func:`harness.generation.generate`
inside telemetry windows of >= 10 s, and writes a Markdown table:

* NVML energy counter vs trapezoid-integrated sampled power per window (goal: within 2 %);
* ``peak_allocated_bytes <= peak_reserved_bytes <= peak_process_device_used_bytes``;
* the sampler's achieved period and missed ticks;
* sampler overhead: the same decode with no window, with the in-process thread sampler and with the
  child-process sampler (the GPU default), rotating order, paired ratios with a 95 % interval (goal <= 1.01);
* idle power before the run;
* the token-timing invariant ``ttft_s + sum(itl_s) == latency_s`` on real CUDA timings.

Usage: ``python benchmarks/gpu_check.py --out DIR`` (see ``gpu_check.sh`` for the device run).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from harness.adapters.think_budget import BudgetPolicy, ThinkBudget
from harness.generation import DecodePolicy, GenerationSettings, generate
from harness.telemetry import Sampler, Telemetry, collect_provenance
from harness.testing import tiny_model, tiny_tokenizer


def build(args):
    tok = tiny_tokenizer()
    model = tiny_model(seed=0, layers=args.layers, hidden=args.hidden, heads=args.heads, sharpen=False, device=args.device)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = model.to(device=args.device, dtype=dtype).eval()
    return model, tok, make_prompts(tok, args.batch)


def make_prompts(tok, batch: int) -> list[list[int]]:
    return [tok(f"Question {i}: " + "lorem ipsum " * (8 + i % 16), add_special_tokens=False)["input_ids"] for i in range(batch)]


def decode(model, tok, prompts, tokens, policy=None):
    settings = GenerationSettings(max_new_tokens=tokens, eos_token_ids=[])
    return generate(model, tok, prompts, settings, policy)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--window-tokens", type=int, default=512, help="new tokens per decode call")
    ap.add_argument("--window-s", type=float, default=12.0, help="each window repeats decodes until this long")
    ap.add_argument("--ab-tokens", type=int, default=64)
    ap.add_argument("--ab-rounds", type=int, default=16, help="rounds of (off, thread, process) decodes per batch size")
    ap.add_argument("--ab-batches", default="16,128", help="batch sizes of the overhead A/B (launch-bound, GPU-bound)")
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run of the script)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    model, tok, prompts = build(args)
    n_params = sum(p.numel() for p in model.parameters())
    if args.window_s > 0:
        decode(model, tok, prompts, args.window_tokens)  # warm-up: kernels and allocator for every sequence length
    tel = Telemetry(device=args.device, sample_period_s=0.05, idle_seconds=args.idle_s)
    idle_w = tel.measure_idle()

    rows, timing_ok = [], True
    half = args.window_tokens // 2
    budget = ThinkBudget({"max_reasoning_tokens": half, "max_answer_tokens": half, "answer_cue": "\nANSWER{"})
    plan = budget.plan(tok, args.window_tokens)
    policies = {"baseline": DecodePolicy, "think_budget": lambda: BudgetPolicy(plan, tok)}
    for name, make_policy in policies.items() if args.window_s > 0 else ():
        results = []
        with tel.window(name) as w:
            began = time.perf_counter()
            while time.perf_counter() - began < args.window_s:  # >= 10 counter periods, >= 10 s
                results += decode(model, tok, prompts, args.window_tokens, make_policy())
        c = w.result.as_columns()
        for r in results:
            if r.output_tokens > 1 and not math.isclose(r.ttft_s + sum(r.itl_s), r.latency_s, rel_tol=1e-9, abs_tol=1e-9):
                timing_ok = False
        counter, integral = c["energy_counter_j"], c["energy_integral_j"]
        rows.append(
            {
                "window": name,
                "duration_s": c["duration_s"],
                "tokens": sum(r.output_tokens for r in results),
                "energy_j": c["energy_j"],
                "energy_source": c["energy_source"],
                "counter_j": counter,
                "integral_j": integral,
                "counter_vs_integral_pct": 100 * (integral - counter) / counter if counter and integral else None,
                "avg_power_w": c["avg_power_w"],
                "peak_allocated_bytes": c["peak_allocated_bytes"],
                "peak_reserved_bytes": c["peak_reserved_bytes"],
                "peak_process_device_used_bytes": c["peak_process_device_used_bytes"],
                "peak_device_used_bytes": c["peak_device_used_bytes"],
                "memory_order_ok": None
                if None in (c["peak_allocated_bytes"], c["peak_reserved_bytes"], c["peak_process_device_used_bytes"])
                else c["peak_allocated_bytes"] <= c["peak_reserved_bytes"] <= c["peak_process_device_used_bytes"],
                "gpu_util_mean": c["gpu_util_mean"],
                "sampler_achieved_period_s": c["sampler_achieved_period_s"],
                "sampler_missed_ticks": c["sampler_missed_ticks"],
                "flag_short_window": c["flag_short_window"],
                "flag_counter_reset": c["flag_counter_reset"],
                "ttft_p50_s": statistics.median(r.ttft_s for r in results),
                "tpot_p50_s": statistics.median(r.tpot_s for r in results if r.tpot_s is not None),
            }
        )

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(batch_prompts) -> float:
        sync()
        start = time.perf_counter()
        decode(model, tok, batch_prompts, args.ab_tokens)
        sync()
        return time.perf_counter() - start

    # Sampler overhead: identical decodes, timed inside the window (the window's open/close is a
    # per-cell cost, not the sampler's), in three modes whose order rotates every round:
    # no window, the in-process thread sampler, and the child-process sampler (the GPU default).
    # Two batch sizes: a launch-bound decode (the Python thread is the bottleneck: the worst case
    # for a sampling thread) and a GPU-bound one.
    process_sampler = tel.sampler
    samplers = {"thread": Sampler(process_sampler.probes, tel.sample_period_s), "process": process_sampler}
    modes = ["off", "thread", "process"]
    times: dict[str, list[float]] = {}
    overhead = {}
    for batch in [int(b) for b in args.ab_batches.split(",")]:
        batch_prompts = make_prompts(tok, batch)
        decode(model, tok, batch_prompts, args.ab_tokens)  # warm-up at this batch size
        t = {m: [] for m in modes}
        for i in range(args.ab_rounds):
            for m in modes[i % 3:] + modes[: i % 3]:
                if m == "off":
                    t[m].append(timed(batch_prompts))
                    continue
                tel.sampler = samplers[m]
                with tel.window(f"ab{batch}-{i}-{m}"):
                    t[m].append(timed(batch_prompts))
        tel.sampler = process_sampler
        for m in ("thread", "process"):
            ratios = [b / a for a, b in zip(t["off"], t[m])]  # same round: measured back to back
            mean = statistics.mean(ratios)
            half = 1.96 * statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else float("nan")
            overhead[f"{m} sampler, batch {batch}"] = {
                "mean": mean, "ci95": [mean - half, mean + half], "median": statistics.median(ratios), "ratios": ratios,
                "off_cv": statistics.pstdev(t["off"]) / statistics.mean(t["off"]),
            }
        times.update({f"{m}@{batch}": v for m, v in t.items()})
    tel.close()

    prov = collect_provenance(args.device)
    summary = {
        "gpu": prov.get("gpus") or prov.get("gpu"),
        "torch": torch.__version__,
        "model_params": n_params,
        "batch": args.batch,
        "idle_power_w": idle_w,
        "sampler_overhead": overhead,
        "ab_seconds": times,
        "timing_invariant_ok": timing_ok,
        "windows": rows,
    }
    (args.out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=str))
    lines = [
        f"# GPU check — {summary['gpu']}",
        "",
        f"model: random Llama, {n_params / 1e6:.0f} M params, {next(model.parameters()).dtype}, batch {args.batch}, "
        f"{args.window_tokens} new tokens per window; torch {torch.__version__}",
        f"idle power before the run: {idle_w} W",
        *[
            f"sampler overhead, {m} (decode time with / without telemetry, {args.ab_rounds} rotating rounds of "
            f"{args.ab_tokens} tokens): mean {o['mean']:.4f}, 95% CI {o['ci95'][0]:.4f}–{o['ci95'][1]:.4f}, "
            f"median {o['median']:.4f}; run-to-run CV without telemetry {o['off_cv']:.3f} (goal <= 1.01)"
            for m, o in overhead.items()
        ],
        "windows above: the default sampler on GPUs (child process)",
        f"token-timing invariant ttft + sum(itl) == latency on CUDA: {timing_ok}",
        "",
        "| window | s | tokens | counter J | integral J | diff % | avg W | alloc ≤ reserved ≤ NVML proc | util | sampler period s | missed | short |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['window']} | {r['duration_s']:.1f} | {r['tokens']} | {r['counter_j']} | {r['integral_j']} | "
            f"{r['counter_vs_integral_pct'] if r['counter_vs_integral_pct'] is None else round(r['counter_vs_integral_pct'], 2)} | "
            f"{r['avg_power_w']} | {r['peak_allocated_bytes']} ≤ {r['peak_reserved_bytes']} ≤ {r['peak_process_device_used_bytes']} "
            f"({r['memory_order_ok']}) | {r['gpu_util_mean']} | {r['sampler_achieved_period_s']} | {r['sampler_missed_ticks']} | {r['flag_short_window']} |"
        )
    text = "\n".join(lines)
    (args.out / "gpu_check.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
