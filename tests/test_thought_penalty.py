"""``thought_penalty`` (TIP, arXiv 2501.18585; NoWait, arXiv 2506.08343): alpha 0 is the baseline,
banned words never appear where the baseline writes them, the penalty window follows the current
thought, and the word sequences cover every case/space form without touching bare sub-tokens."""

from __future__ import annotations

import re

import pytest

from harness.adapters import ADAPTERS
from harness.adapters.thought_penalty import SwitchWords, ThoughtPenaltyParams
from harness.generation import DecodePolicy, GenerationSettings, generate
from harness.testing import TinyBase

SCRIPT = "Hmm, so 2+2 is 4. Wait, is it? Alternatively count: 4. wait ok. hmm yes"
PROMPTS = ["What is 2+2?", "Add 2 and 2."]  # the same length: one script position per step
WORD = re.compile(r"(?<![A-Za-z0-9])(wait|alternatively|hmm)(?![A-Za-z0-9])", re.IGNORECASE)


class Scripted:
    """Mixin for a policy: the model's logits get +``bias`` on the character :data:`SCRIPT` has
    at the output position being decoded (a tiny random model that "writes" switch words)."""

    bias = 30.0

    def forward(self, model, **inputs):
        out = super().forward(model, **inputs)
        logits = out["logits"]
        step = inputs["position_ids"][:, -1] + 1 - len(PROMPTS[0])
        for row, k in enumerate(step.tolist()):
            if 0 <= k < len(SCRIPT):
                logits[row, -1, self.script_ids[k]] += self.bias
        return out


def _scripted(policy_cls, tok):
    cls = type(f"Scripted{policy_cls.__name__}", (Scripted, policy_cls), {})
    cls.script_ids = tok(SCRIPT, add_special_tokens=False)["input_ids"]
    return cls


def _run(base, params=None, cap=len(SCRIPT)):
    tok = base.tokenizer
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    if params is None:
        policy = _scripted(DecodePolicy, tok)()
    else:
        adapter = ADAPTERS.get("thought_penalty")(params)
        inner = adapter.make_policy(tok)  # the adapter's own policy, its class given the scripted model
        cls = _scripted(type(inner), tok)
        policy = cls.__new__(cls)
        policy.__dict__.update(inner.__dict__)
    return generate(base.model, tok, ids, GenerationSettings(cap, eos_token_ids=[]), policy, batch_size=1)


def test_baseline_writes_the_words_and_alpha_zero_equals_it():
    base = TinyBase(seed=3)
    free = _run(base)
    assert all(o.text == SCRIPT for o in free)  # the scripted baseline emits every switch word
    same = _run(base, {"alpha": 0.0})
    assert [o.token_ids for o in same] == [o.token_ids for o in free]
    words = float(len(WORD.findall(SCRIPT)))  # 5; each word is penalised (by 0) at its completing step
    assert all(o.counters == {"penalised_steps": words, "thought_switches": words} for o in same)


def test_ban_never_emits_the_words_and_changes_the_output():
    base = TinyBase(seed=3)
    banned = _run(base, {"mode": "ban"})
    for out in banned:
        assert not WORD.search(out.text), out.text
        assert out.text != SCRIPT and out.counters["thought_switches"] == 0.0
        assert out.text.startswith("H") and "so 2+2 is 4." in out.text  # only the completing tokens went


