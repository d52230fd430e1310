"""Technique tests on a tiny random BERT: each fails if its technique's core were a no-op."""

from __future__ import annotations

import pytest
import torch

from harness.finetune import FINETUNE_ADAPTERS, FitContext, TrainSettings
from harness.finetune.encoder import classify, embed, layers, run_layers
from harness.finetune.measure import count_params
from harness.finetune.testing import SyntheticData, tiny_encoder_base
from tests.test_finetune_contract import fit_tiny


def encoder_weights(model) -> dict[str, torch.Tensor]:
    """Pretrained-encoder parameters of a (possibly wrapped) trained model, by their plain name."""
    out = {}
    for name, p in model.state_dict().items():
        plain = name.replace("base_model.model.", "").replace(".base_layer", "").replace("model.", "", 1) \
            if name.startswith(("base_model.", "model.")) else name
        out[plain] = p
    return out


def test_layered_forward_equals_the_model_forward():
    base = tiny_encoder_base(seed=3)
    model = base.build(2, seed=0).eval()
    batch = next(SyntheticData().stream(1, 4, seed=1))
    with torch.no_grad():
        hidden, mask = embed(model, batch)
        mine = classify(model, run_layers(model, hidden, mask))
        ref = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"]).logits
    torch.testing.assert_close(mine, ref)


def test_build_copies_pretrained_weights_and_seeds_the_head():
    base = tiny_encoder_base(seed=3)
    a, b, c = base.build(2, seed=0), base.build(2, seed=0), base.build(2, seed=1)
    torch.testing.assert_close(a.bert.encoder.layer[0].attention.self.query.weight,
                               base.model.encoder.layer[0].attention.self.query.weight)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


# --- full_ft / bitfit ----------------------------------------------------------------------


def test_full_ft_changes_every_block():
    fit, _, base = fit_tiny("full_ft", {})
    trainable, total = count_params(fit.model)
    assert trainable == total
    for i, layer in enumerate(layers(fit.model)):
        assert not torch.equal(layer.attention.self.query.weight, base.model.encoder.layer[i].attention.self.query.weight)


def test_bitfit_changes_biases_only():
    fit, _, base = fit_tiny("bitfit", {})
    ref = base.model.state_dict()
    trained = fit.model.bert.state_dict()
    changed_bias = [k for k in ref if k.endswith(".bias") and not torch.equal(ref[k], trained[k])]
    assert changed_bias, "no bias trained"
    for k in ref:
        if not k.endswith(".bias") and "position_ids" not in k:
            assert torch.equal(ref[k], trained[k]), f"BitFit changed weight {k}"
    biases = sum(p.numel() for n, p in fit.model.named_parameters() if n.endswith(".bias") and not n.startswith("classifier"))
    assert count_params(fit.model)[0] == biases + fit.model.classifier.weight.numel() + fit.model.classifier.bias.numel()


# --- LoRA / rsLoRA / DoRA ------------------------------------------------------------------


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


@pytest.mark.parametrize("name", ["lora", "rslora", "dora"])
def test_lora_family_trains_low_rank_updates_only(name):
    fit, _, base = fit_tiny(name, {"r": 2, "alpha": 4.0})
    lora = _lora_layers(fit.model)
    assert len(lora) == 2 * len(base.model.encoder.layer)  # query and value of every block
    for layer in lora:
        assert torch.count_nonzero(layer.lora_B["default"].weight) > 0, "B never left zero: no update"
        torch.testing.assert_close(layer.get_base_layer().weight,
                                   dict(base.model.named_parameters())[_base_name(layer, fit.model)])
    expected_scale = 4.0 / 2**0.5 if name == "rslora" else 4.0 / 2
    assert lora[0].scaling["default"] == pytest.approx(expected_scale)
    assert any("magnitude" in n for n, _ in fit.model.named_parameters()) == (name == "dora")
    per_layer = 2 * (32 + 32)  # r (in + out)
    extra = sum(32 for _ in lora) if name == "dora" else 0  # DoRA's magnitude vector per layer
    head = 32 * 2 + 2
    assert count_params(fit.model)[0] == len(lora) * per_layer + extra + head


def _base_name(layer, model) -> str:
    for name, module in model.named_modules():
        if module is layer:
            return name.split("bert.", 1)[1] + ".weight"
    raise KeyError


def test_lora_share_on_minilm_shapes_is_about_one_percent():
    """MiniLM-L6 geometry (6 blocks, hidden 384, 12 heads) with random weights: r=8 on q, v."""
    from transformers import BertConfig, BertModel

    from harness.finetune.encoder import EncoderBase

    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536)
    base = EncoderBase(BertModel(config), None, config, "cfg", "cfg", "fp32", "cpu")
    model = FINETUNE_ADAPTERS.get("lora")({"r": 8}).prepare(base.build(2, 0), None)
    trainable, total = count_params(model)
    assert trainable == 6 * 2 * 8 * (384 + 384) + 384 * 2 + 2
    assert trainable / total < 0.01


# --- sparse_update (PockEngine) --------------------------------------------------------------


