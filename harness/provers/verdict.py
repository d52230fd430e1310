"""What a proof checker says about one attempt.

Statuses (``check_status`` in the sample rows):

* ``proved`` — the checker verified the proof and every integrity rule held;
* ``failed`` — the checker read the proof and found it wrong (a step that does not unify, an
  unfinished proof, a Lean error message);
* ``rejected`` — the attempt broke a rule before or after checking (a forbidden token, an unknown
  or forbidden label, an axiom off the allow-list, ``sorry``): never proved whatever the
  checker's own result;
* ``timeout`` — the check did not finish within its limit;
* ``error`` — the checker itself failed (crashed, unreadable output, server error).

Only ``proved`` counts as proved: a timeout or an error is never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

PROVED, FAILED, REJECTED, TIMEOUT, ERROR = "proved", "failed", "rejected", "timeout", "error"
STATUSES = (PROVED, FAILED, REJECTED, TIMEOUT, ERROR)


@dataclass(frozen=True)
class Verdict:
    """One attempt's verdict.

    Attributes:
        status: one of :data:`STATUSES`.
        message: the first line of the reason (the checker's, or the rule that rejected it).
        time_s: checker wall time attributed to this attempt, seconds (a batch's time split
            evenly over its attempts; ``0.0`` for an attempt rejected before any checker ran).
        rule: for ``rejected``, the short name of the rule that rejected it (``dollar_token``,
            ``unknown_label``, ``axiom``...); ``None`` otherwise.
    """

    status: str
    message: str
    time_s: float = 0.0
    rule: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown check status {self.status!r}; one of {STATUSES}")
        object.__setattr__(self, "message", first_line(self.message))

    @property
    def proved(self) -> bool:
        return self.status == PROVED


def first_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, stripped and cut to ``limit`` characters."""
    for line in str(text).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def rejected(rule: str, message: str) -> Verdict:
    """A ``rejected`` verdict naming ``rule`` (no checker time)."""
    return Verdict(REJECTED, message, 0.0, rule)
