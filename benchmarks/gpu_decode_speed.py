"""The decode loop on a GPU against ``transformers``' ``generate`` (issue 17's GPU table).

A Qwen2-architecture model shaped like Qwen2.5-1.5B-Instruct (28 layers, hidden 1536, 12 query /
2 KV heads, MLP 8960, vocabulary 151,936) with random weights (no download; the GPU machine has no
hub access), bf16 on CUDA. At each ``--batches`` size, greedy, ``--tokens`` new tokens, EOS
ignored so every side writes exactly that many, sides alternating over ``--rounds`` rounds:

* ``generate`` — ``model.generate`` with its defaults (the yardstick);
* ``harness`` — :func:`harness.generation.generate`, eager;
* ``harness compiled`` — the same with :class:`harness.compiled_step.CompiledStep`
  (``torch.compile``, ``mode="reduce-overhead"``: CUDA graphs over a static cache), compiled
  before the timed rounds (compile time reported).

Decode tokens/s = (tokens − 1) × batch / (time of the decode steps), the prefill and first token
excluded the same way on every side (``generate``: a 1-token run subtracted). The HBM roofline is
bytes of weights read per step / ``--hbm-tb-s`` (4.3 TB/s measured on the H200 that machine
lends). Every side's tokens are compared with ``generate``'s in the run.

Writes ``gpu_decode_speed.md`` and ``.json`` under ``--out``. ``--device cpu --small`` is a dry
run of the script on a tiny model (seconds; the figures mean nothing).

Usage: ``python benchmarks/gpu_decode_speed.py --out DIR`` (``gpu_check.sh`` sets up the machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from harness.compiled_step import CompiledStep, graphs_compiled
from harness.generation import GenerationSettings, generate


def build(device: str, small: bool):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from harness.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    if small:
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=len(tok))
    else:  # Qwen2.5-1.5B-Instruct's config
        shape = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                     num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1000000.0)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = Qwen2ForCausalLM(Qwen2Config(**shape, max_position_embeddings=32768)).to(dtype).eval()
    model.generation_config.pad_token_id = 0
    return model, tok


def prompts_for(batch: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(batch)
    return [torch.randint(10, vocab, (64 + 8 * (i % 4),), generator=g).tolist() for i in range(batch)]


def hf_run(model, prompts, tokens: int) -> tuple[list[list[int]], float]:
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
    ids, mask = ids.to(model.device), mask.to(model.device)
    sync(model)
    t = time.perf_counter()
    out = model.generate(ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                         eos_token_id=None, pad_token_id=0)
    sync(model)
    return out[:, width:].tolist(), time.perf_counter() - t


def sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny model (a dry run of the script)")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hbm-tb-s", type=float, default=4.3)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model, tok = build(args.device, args.small)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    roofline_steps = args.hbm_tb_s * 1e12 / weight_bytes  # decode steps/s if each step reads the weights once
    settings = GenerationSettings(max_new_tokens=args.tokens, eos_token_ids=[])
    rows, lines = [], []
    for batch in [int(b) for b in args.batches.split(",")]:
        prompts = prompts_for(batch, model.config.vocab_size)
        step = CompiledStep(model)
        step.plan([len(p) for p in prompts], args.tokens)
        t = time.perf_counter()
        step.precompile(tok, [batch])
        compile_s = time.perf_counter() - t
        generate(model, tok, prompts, GenerationSettings(max_new_tokens=4, eos_token_ids=[]))  # eager warm-up
        hf_run(model, prompts, 4)
        rates: dict[str, list[float]] = {"generate": [], "harness": [], "harness compiled": []}
        same = {"harness": True, "harness compiled": True}
        order = list(rates)
        graphs_before = graphs_compiled()
        for r in range(args.rounds):
            tokens: dict[str, list[list[int]]] = {}
            for side in order[r % 3:] + order[: r % 3]:  # each side leads in turn
                if side == "generate":
                    _, t1 = hf_run(model, prompts, 1)
                    tokens[side], tn = hf_run(model, prompts, args.tokens)
                    rates[side].append((args.tokens - 1) * batch / (tn - t1))
                else:
                    out = generate(model, tok, prompts, settings, compiled=step if side == "harness compiled" else None)
                    decode_s = max(o.latency_s for o in out) - min(o.ttft_s for o in out)
                    rates[side].append((args.tokens - 1) * batch / decode_s)
                    tokens[side] = [o.token_ids for o in out]
            for side in same:
                same[side] &= tokens[side] == tokens["generate"]
        recompiles = graphs_compiled() - graphs_before
        gen = statistics.median(rates["generate"])
        for side in order:
            rate = statistics.median(rates[side])
            compiled = side == "harness compiled"
            rows.append({"batch": batch, "loop": side, "decode_tok_per_s": rate, "x_generate": rate / gen,
                         "roofline_share": rate / (roofline_steps * batch), "compile_s": compile_s if compiled else None,
                         "recompiles_in_rounds": recompiles if compiled else None,
                         "same_tokens_as_generate": same.get(side, True)})
    lines.append(f"# Decode loop on {torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}"
                 f" ({'tiny dry run' if args.small else 'Qwen2.5-1.5B shape, random weights, bf16'})\n")
    lines.append(f"{args.tokens} new tokens, {args.rounds} rounds alternating; weights {weight_bytes / 1e9:.2f} GB; "
                 f"HBM roofline {roofline_steps:.0f} steps/s at {args.hbm_tb_s} TB/s\n")
    lines.append("| batch | loop | decode tok/s | × generate | share of roofline | compile s | recompiles | same tokens |")
    lines.append("|---:|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        compile_s = f"{row['compile_s']:.0f}" if row["compile_s"] is not None else ""
        recompiles = "" if row["recompiles_in_rounds"] is None else row["recompiles_in_rounds"]
        lines.append(f"| {row['batch']} | {row['loop']} | {row['decode_tok_per_s']:.1f} | {row['x_generate']:.2f} | "
                     f"{row['roofline_share']:.0%} | {compile_s} | {recompiles} | {row['same_tokens_as_generate']} |")
    text = "\n".join(lines) + "\n"
    (args.out / "gpu_decode_speed.md").write_text(text)
    (args.out / "gpu_decode_speed.json").write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