def test_sparse_update_freezes_prefix_bit_identically_and_saves_far_less():
    full, _, _ = fit_tiny("full_ft", {})
    fit, _, base = fit_tiny("sparse_update", {"blocks": 1})
    ref = base.model.state_dict()
    trained = fit.model.bert.state_dict()
    n = len(base.model.encoder.layer)
    for k in ref:
        frozen = k.startswith("embeddings.") or any(k.startswith(f"encoder.layer.{i}.") for i in range(n - 1))
        if frozen:
            assert torch.equal(ref[k], trained[k]), f"frozen {k} changed"
    assert not torch.equal(ref[f"encoder.layer.{n - 1}.output.dense.weight"], trained[f"encoder.layer.{n - 1}.output.dense.weight"])
    # the frozen prefix ran under no_grad: far fewer bytes saved for backward than full fine-tuning
    assert fit.saved_activation_bytes < 0.5 * full.saved_activation_bytes
    assert fit.counters == {"frozen_blocks": float(n - 1)}


def test_sparse_update_bias_blocks_train_only_biases():
    fit, _, base = fit_tiny("sparse_update", {"blocks": 1, "bias_blocks": 1})
    ref, trained = base.model.state_dict(), fit.model.bert.state_dict()
    n = len(base.model.encoder.layer)
    prefix = f"encoder.layer.{n - 2}."
    assert any(not torch.equal(ref[k], trained[k]) for k in ref if k.startswith(prefix) and k.endswith(".bias"))
    assert all(torch.equal(ref[k], trained[k]) for k in ref if k.startswith(prefix) and k.endswith(".weight"))


# --- SHiRA -----------------------------------------------------------------------------------


def test_shira_changes_exactly_the_masked_entries():
    from harness.finetune.shira import shira_layers

    fit, _, base = fit_tiny("shira", {"r": 2})
    pretrained = dict(base.model.named_parameters())
    found = shira_layers(fit.model)
    assert len(found) == 2 * len(base.model.encoder.layer)
    for name, layer in found.items():
        original = pretrained[name.split("bert.", 1)[1] + ".weight"]
        merged = original + layer.get_delta_weight("default")
        changed = set(map(tuple, torch.nonzero(merged != original).tolist()))
        masked = set(map(tuple, layer.shira_indices["default"].T.tolist()))
        assert len(masked) == 2 * (32 + 32)  # r (m + n) entries
        assert changed == masked, f"{name}: changed entries differ from the mask"
        assert torch.equal(layer.get_base_layer().weight, original)


# --- Poly / MHR ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, splits", [("poly", 1), ("mhr", 2)])
def test_poly_routing_shape_and_task_outputs_differ(name, splits):
    from peft.tuners.poly.router import PolyRouter

    fit, ctx, _ = fit_tiny(name, {"r": 2, "n_skills": 3, "n_splits": splits, "co_tasks": ["rte"]})
    routers = [m for m in fit.model.modules() if isinstance(m, PolyRouter)]
    assert routers
    for router in routers:
        assert tuple(router.module_logits.shape) == (2, splits * 3)  # (tasks, splits x skills)
    batch = next(ctx.data.stream(1, 8, seed=3))
    fit.model.eval()
    with torch.no_grad():
        as_task0 = fit.adapter.logits(fit.model, {**batch, "task_ids": torch.zeros_like(batch["task_ids"])})
        as_task1 = fit.adapter.logits(fit.model, {**batch, "task_ids": torch.ones_like(batch["task_ids"])})
    assert not torch.allclose(as_task0, as_task1), "routing ignores the task"
    assert fit.counters == {"n_tasks": 2.0}


def test_mhr_needs_more_than_one_split():
    with pytest.raises(Exception, match="greater than or equal to 2"):
        FINETUNE_ADAPTERS.get("mhr")({"n_splits": 1})


# --- sorted_depth (SortedNet) ----------------------------------------------------------------


def _exit_loss(model, batch, depth: int) -> float:
    model.eval()
    with torch.no_grad():
        hidden, mask = embed(model, batch)
        logits = classify(model, run_layers(model, hidden, mask, 0, depth))
    return float(torch.nn.functional.cross_entropy(logits, batch["labels"]))


def test_sorted_depth_loss_averages_every_exit_and_eval_reports_each():
    base = tiny_encoder_base(seed=2)
    adapter = FINETUNE_ADAPTERS.get("sorted_depth")({"depths": [1, 2, 4]})
    model = adapter.prepare(base.build(2, 0), None).eval()  # eval: no dropout, deterministic
    torch.manual_seed(0)
    model.classifier.weight.data.normal_(0, 2.0)  # a decisive head, so the exits' losses differ
    batch = next(SyntheticData().stream(1, 16, seed=11))
    exits = [_exit_loss(model, batch, d) for d in (1, 2, 4)]
    with torch.no_grad():
        loss = float(adapter.loss(model, batch))
    assert loss == pytest.approx(sum(exits) / 3, rel=1e-5)
    assert abs(loss - exits[-1]) > 1e-4  # not the last exit alone
    out = adapter.predict(model, batch)
    assert set(out) == {"", "depth_1", "depth_2", "depth_4"} and torch.equal(out[""], out["depth_4"])


