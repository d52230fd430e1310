"""The training-cell runner: fine-tune an encoder on a GLUE train split, evaluate on validation.

Same :class:`harness.core.cell.CellKind` contract, executors, resume and results store as the
evaluation cells. Per cell: build a fresh classification model from the group's pretrained
encoder (head seeded by the cell's seed), train it with the technique inside one telemetry
window (``train_time_s``, ``train_energy_j`` and its source, peak RSS), evaluate every
validation document inside a second window (the standard telemetry columns, so
``energy_per_sample_j`` is the fine-tuned model's inference cost), then measure what the
technique stores per task (``adapter_bytes``) and how long switching to it takes
(``switch_time_s``). Sample rows hold one validation document each (prediction, reference,
correct), so the gate's paired tests and the dashboard's sample view work unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from harness.core.cell import Cell, CellOutcome
from harness.core.rows import energy_ratios, sample_row


class FinetuneRunner:
    """Loading, input checks and running of training cells (the registered kind,
    :class:`harness.kinds.finetune.FinetuneKind`, adds the suite section)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[dict]] = {}

    # -- group set-up ----------------------------------------------------------------
    def load_base(self, ref: str, dtype: str, device: str):
        """The pretrained encoder shared by a (model, dtype) group (:func:`load_encoder`)."""
        from harness.finetune.encoder import load_encoder

        return load_encoder(ref, dtype=dtype, device=device)

    def check_inputs(self, cells: list[Cell]) -> None:
        """Load every split the cells need (train of every trained task, validation of theirs).

        Raises:
            DataError: a missing or malformed file.
        """
        for cell in cells:
            for task in self._adapter(cell).tasks(cell.task):
                self._split(task, "train")
            self._split(cell.task, "validation")

    # -- one cell --------------------------------------------------------------------
    def _adapter(self, cell: Cell):
        from harness.finetune import FINETUNE_ADAPTERS

        return FINETUNE_ADAPTERS.get(cell.variant.adapter)(cell.params)

    def _split(self, task: str, split: str) -> list[dict]:
        from harness.finetune.data import get_finetune_task

        key = (task, split)
        if key not in self._rows:
            self._rows[key] = get_finetune_task(task).load(split)
        return self._rows[key]

    def run(self, cell: Cell, base, telemetry, on_progress=None, files=None) -> CellOutcome:
        """Train and evaluate one cell."""
        from harness.finetune.base import FitContext
        from harness.finetune.data import encode, get_finetune_task
        from harness.finetune.measure import count_params, serialize_state, time_switch
        from harness.finetune.metrics import task_metrics
        from harness.finetune.train import TrainData, TrainSettings, evaluate
        from harness.models import param_bytes
        from harness.core.stats import accuracy_with_ci
        from harness.telemetry.result import combine_checks

        adapter = self._adapter(cell)
        settings = TrainSettings(**cell.settings)
        tasks = [get_finetune_task(t) for t in adapter.tasks(cell.task)]
        task = tasks[0]
        data = TrainData(tasks, {t.name: self._split(t.name, "train") for t in tasks}, base.tokenizer,
                         settings.max_length, base.device, holdout=adapter.holdout_docs())
        progress = (lambda done, total: on_progress(done, total)) if on_progress else None
        ctx = FitContext(build=base.build, task=task, data=data, settings=settings, seed=cell.seed,
                         device=base.device, on_step=progress)
        with telemetry.window(f"{cell.cell_hash}/train") as train_window:
            fit = adapter.fit(ctx)
        rows = self._split(task.name, "validation")
        rows = rows[: cell.limit] if cell.limit else rows
        doc_ids = [int(r.get("idx", i)) for i, r in enumerate(rows)]
        val = encode(task, rows, base.tokenizer, settings.max_length, doc_ids)
        with telemetry.window(f"{cell.cell_hash}/eval") as eval_window:
            preds = evaluate(fit.adapter, fit.model, val, settings.eval_batch_size, data.pad_id, base.device)
        headline = preds[""]
        metrics = task_metrics(headline, val.labels)
        correct = [float(p == r) for p, r in zip(headline, val.labels)]
        acc, low, high = accuracy_with_ci(correct)
        trainable, total = count_params(fit.model)
        blob = serialize_state(fit.adapter.adapter_state(fit.model))
        switch_s = time_switch(blob, lambda state: fit.adapter.load_adapter_state(fit.model, state))
        train_cols = train_window.result.as_columns()
        eval_cols = eval_window.result.as_columns()
        peaks = [c["peak_rss_bytes"] for c in (train_cols, eval_cols) if c.get("peak_rss_bytes") is not None]
        counters = {f"counter_{k}": float(v) for k, v in fit.counters.items()}
        for name, values in preds.items():
            if name:
                counters[f"counter_{task.metric}_{name}"] = task_metrics(values, val.labels)[task.metric]
        energy = eval_cols.get("energy_j")
        row: dict[str, Any] = {
            **eval_cols,
            **combine_checks(train_cols, eval_cols),  # a flag of either window flags the cell
            "peak_rss_bytes": max(peaks) if peaks else None,
            "n": len(val),
            "n_correct": sum(correct),
            "accuracy": acc,
            "accuracy_ci95_low": low,
            "accuracy_ci95_high": high,
            "metric_f1": metrics["f1"],
            "metric_mcc": metrics["mcc"],
            "param_bytes": param_bytes(fit.model),
            **energy_ratios(energy, len(val), sum(correct)),
            **counters,
            # training-cell columns
            "task_metric": task.metric,
            "task_metric_value": metrics[task.metric],
            "trainable_params": trainable,
            "trainable_share": trainable / total if total else None,
            "saved_activation_bytes": fit.saved_activation_bytes,
            "train_time_s": train_cols["duration_s"],
            "train_energy_j": train_cols.get("energy_j"),
            "train_energy_source": train_cols.get("energy_source"),
            "steps": fit.steps,
            "final_train_loss": fit.final_train_loss,
            "adapter_bytes": len(blob),
            "switch_time_s": switch_s,
            "train_config_json": json.dumps(cell.settings, sort_keys=True),
            "technique_json": json.dumps(fit.extra, sort_keys=True) if fit.extra else None,
        }
        samples = []
        for k, (doc_id, text) in enumerate(zip(val.doc_ids, (doc_text(task, r) for r in rows))):
            samples.append(
                sample_row(
                    cell,
                    doc_id,
                    text,
                    task=task.name,
                    output_text=task.label_names[headline[k]],
                    extracted_answer=str(headline[k]),
                    reference=str(val.labels[k]),
                    correct=correct[k],
                    grade_reason="label match",
                    input_tokens=len(val.input_ids[k]),
                    batch_size=settings.eval_batch_size,
                    counters_json=json.dumps({f"pred_{n}": v[k] for n, v in preds.items() if n}, sort_keys=True),
                )
            )
        return CellOutcome(cell_row=row, sample_rows=samples)


def doc_text(task, row: dict) -> str:
    """A document's input text (sentence pairs joined by a newline)."""
    return "\n".join(str(row[f]) for f in task.text_fields)
