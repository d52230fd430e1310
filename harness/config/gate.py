"""The CI regression gate's settings: a suite's ``gate:`` section (never part of a run's identity)."""

from __future__ import annotations

from pydantic import Field, field_validator

from harness.config.fields import Strict


class CostTolerances(Strict):
    """Allowed cost increase per metric, as a candidate/baseline ratio above 1 (0.10 = +10 %).

    The gate widens each to ``spread_factor`` × the measured coefficient of variation across
    repeats when that is larger (see :class:`Gate`).
    """

    latency_p50_s: float = Field(0.10, ge=0)
    latency_p90_s: float = Field(0.15, ge=0)
    ttft_p50_s: float = Field(0.15, ge=0)
    energy_per_token_j: float = Field(0.10, ge=0)
    peak_rss_bytes: float = Field(0.05, ge=0)
    peak_allocated_bytes: float = Field(0.05, ge=0)


class Gate(Strict):
    """The CI regression gate's settings (``gate:`` in a suite; ``python -m harness gate``).

    Not part of the suite's run identity: changing them never re-runs cells.

    Attributes:
        alpha: significance level of the paired accuracy test (two-sided exact McNemar for 0/1
            grades, paired bootstrap otherwise); a drop fails only when significant *and* larger
            than ``accuracy_tolerance``.
        accuracy_tolerance: largest accuracy drop tolerated, absolute, as a fraction (0.01 = 1 point).
        length_band: allowed candidate/baseline ratio of mean output tokens (MLPerf's 90-110 %),
            skipped for variants declared ``length_changing``.
        truncation_tolerance: largest tolerated rise of the truncation rate (share of samples
            stopped by the token cap), absolute fraction; applies to every variant, including
            ``length_changing`` ones.
        cost: compare cost metrics at all (they are never compared across hardware or with fewer
            than ``min_repeats`` repeats per side).
        cost_tolerance: per-metric ratio tolerances (:class:`CostTolerances`).
        min_repeats: repeats needed on each side before a cost metric is compared.
        spread_factor: a cost tolerance is at least this × the larger side's coefficient of
            variation across repeats.
        fail_on_missing: a baseline cell absent from the candidate is a failure.
        bootstrap_samples: resamples of the paired bootstrap (non-binary scores only).
    """

    alpha: float = Field(0.05, gt=0, lt=1)
    accuracy_tolerance: float = Field(0.01, ge=0, le=1)
    length_band: tuple[float, float] = (0.90, 1.10)
    truncation_tolerance: float = Field(0.05, ge=0, le=1)
    cost: bool = True
    cost_tolerance: CostTolerances = CostTolerances()
    min_repeats: int = Field(3, ge=2)
    spread_factor: float = Field(2.0, ge=0)
    fail_on_missing: bool = True
    bootstrap_samples: int = Field(2000, ge=100)

    @field_validator("length_band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= 1 <= high:
            raise ValueError(f"length_band must be (low, high) with 0 < low <= 1 <= high, got {list(value)}")
        return value