def test_sorted_depth_training_lowers_every_exit_loss():
    fit, ctx, base = fit_tiny("sorted_depth", {"depths": [1, 4]}, steps=20, lr=3e-3)
    batch = next(ctx.data.stream(1, 64, seed=11))
    untrained = base.build(2, 0)
    for depth in (1, 4):
        assert _exit_loss(fit.model, batch, depth) < 0.5 * _exit_loss(untrained, batch, depth)


# --- MEFT (reversible) -----------------------------------------------------------------------


def _meft_model(dtype=torch.float64, reversible=True, seed=0):
    base = tiny_encoder_base(seed=4, dtype=dtype)
    adapter = FINETUNE_ADAPTERS.get("meft")({"bottleneck": 4, "lam": 0.5, "reversible": reversible})
    ctx = FitContext(build=base.build, task=SyntheticData().tasks[0], data=SyntheticData(), seed=seed,
                     settings=TrainSettings(steps=1, batch_size=4, learning_rate=1e-3))
    model = adapter.prepare(base.build(2, seed), ctx).to(dtype)
    torch.manual_seed(7)
    for block in model.blocks:  # leave the zero start so the adapters act in these checks
        for p in block.parameters():
            if p.requires_grad:
                p.data.normal_(0, 0.1)
    return adapter, model


def test_meft_reconstruction_error_in_float64_is_tiny():
    _, model = _meft_model()
    batch = next(SyntheticData().stream(1, 4, seed=2))
    with torch.no_grad():
        hidden, mask = embed(model.model, batch)
        x1 = hidden + 0.1 * torch.randn_like(hidden)
        x2 = hidden
        for block in model.blocks:
            a, b = block(x1, x2, mask)
            r1, r2 = block.inverse(a, b, mask)
            assert (r1 - x1).abs().max() < 1e-10 and (r2 - x2).abs().max() < 1e-10
            x1, x2 = a, b


def test_meft_gradients_match_ordinary_autograd_and_save_less():
    from harness.finetune.measure import SavedTensorMeter

    batch = next(SyntheticData().stream(1, 4, seed=2))
    grads, saved = {}, {}
    for reversible in (True, False):
        adapter, model = _meft_model(reversible=reversible)
        meter = SavedTensorMeter(model)
        with meter.measure():
            loss = adapter.loss(model, batch)
        loss.backward()
        grads[reversible] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        saved[reversible] = meter.last_bytes
    assert grads[True].keys() == grads[False].keys() and grads[True]
    for name in grads[True]:
        torch.testing.assert_close(grads[True][name], grads[False][name], rtol=1e-9, atol=1e-11, msg=name)
    assert any(float(g.abs().max()) > 0 for g in grads[True].values())
    assert saved[True] < 0.5 * saved[False]


def test_meft_starts_near_the_pretrained_model():
    base = tiny_encoder_base(seed=4)
    adapter = FINETUNE_ADAPTERS.get("meft")({"bottleneck": 4, "lam": 1e-6})
    ctx = FitContext(build=base.build, task=SyntheticData().tasks[0], data=SyntheticData(), seed=0,
                     settings=TrainSettings(steps=1, batch_size=4, learning_rate=1e-3))
    plain = base.build(2, 0).eval()
    meft = adapter.prepare(base.build(2, 0), ctx).eval()
    batch = next(SyntheticData().stream(1, 4, seed=2))
    with torch.no_grad():
        ref = plain(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.testing.assert_close(adapter.logits(meft, batch), ref, rtol=1e-4, atol=1e-4)


# --- peft_search (AutoPEFT) ------------------------------------------------------------------


def test_peft_search_returns_a_pareto_set_over_metric_and_params():
    params = {"ranks": [1, 4], "module_sets": ["qv", "qv_ffn"], "n_trials": 4, "min_steps": 2, "holdout_docs": 16}
    fit, _, _ = fit_tiny("peft_search", params)
    trials = fit.extra["trials"]
    assert len(trials) == 4 and len({(t["r"], t["modules"], t["layers"]) for t in trials}) == 4
    assert len({t["trainable_params"] for t in trials}) > 1
    front = [t for t in trials if t["pareto"]]
    assert front and fit.counters["pareto_size"] == len(front)
    for t in front:  # nothing dominates a front member
        assert not any(
            o["holdout_metric"] >= t["holdout_metric"] and o["trainable_params"] <= t["trainable_params"]
            and (o["holdout_metric"] > t["holdout_metric"] or o["trainable_params"] < t["trainable_params"])
            for o in trials
        )
    for t in trials:  # every trial off the front is dominated
        if not t["pareto"]:
            assert any(o["holdout_metric"] >= t["holdout_metric"] and o["trainable_params"] <= t["trainable_params"]
                       and o is not t for o in front)
    (winner,) = [t for t in trials if t["selected"]]
    assert winner["steps"] == max(t["steps"] for t in trials) == 8  # 2 -> 4 -> 8 steps
    assert fit.steps == 4 * 2 + 2 * 2 + 1 * 4
    assert count_params(fit.model)[0] == winner["trainable_params"]
