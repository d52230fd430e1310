"""What a model may send as a Metamath proof, checked before metamath-exe ever reads it.

The model is given a problem's hypotheses and statement and returns only a *proof body* —
a compressed proof ``( label ... ) LETTERS`` or a plain list of labels (Metamath book §4.3 and
appendix B, "Compressed Proofs") — plus optional ``$d`` lines. The harness writes the theorem
block itself (:mod:`.metamath_batch`), so the statement cannot change. Rules (each rejection
names its rule, the ``rule`` of the :class:`~.verdict.Verdict`):

* ``non_ascii`` — any character outside printable ASCII, tab and newline;
* ``too_long`` — more than ``max_chars`` characters;
* ``empty`` — no proof body;
* ``dv_line`` — a ``$d`` line that is not ``$d <symbol> <symbol> ... $.`` (two or more distinct
  symbols, none holding ``$``);
* ``dv_weakens`` — a ``$d`` line pairing two symbols of the problem's own statement or
  hypotheses that the problem's own ``$d`` lines do not already make disjoint: that would
  weaken the stated theorem (``$d`` lines are for the proof's dummy variables);
* ``dollar_token`` — any other ``$`` in the text (``$}``, ``$[``, ``$=``, ``$a``...): a body may
  not open, close or include anything;
* ``parens`` — parentheses not of the form ``( labels ) LETTERS`` (unbalanced, nested, glued
  to a label, letters missing);
* ``bad_label`` — a label with characters outside ``A-Z a-z 0-9 - _ .`` (the Metamath label
  alphabet), e.g. shell metacharacters;
* ``bad_letters`` — compressed-proof letters outside ``A-Z``;
* ``incomplete`` — a ``?`` step (an unfinished proof, which metamath-exe accepts with a warning).

Citing another problem's label or a label outside set.mm is decided with the problem's context
(:func:`check_labels`) and by the checker itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.provers.verdict import Verdict, rejected

MAX_PROOF_CHARS = 200_000
"""Default cap on a proof attempt's text (set.mm's longest compressed proofs are ~60 kB)."""

LABEL_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
LETTERS_RE = re.compile(r"^[A-Z]+$")
_DV_RE = re.compile(r"^\$d((?:[ \t]+[!-#%-~]+)+)[ \t]+\$\.$")
_PRINTABLE = re.compile(r"^[\t\n\r -~]*$")


@dataclass(frozen=True)
class ProofInput:
    """A syntactically valid proof body.

    Attributes:
        labels: the compressed proof's label list, or the plain proof's labels in order.
        letters: the compressed proof's letters (``None`` for a plain label list).
        dv: the ``$d`` lines' symbol lists.
    """

    labels: tuple[str, ...]
    letters: str | None
    dv: tuple[tuple[str, ...], ...] = ()

    @property
    def compressed(self) -> bool:
        return self.letters is not None

    def body(self, rename: dict[str, str] | None = None) -> str:
        """The proof body as written into a ``.mm`` file, with labels renamed by ``rename``."""
        rename = rename or {}
        labels = " ".join(rename.get(label, label) for label in self.labels)
        if self.letters is None:
            return labels
        # letters wrapped at 76 columns: metamath-exe reads them across whitespace
        letters = "\n      ".join(self.letters[i : i + 76] for i in range(0, len(self.letters), 76))
        return f"( {labels} ) {letters}"


def parse_proof(text: str, own_symbols: frozenset[str] = frozenset(),
                max_chars: int = MAX_PROOF_CHARS,
                own_pairs: frozenset[frozenset[str]] = frozenset()) -> ProofInput | Verdict:
    """Parse an extracted proof attempt (see the module docstring for the rules).

    Args:
        text: the attempt (the task's extraction already applied).
        own_symbols: the math symbols of the problem's statement and hypotheses (for
            ``dv_weakens``); ``own_pairs``: the pairs the problem's own ``$d`` lines already
            make disjoint (repeating them is allowed).
        max_chars: the ``too_long`` cap.

    Returns:
        A :class:`ProofInput`, or a ``rejected`` :class:`~.verdict.Verdict` naming its rule.
        Never raises.
    """
    if len(text) > max_chars:
        return rejected("too_long", f"proof text of {len(text):,} characters exceeds the {max_chars:,} cap")
    if not _PRINTABLE.match(text):
        bad = next(c for c in text if not _PRINTABLE.match(c))
        return rejected("non_ascii", f"character {bad!r} (U+{ord(bad):04X}) outside printable ASCII")
    dv: list[tuple[str, ...]] = []
    body_lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("$d"):
            match = _DV_RE.match(stripped)
            symbols = tuple(match.group(1).split()) if match else ()
            if not match or len(set(symbols)) < 2 or len(set(symbols)) != len(symbols):
                return rejected("dv_line", f"malformed $d line {stripped[:80]!r} (want '$d x y ... $.')")
            own = sorted({s for s in symbols if s in own_symbols})
            new = [(a, b) for a in own for b in own if a < b and frozenset((a, b)) not in own_pairs]
            if new:
                return rejected("dv_weakens", f"$d line pairs the statement's own symbols {list(new[0])}: it would weaken the theorem")
            dv.append(symbols)
        else:
            body_lines.append(line)
    body = "\n".join(body_lines)
    if "$" in body:
        token = next(t for t in body.split() if "$" in t)
        return rejected("dollar_token", f"'{token[:20]}' in the proof body: only $d lines may hold a '$'")
    tokens = body.split()
    if not tokens:
        return rejected("empty", "no proof body")
    opens, closes = tokens.count("("), tokens.count(")")
    glued = [t for t in tokens if ("(" in t or ")" in t) and t not in ("(", ")")]
    if glued:
        return rejected("parens", f"parenthesis glued to {glued[0][:40]!r}: '(' and ')' must be separate tokens")
    if opens or closes:
        if (opens, closes) != (1, 1) or tokens[0] != "(" or tokens.index(")") < 1:
            return rejected("parens", f"compressed proof must be '( labels ) LETTERS' ({opens} '(' and {closes} ')')")
        end = tokens.index(")")
        labels, letters = tokens[1:end], "".join(tokens[end + 1 :])
        if not letters:
            return rejected("parens", "compressed proof has no letters after ')'")
        if "?" in letters:
            return rejected("incomplete", "'?' step: the proof is unfinished")
        if not LETTERS_RE.match(letters):
            bad = next(c for c in letters if not "A" <= c <= "Z")
            return rejected("bad_letters", f"compressed-proof letter {bad!r} outside A-Z")
    else:
        labels, letters = tokens, None
    for label in labels:
        if label == "?":
            return rejected("incomplete", "'?' step: the proof is unfinished")
        if not LABEL_RE.match(label):
            return rejected("bad_label", f"{label[:40]!r} is not a Metamath label (A-Z a-z 0-9 - _ .)")
    return ProofInput(tuple(labels), letters, tuple(dv))


def check_labels(proof: ProofInput, own_hyps: frozenset[str], own_label: str, own_name: str,
                 forbidden: dict[str, str], batch_prefix: str) -> Verdict | None:
    """The citation rule: a proof may cite set.mm's labels and its own problem's hypotheses only.

    Args:
        own_hyps: the problem's hypothesis labels (dataset names); ``own_label``/``own_name``: its
            statement's label and its name.
        forbidden: labels a batch file or the benchmark holds that are not set.mm's (every
            problem's statement and hypothesis labels) → the problem they belong to.
        batch_prefix: the prefix of the checker's own batch labels.

    Returns:
        A ``rejected`` verdict (rule ``forbidden_label``), or ``None`` when the rule holds.
        Unknown labels are left to the checker (it knows set.mm's labels).
    """
    for label in proof.labels:
        if label in own_hyps:
            continue
        if label.startswith(batch_prefix):
            return rejected("forbidden_label", f"cites {label!r}: a label of the checker's batch file")
        name = own_name if label == own_label else forbidden.get(label)
        if name is not None:
            why = "this problem's own statement" if name == own_name else f"another problem's label ({name})"
            return rejected("forbidden_label", f"cites {label!r}: {why}; only set.mm labels and this problem's hypotheses may be cited")
    return None
