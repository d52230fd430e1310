"""The axioms a Metamath proof of a miniF2F problem may rest on (committed allow-list).

A bare ``verify proof`` accepts a proof that rests on *any* ``$a`` statement of the database,
and set.mm of 28-Dec-2020 declares 114 logical axioms (``$a |-`` statements not named ``df-``),
among them ``ax-riotaBAD``, whose own comment says it makes the system inconsistent. The
checker therefore lists what a proof rests on (metamath-exe ``show trace_back <label> /axioms
/essential``) and requires every entry to be in :data:`ALLOWED_AXIOMS` or a definition
(``df-`` prefix):

* propositional and predicate calculus: ``ax-mp``, ``ax-1`` … ``ax-13`` (with ``ax-gen``,
  declared between ``ax-3`` and ``ax-4``);
* ZF set theory: ``ax-ext`` … ``ax-inf2``; choice: ``ax-cc``, ``ax-dc``, ``ax-ac``,
  ``ax-ac2``; Tarski–Grothendieck: ``ax-groth``;
* the complex-number postulates ``ax-cnex`` … ``ax-pre-sup`` and ``ax-addf``, ``ax-mulf``;
* ``ax-frege54c`` (it states ``|- A = A``, provable from the axioms above; two miniF2F
  reference proofs rest on it).

The other 58 (the Hilbert-space postulates ``ax-hilex`` …, ``ax-xrssca``/``ax-xrsvsca``, the
older and alternative axiomatizations ``ax-c*``, ``ax-luk*``, ``ax-prv*``, ``ax-*d``, the other
``ax-frege*``, the conjectures ``ax-bgbltosilva``, ``ax-hgprmladder``, ``ax-tgoldbachgt`` and
``ax-riotaBAD``) are rejected. Source of the list: set.mm "Version of 28-Dec-2020"
(sha256 4d93307b…), its ``$a |-`` statements in file order; ``tests/test_prove_metamath.py``
re-derives the 58 from the file.
"""

from __future__ import annotations

ALLOWED_AXIOMS: frozenset[str] = frozenset(
    ["ax-mp", "ax-1", "ax-2", "ax-3", "ax-gen", "ax-4", "ax-5", "ax-6", "ax-7", "ax-8", "ax-9", "ax-10", "ax-11", "ax-12", "ax-13", "ax-ext", "ax-rep", "ax-sep", "ax-nul", "ax-pow", "ax-pr", "ax-un", "ax-reg", "ax-inf", "ax-inf2", "ax-cc", "ax-dc", "ax-ac", "ax-ac2", "ax-groth", "ax-cnex", "ax-resscn", "ax-1cn", "ax-icn", "ax-addcl", "ax-addrcl", "ax-mulcl", "ax-mulrcl", "ax-mulcom", "ax-addass", "ax-mulass", "ax-distr", "ax-i2m1", "ax-1ne0", "ax-1rid", "ax-rnegex", "ax-rrecex", "ax-cnre", "ax-pre-lttri", "ax-pre-lttrn", "ax-pre-ltadd", "ax-pre-mulgt0", "ax-pre-sup", "ax-addf", "ax-mulf", "ax-frege54c"]
)
"""The 56 logical axioms a proof may rest on, besides every ``df-`` definition."""

DEFINITION_PREFIX = "df-"


def axiom_allowed(label: str) -> bool:
    """True for an allow-listed axiom or a definition (``df-``)."""
    return label in ALLOWED_AXIOMS or label.startswith(DEFINITION_PREFIX)


def disallowed(axioms: list[str]) -> list[str]:
    """The entries of ``axioms`` (a ``trace_back /axioms`` list) that are not allowed, in order."""
    return [a for a in axioms if not axiom_allowed(a)]
