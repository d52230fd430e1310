"""A terminal table of proving cells: pass@k and problems proved next to what they cost.

One row per proving cell: problems × attempts, pass@1 with its interval (bootstrap over
problems) — or, for a ``cot_switch`` cascade, the share proved within the attempt budget — then
pass@k for the largest reported k, problems proved, output tokens per problem, the generation
energy (with its source), tokens and energy per proved problem, the checker's time (outside the
generation windows) and batches with the attempts that timed out or errored, and the status. Display-only unit conversion happens here.
"""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from harness.results.display import MISSING as _MISSING
from harness.results.display import as_number as _num
from harness.results.display import as_text as _str
from harness.results.display import format_accuracy, format_energy, format_seconds

__all__ = ["proving_table"]


def _largest_k(row: pd.Series) -> tuple[int, float | None] | None:
    """The largest ``pass_at_<k>`` column with a value (``k > 1``)."""
    ks = sorted((int(c.removeprefix("pass_at_")), _num(row[c])) for c in row.index
                if c.startswith("pass_at_") and c[8:].isdigit() and int(c[8:]) > 1 and _num(row[c]) is not None)
    return ks[-1] if ks else None


def proving_table(cells: pd.DataFrame, title: str | None = "Proving") -> Table:
    """The rich table of proving cells (``cell_kind == "prove"``), sorted by task and variant."""
    table = Table(title=title)
    table.caption = ("pass@k: unbiased estimator (Chen et al. 2021) averaged over problems; a cot_switch "
                     "cascade reports the share proved within its budget instead; checker time is outside "
                     "the generation windows")
    for name, justify in (("task", "left"), ("variant", "left"), ("problems×n", "right"),
                          ("pass@1 / within budget (95% CI)", "right"), ("pass@k", "right"), ("proved", "right"),
                          ("out tokens / problem", "right"), ("tokens / proved", "right"),
                          ("energy", "right"), ("energy / proved", "right"), ("checker", "right"), ("status", "left")):
        table.add_column(name, justify=justify)
    df = cells.reset_index(drop=True)
    order = df.sort_values([c for c in ("task", "variant", "repeat") if c in df.columns], kind="stable").index
    for i in order:
        row = df.loc[i]
        status = _str(row.get("status")) or _MISSING
        if status == "error" and _str(row.get("error")):
            status = f"error: {(_str(row.get('error')) or '')[:300]}"
        problems, n = _num(row.get("problems")), _num(row.get("samples_per_doc"))
        big = _largest_k(row)
        tokens, proved = _num(row.get("output_tokens_total")), _num(row.get("proved"))
        timeouts, errors = _num(row.get("check_timeouts")) or 0, _num(row.get("check_errors")) or 0
        batches = _num(row.get("check_batches"))
        checker = format_seconds(row.get("check_time_s")) + (f", {batches:.0f} batch(es)" if batches is not None else "")
        if timeouts or errors:
            checker += f" ({timeouts:.0f} timeout, {errors:.0f} error)"
        table.add_row(
            _str(row.get("task")) or _MISSING,
            _str(row.get("variant")) or _MISSING,
            f"{problems:.0f}×{n:.0f}" if problems is not None and n is not None else _MISSING,
            format_accuracy(row.get("accuracy"), row.get("accuracy_ci95_low"), row.get("accuracy_ci95_high")),
            f"pass@{big[0]} {big[1] * 100:.1f}%" if big else _MISSING,
            f"{proved:.0f}" if proved is not None else _MISSING,
            f"{tokens / problems:.1f}" if tokens is not None and problems else _MISSING,
            f"{_num(row.get('tokens_per_proved')):.1f}" if _num(row.get("tokens_per_proved")) is not None else _MISSING,
            format_energy(row.get("energy_j"), row.get("energy_source")),
            format_energy(row.get("energy_per_proved_j")),
            checker,
            status,
        )
    return table
