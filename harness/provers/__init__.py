"""Proof checkers for the ``prove`` cell kind: each turns a model's proof attempt into a
:class:`~harness.provers.verdict.Verdict` (proved, failed, rejected, timeout, error).

* :mod:`.verdict` — the verdict and its statuses (what every checker returns).
* :mod:`.metamath_input` — what a model may send for a Metamath proof (syntax and integrity rules,
  checked before the checker runs).
* :mod:`.metamath_axioms` — the committed allow-list of set.mm axioms a proof may rest on.
* :mod:`.metamath_batch` — the batch ``.mm`` file and the parsing of metamath-exe's output.
* :mod:`.metamath` — :class:`~harness.provers.metamath.MetamathChecker`: Debian's ``metamath``
  against the pinned set.mm, in batches (one process per batch).
* :mod:`.integrity` — Lean 4 integrity rules (forbidden text, the ``#print axioms`` allow-list).
* :mod:`.lean` — Lean 4 back-ends (a local REPL, a Kimina Lean Server) behind one interface.
"""