def test_penalty_window_follows_the_current_thought():
    base = TinyBase(seed=3)
    # beta 0: the window is empty, nothing is penalised
    open_window = _run(base, {"alpha": 1e4, "beta": 0})
    assert all(o.text == SCRIPT and o.counters["penalised_steps"] == 0.0 for o in open_window)
    # a large alpha inside a long window acts as a ban
    shut = _run(base, {"alpha": 1e4, "beta": 1000})
    assert all(not WORD.search(o.text) for o in shut)
    # beta 20 (character tokens: a word completes at its last character's position):
    # "Hmm" completes at 2, inside [0, 20): penalised; "Wait" (18..21) is outside: emitted, and its
    # thought starts at 18 (Ψ = the word's first token), so "Alternatively" (31..43) is outside
    # [18, 38): emitted; "wait" (55..58) is outside [31, 51): emitted; "hmm" (64..66) is inside [55, 75).
    # (Ψ at a word's last token would have penalised "wait": 58 < 43 + 20.)
    win = _run(base, {"alpha": 1e4, "beta": 20})
    for out in win:
        found = [m.lower() for m in WORD.findall(out.text)]
        assert found == ["wait", "alternatively", "wait"], out.text
        assert out.counters["thought_switches"] == 3.0


def test_params_canonical_forms():
    assert ThoughtPenaltyParams().model_dump() == {"mode": "penalty", "alpha": 3.0, "beta": 600,
                                                   "words": ("Wait", "Alternatively", "Hmm")}
    assert ThoughtPenaltyParams(mode="ban").model_dump() == {"mode": "ban", "words": ("Wait", "Alternatively", "Hmm")}
    with pytest.raises(ValueError, match="drop alpha"):
        ThoughtPenaltyParams(mode="ban", alpha=2.0)
    with pytest.raises(ValueError, match="letter or digit"):
        ThoughtPenaltyParams(words=(" Wait",))


def _bpe_tokenizer():
    """A byte-level BPE trained in memory, so some forms are one token and others are split."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["Wait, Wait. wait wait ok. Alternatively try this. Hmm, hmm.", "await waiting Hello Hi hm Hm"] * 50
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")


def test_sequences_cover_space_and_case_forms_but_not_bare_subtokens():
    tok = _bpe_tokenizer()
    switch = SwitchWords(tok, ["Wait", "Alternatively", "Hmm"])
    lengths = set()
    for form in ["Wait", " Wait", "wait", " wait", "Hmm", " Hmm", "hmm", " hmm", "Alternatively", " Alternatively",
                 "alternatively", " alternatively", "\nWait"]:
        ids = tok(form, add_special_tokens=False)["input_ids"]
        lengths.add(len(ids))
        before = "ok." + tok.decode(ids[:-1])
        assert ids[-1] in switch.completing(before)[0], f"{form!r} ({tok.convert_ids_to_tokens(ids)}) not covered"
        for k in range(len(ids) - 1):  # no earlier sub-token of the word is ever penalised
            assert ids[k] not in switch.completing("ok." + tok.decode(ids[:k]))[0]
    assert 1 in lengths and max(lengths) > 1  # single-token and multi-token forms were both checked
    # other words that contain or start like a switch word are left alone
    for text, nxt in [("a", "wait"), ("aw", "ait"), ("Hel", "lo"), ("H", "i"), ("", "waiting")]:
        for i in tok(text + nxt, add_special_tokens=False)["input_ids"][len(tok(text, add_special_tokens=False)["input_ids"]):]:
            assert i not in switch.completing(text)[0] or WORD.fullmatch(tok.decode([i]).strip())


@pytest.mark.slow
def test_embedded_ban_removes_words_the_baseline_writes(embedded):
    """SmolLM2 asked to repeat a hesitant line writes the switch words; banned, it never does."""
    tok = embedded.tokenizer
    question = 'Repeat exactly: "Wait, let me think. Hmm, alternatively we add. Wait, yes."'
    ids = [tok(tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                       add_generation_prompt=True), add_special_tokens=False)["input_ids"]]
    settings = GenerationSettings(48, eos_token_ids=[])
    free = generate(embedded.model, tok, ids, settings)[0]
    assert WORD.search(free.text), free.text
    adapter = ADAPTERS.get("thought_penalty")({"mode": "ban"})
    out = generate(embedded.model, tok, ids, settings, adapter.make_policy(tok))[0]
    assert not WORD.search(out.text), out.text
    assert out.text != free.text and out.counters["thought_switches"] == 0.0
