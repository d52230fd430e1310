"""miniF2F (Zheng et al. 2021, "miniF2F: a cross-system benchmark for formal Olympiad-level
mathematics", arXiv 2109.00110) as proving tasks.

* ``minif2f_metamath`` (test split, 244) and ``minif2f_metamath_valid`` (valid split, 244, the
  one with the 45 reference proofs): openai/miniF2F's Metamath form, checked by metamath-exe
  against the pinned set.mm (:mod:`harness.provers.metamath`); data
  ``minif2f/metamath/{test,valid}.jsonl``.
* ``minif2f_lean`` (test split, 244; DeepSeek-Prover-V1.5's set, Lean v4.9.0-rc1,
  ``minif2f/test.jsonl``) and ``minif2f_lean_v4_24`` (yangky11/miniF2F-lean4, Lean v4.24.0,
  ``minif2f/lean4_v4.24/test.jsonl``): checked by a Lean REPL or a Kimina Lean Server the user
  provides (:mod:`harness.provers.lean`).

Prompts ask for the proof body only (the harness writes the statement); with chain of thought
(``cot=True``) the model reasons first and ends with the proof in a code block.
"""

from __future__ import annotations

from harness.tasks.proving import ProvingTask, extract_fenced, register_proving_task

METAMATH_DB = "set.mm (Version of 28-Dec-2020)"


def metamath_block(doc: dict) -> str:
    """The problem as a Metamath block with ``?`` for the proof (what the model sees)."""
    lines = ["${"]
    lines += [f"  $d {d} $." for d in doc.get("dv") or []]
    lines += [f"  {label} $e {hyp} $." for label, hyp in doc["hyps"]]
    lines.append(f"  {doc['label']} $p {doc['statement']} $= ? $.")
    lines.append("$}")
    return "\n".join(lines)


def metamath_prompt(doc: dict, cot: bool) -> str:
    """Zero-shot prompt for a Metamath problem (``cot``: reason first)."""
    ask = ("First reason step by step about how to prove it. Then give the proof"
           if cot else "Reply with the proof only")
    return (
        f"Prove this theorem in Metamath against {METAMATH_DB}.\n\n```metamath\n{metamath_block(doc)}\n```\n\n"
        f"{ask}: the proof body that replaces `?`, a compressed proof `( label ... ) LETTERS` or a "
        "list of labels, in a final ```metamath code block. You may put `$d` lines for dummy "
        "variables before it. Cite only set.mm labels and the hypotheses above."
    )


def lean_prompt(version: str):
    def prompt(doc: dict, cot: bool) -> str:
        ask = ("First reason step by step about how to prove it. Then give the tactic proof"
               if cot else "Reply with the tactic proof only")
        return (
            f"Complete this Lean 4 proof (Lean {version}, Mathlib).\n\n```lean4\n{doc['header']}"
            f"{doc.get('informal_prefix', '')}{doc['formal_statement']}```\n\n"
            f"{ask}: the tactics that follow `:= by`, in a final ```lean4 code block."
        )

    return prompt


def lean_extract(reply: str) -> str:
    """The tactic proof in a reply: the last code block; when it repeats the theorem, what
    follows its first ``:= by``; indented two spaces when its first line is not."""
    text = extract_fenced(reply)
    if ":= by" in text and text.lstrip().startswith(("theorem", "lemma", "import", "open", "set_option")):
        text = text.split(":= by", 1)[1].lstrip("\n")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first and not first.startswith((" ", "\t")):
        lines = ["  " + line if line.strip() else line for line in lines]
    return "\n".join(lines).rstrip()


_MM_FIELDS = ("name", "label", "hyps", "statement", "dv", "reference_proof")
_LEAN_FIELDS = ("name", "header", "formal_statement")

for _name, _split in (("minif2f_metamath", "test"), ("minif2f_metamath_valid", "valid")):
    register_proving_task(ProvingTask(
        name=_name, version="1", checker="metamath",
        description=f"miniF2F {_split} split in Metamath (set.mm 2020-12-28), checked by metamath-exe",
        data_relpath=f"minif2f/metamath/{_split}.jsonl", size=244, required_fields=_MM_FIELDS,
        prompt_fn=metamath_prompt,
    ))
register_proving_task(ProvingTask(
    name="minif2f_lean", version="1", checker="lean", lean_version="v4.9.0-rc1",
    description="miniF2F test split in Lean 4 (DeepSeek-Prover-V1.5 set, Lean v4.9.0-rc1), your Lean checker",
    data_relpath="minif2f/test.jsonl", size=244, required_fields=_LEAN_FIELDS,
    prompt_fn=lean_prompt("v4.9.0-rc1"), extract_fn=lean_extract,
))
register_proving_task(ProvingTask(
    name="minif2f_lean_v4_24", version="1", checker="lean", lean_version="v4.24.0",
    description="miniF2F test split in Lean 4 (yangky11/miniF2F-lean4, Lean v4.24.0), your Lean checker",
    data_relpath="minif2f/lean4_v4.24/test.jsonl", size=244, required_fields=_LEAN_FIELDS,
    prompt_fn=lean_prompt("v4.24.0"), extract_fn=lean_extract,
))
