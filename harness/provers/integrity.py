"""Integrity rules for Lean 4 proofs, applied whatever Lean says.

Before checking (the proof text, as the model wrote it; comments are *not* stripped, so a
forbidden word in a comment is rejected too: the rule stays simple and errs towards rejecting):

* ``sorry`` / ``admit`` (an unfinished proof), ``axiom`` (a new axiom), ``import``,
  ``set_option`` (e.g. ``maxHeartbeats``, or options that change checking), ``#exit`` (stops
  checking the rest), ``implemented_by`` / ``extern`` (code the kernel does not check),
  ``apply?`` / ``exact?`` (search tactics that only suggest);
* ``top_level_command``: a line at column 0 that starts a new command (``theorem``, ``lemma``,
  ``def``, ``example``, ``instance``, ``namespace``, ``section``, ``end``, ``open``,
  ``attribute``, ``macro``, ``syntax``, ``elab``, ``notation``, ``#...``, ``@[``...): the proof
  must stay inside the theorem the harness wrote, so the statement cannot change.

After checking (the checker's response, :func:`response_verdict`):

* any message of severity ``error`` → ``failed``; a non-empty ``sorries`` list → ``failed``
  (the "declaration uses 'sorry'" *warning* alone decides nothing: it can be spurious in some
  Lean versions; the axioms decide);
* the harness appends ``#print axioms <name>``; its answer must name the dataset's theorem and
  list only :data:`STANDARD_AXIOMS` (``propext``, ``Classical.choice``, ``Quot.sound``), plus
  ``Lean.ofReduceBool`` and ``Lean.trustCompiler`` (what ``native_decide`` adds) only when the
  suite allows ``native_decide`` (recorded in the cell). ``sorryAx`` — also when a macro hides
  the ``sorry`` — is thereby ``rejected``; no axioms answer at all is ``failed``;
* the statement the checker received (the submitted code between the header and the proof)
  must equal the dataset's ``formal_statement`` (:func:`statement_problem`).
"""

from __future__ import annotations

import re

from harness.provers.verdict import FAILED, PROVED, REJECTED, Verdict, rejected

STANDARD_AXIOMS = frozenset({"propext", "Classical.choice", "Quot.sound"})
NATIVE_DECIDE_AXIOMS = frozenset({"Lean.ofReduceBool", "Lean.trustCompiler"})

FORBIDDEN_TEXT: tuple[tuple[str, re.Pattern], ...] = (
    ("sorry", re.compile(r"(?<![\w.'])sorry(?![\w'])")),
    ("admit", re.compile(r"(?<![\w.'])admit(?![\w'])")),
    ("axiom", re.compile(r"(?<![\w.'])axiom(?![\w'])")),
    ("import", re.compile(r"(?<![\w.'])import(?![\w'])")),
    ("set_option", re.compile(r"(?<![\w.'])set_option(?![\w'])")),
    ("#exit", re.compile(r"#exit")),
    ("implemented_by", re.compile(r"implemented_by")),
    ("extern", re.compile(r"(?<![\w.'])extern(?![\w'])")),
    ("apply?", re.compile(r"(?<![\w.'])apply\?")),
    ("exact?", re.compile(r"(?<![\w.'])exact\?")),
)
_COMMANDS = re.compile(
    r"^(theorem|lemma|def|example|instance|abbrev|structure|class|inductive|namespace|section|end|open|"
    r"attribute|macro|macro_rules|syntax|elab|notation|infix|infixl|infixr|prefix|postfix|variable|universe|"
    r"noncomputable|private|protected|mutual|opaque|local|scoped|@\[|#)"
)
_AXIOMS_RE = re.compile(r"'(?P<name>[^']+)' depends on axioms: \[(?P<axioms>[^\]]*)\]", re.DOTALL)
_NO_AXIOMS_RE = re.compile(r"'(?P<name>[^']+)' does not depend on any axioms")


def text_verdict(proof: str) -> Verdict | None:
    """A ``rejected`` verdict for the first forbidden construct in ``proof``, else ``None``."""
    for rule, pattern in FORBIDDEN_TEXT:
        if pattern.search(proof):
            return rejected(rule, f"the proof uses {rule!r}, which is not allowed")
    for line in proof.splitlines():
        if line and not line[0].isspace() and _COMMANDS.match(line):
            return rejected("top_level_command", f"the proof starts a new command at column 0: {line[:60]!r}")
    return None


def axioms_of(messages: list[dict], name: str) -> list[str] | None:
    """The axioms ``#print axioms <name>`` reported for ``name`` (``[]`` for none), ``None``
    when no such answer names exactly ``name``."""
    for message in messages:
        data = str(message.get("data", ""))
        match = _AXIOMS_RE.search(data)
        if match and match.group("name") == name:
            return [a.strip() for a in match.group("axioms").replace("\n", " ").split(",") if a.strip()]
        match = _NO_AXIOMS_RE.search(data)
        if match and match.group("name") == name:
            return []
    return None


def response_verdict(response: dict, name: str, allow_native_decide: bool = False) -> Verdict:
    """The verdict for one Lean REPL command response (``{"env", "messages", "sorries"}``, the
    REPL's JSON; see the module docstring for the rules)."""
    messages = list(response.get("messages") or [])
    errors = [m for m in messages if m.get("severity") == "error"]
    if errors:
        return Verdict(FAILED, f"Lean error: {errors[0].get('data', '')}")
    if response.get("sorries"):
        return Verdict(FAILED, f"Lean reports {len(response['sorries'])} sorry(s)")
    axioms = axioms_of(messages, name)
    if axioms is None:
        return Verdict(FAILED, f"no '#print axioms' answer for {name!r}: the theorem was not checked")
    allowed = STANDARD_AXIOMS | (NATIVE_DECIDE_AXIOMS if allow_native_decide else frozenset())
    bad = [a for a in axioms if a not in allowed]
    if bad:
        return Verdict(REJECTED, f"rests on {', '.join(bad)}: only {', '.join(sorted(allowed))} are allowed", rule="axioms")
    return Verdict(PROVED, f"checked; axioms: {', '.join(axioms) or 'none'}")


def statement_problem(code: str, header: str, formal_statement: str) -> str | None:
    """Why the submitted ``code`` does not carry the dataset's statement unchanged (``None``
    when it does): it must be ``header`` then ``formal_statement`` verbatim."""
    if not code.startswith(header):
        return "the submitted code does not start with the dataset's header"
    seen = code[len(header) : len(header) + len(formal_statement)]
    if seen != formal_statement:
        return "the statement the checker received differs from the dataset's formal_statement"
    return None
