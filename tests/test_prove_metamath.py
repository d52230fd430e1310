"""The Metamath checker, with the real checker (Debian's metamath-exe and the pinned set.mm):
reference proofs prove, corrupted ones do not, unsound axioms and other problems' labels are
rejected, a timeout is never a proof, and malformed model outputs are rejected without a crash.

Without ``metamath`` these tests skip locally and FAIL when ``CI`` is set (the install step of
``make test`` apt-installs it)."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from conftest import SHARED_DATA

from harness.kinds.prove.checkers import forbidden_labels, metamath_problem
from harness.provers.metamath import (
    SET_MM_SHA256,
    CheckerUnavailable,
    CheckStats,
    MetamathChecker,
    find_database,
)
from harness.provers.metamath_axioms import ALLOWED_AXIOMS, axiom_allowed
from harness.provers.metamath_batch import LABEL_PREFIX, BatchItem, MetamathProblem
from harness.provers.metamath_input import parse_proof

# the 23 reference proofs that verify against set.mm of 2020-12-28 (data README)
VERIFYING = ["algebra-2rootspoly-apatapbeq2asqp2ab", "algebra-3rootspoly-amdtamctambeqnasqmbpctapcbtdpasqmbpctapcbta", "algebra-manipexpr-2erprsqpesqeqnrpnesq", "algebra-manipexpr-apbeq2cceqiacpbceqm2", "algebra-sqineq-2at2pclta2c2p41pc", "algebra-sqineq-4bap1lt4bsqpap1sq", "amc12-2000-p11", "amc12-2001-p2", "amc12a-2002-p1", "amc12a-2003-p1", "amc12b-2003-p17", "amc12b-2003-p6", "induction-divisibility-3div2tooddnp1", "induction-seq-mul2pnp1", "induction-sum-1oktkp1", "induction-sum-odd", "induction-sum2kp1npqsqm1", "mathd-algebra-245", "mathd-algebra-247", "mathd-algebra-251", "mathd-algebra-31", "numbertheory-2dvd4expn", "numbertheory-xsqpysqintdenomeq"]


def require_metamath() -> None:
    if shutil.which("metamath") is None or not os.path.isfile("/usr/share/metamath/databases/set.mm"):
        message = "metamath / metamath-databases not installed (apt-get install metamath metamath-databases)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real Metamath checker: {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def checker() -> MetamathChecker:
    require_metamath()
    return MetamathChecker()


@pytest.fixture(scope="module")
def valid() -> list[dict]:
    path = SHARED_DATA / "minif2f/metamath/valid.jsonl"
    if not path.is_file():
        pytest.skip(f"offline data not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def references(checker, valid):
    """Every reference proof checked in one batch: ``name -> verdict``."""
    rows = [r for r in valid if r["reference_proof"]]
    verdicts, stats = checker.check([(metamath_problem(r), r["reference_proof"]) for r in rows], forbidden_labels(valid))
    assert len(stats.batches) == 1 and stats.batches[0][0] == len(rows) == 45  # one process for all of them
    return {r["name"]: v for r, v in zip(rows, verdicts)}


def test_every_reference_proof_that_verifies_is_proved(references):
    proved = sorted(name for name, v in references.items() if v.status == "proved")
    assert proved == sorted(VERIFYING)
    # the other 22 cite theorems added to set.mm after 2020: an unknown label, rejected and named
    others = [v for name, v in references.items() if name not in VERIFYING]
    assert {v.rule for v in others} == {"unknown_label"} and all("unknown label '" in v.message for v in others)


def _swap_two_labels(proof: str) -> str:
    labels, rest = proof[1:].split(")", 1)
    parts = labels.split()
    parts[0], parts[1] = parts[1], parts[0]
    return "( " + " ".join(parts) + " )" + rest


def _change_letter(proof: str) -> str:
    head, letters = proof.rsplit(")", 1)
    i = len(letters) // 2
    while not letters[i].isalpha():
        i += 1
    new = "B" if letters[i] != "B" else "C"
    return head + ")" + letters[:i] + new + letters[i + 1 :]


def test_corrupted_reference_proofs_are_never_proved(checker, valid):
    rows = {r["name"]: r for r in valid}
    attempts, kinds = [], []
    for i, name in enumerate(VERIFYING):
        row, proof = rows[name], rows[name]["reference_proof"]
        other = rows[VERIFYING[(i + 1) % len(VERIFYING)]]
        attempts += [(metamath_problem(row), _swap_two_labels(proof)), (metamath_problem(row), _change_letter(proof)),
                     (metamath_problem(other), proof)]
        kinds += ["changed step label", "changed letter", "proof of a different statement"]
    verdicts, _ = checker.check(attempts, forbidden_labels(valid))
    wrong = [(k, a[0].name, v) for k, a, v in zip(kinds, attempts, verdicts) if v.status not in ("failed", "rejected")]
    assert wrong == []
    assert sum(v.status == "failed" for v in verdicts) >= len(verdicts) - 3  # corruptions fail in the checker itself


def test_a_proof_resting_on_an_inconsistent_axiom_is_rejected(checker):
    """riotaclbBAD (a set.mm theorem proved from ax-riotaBAD, which makes set.mm inconsistent)
    verifies as a step; the axiom trace rejects it."""
    problem = MetamathProblem("riota-test", "riota-test", (("riota-test.0", "|- A e. _V"),),
                              "|- ( E! x e. A ph <-> ( iota_ x e. A ph ) e. A )", (("x", "A"),))
    (verdict,), _ = checker.check([(problem, "wph vx cA riota-test.0 riotaclbBAD")])
    assert (verdict.status, verdict.rule) == ("rejected", "axiom") and "ax-riotaBAD" in verdict.message


def test_citing_another_problems_or_the_batchs_labels_is_rejected(checker, valid):
    rows = {r["name"]: r for r in valid}
    p = metamath_problem(rows["mathd-algebra-245"])
    ref = rows["mathd-algebra-245"]["reference_proof"]
    via_batch = f"wph cX mathd-algebra-245.0 mathd-algebra-245.1 {LABEL_PREFIX}0"  # cites attempt 0's block
    # without the citation rule metamath accepts it: the batch file holds a proof of the same statement
    bypass, _ = checker._run_batch([BatchItem(p, parse_proof(ref)), BatchItem(p, parse_proof(via_batch))], CheckStats())
    assert [v.status for v in bypass] == ["proved", "proved"]
    other = metamath_problem(rows["mathd-algebra-247"])
    verdicts, _ = checker.check(
        [(p, ref), (p, via_batch), (p, "wph cX mathd-algebra-245.0 mathd-algebra-245.1 mathd-algebra-245"),
         (other, "( mathd-algebra-245 ) A")],
        forbidden_labels(valid),
    )
    assert [v.status for v in verdicts] == ["proved", "rejected", "rejected", "rejected"]
    assert {v.rule for v in verdicts[1:]} == {"forbidden_label"}
    assert "another problem's label (mathd-algebra-245)" in verdicts[3].message


def test_a_timeout_is_a_timeout_never_proved(valid):
    require_metamath()
    rows = {r["name"]: r for r in valid}
    tiny = MetamathChecker(attempt_timeout_s=0.001, read_timeout_s=0.001)
    attempts = [(metamath_problem(rows[n]), rows[n]["reference_proof"]) for n in VERIFYING[:3]]
    verdicts, stats = tiny.check(attempts)
    assert [v.status for v in verdicts] == ["timeout"] * 3
    assert len(stats.batches) == 4  # the batch, then each attempt alone


MALFORMED = {  # a model's output after extraction → the rule that rejects it
    "shell metacharacters": ("a1i; rm -rf / # mp2", "bad_label"),
    "command substitution": ("$(touch /tmp/pwned) a1i", "dollar_token"),
    "backticks": ("`id` a1i", "bad_label"),
    "scope close injection": ("a1i $} ${ x $p |- ph $= ? $.", "dollar_token"),
    "include injection": ("$[ /etc/passwd $] a1i", "dollar_token"),
    "axiom injection": ("a1i $.\nbad $a |- ph $.", "dollar_token"),
    "metamath comment": ("$( hidden $) a1i", "dollar_token"),
    "1 MB of text": ("A" * 1_000_000, "too_long"),
    "unbalanced open": ("( a1i mp2 AB", "parens"),
    "unbalanced close": ("a1i ) AB", "parens"),
    "nested parentheses": ("( a1i ( mp2 ) ) AB", "parens"),
    "glued parenthesis": ("(a1i mp2) AB", "parens"),
    "no letters": ("( a1i mp2 )", "parens"),
    "lower-case letters": ("( a1i ) abc", "bad_letters"),
    "non-ASCII": ("( a1i ) AB ∀x", "non_ascii"),
    "NUL byte": ("a1i\x00mp2", "non_ascii"),
    "empty": ("   \n  ", "empty"),
    "question mark step": ("( a1i ) AB?C", "incomplete"),
    "malformed $d": ("$d x $.\n( a1i ) AB", "dv_line"),
    "unknown label": ("( thislabeldoesnotexist ) A", "unknown_label"),
}


def test_twenty_malformed_outputs_are_rejected_without_a_crash(checker, valid):
    assert len(MALFORMED) == 20
    problem = metamath_problem(next(r for r in valid if r["name"] == "mathd-algebra-245"))
    verdicts, _ = checker.check([(problem, text) for text, _ in MALFORMED.values()], forbidden_labels(valid))
    got = {name: (v.status, v.rule) for name, v in zip(MALFORMED, verdicts)}
    assert got == {name: ("rejected", rule) for name, (_, rule) in MALFORMED.items()}
    assert not os.path.exists("/tmp/pwned")


def test_a_dv_line_that_weakens_the_statement_is_rejected_and_dummy_ones_pass(checker, valid):
    row = next(r for r in valid if r["name"] == "mathd-algebra-245")
    problem, ref = metamath_problem(row), row["reference_proof"]
    (weak, dummy), _ = checker.check([(problem, f"$d X ph $.\n{ref}"), (problem, f"$d x y $.\n{ref}")])
    assert (weak.status, weak.rule) == ("rejected", "dv_weakens")
    assert dummy.status == "proved"


def test_allow_list_leaves_exactly_the_58_other_axioms_of_set_mm():
    require_metamath()
    text = re.sub(r"\$\(.*?\$\)", " ", find_database().read_text(), flags=re.DOTALL)
    tokens = text.split()
    axioms = [tokens[i - 1] for i, t in enumerate(tokens) if t == "$a" and tokens[i + 1] == "|-"]
    logical = [a for a in axioms if not a.startswith("df-")]
    assert len(logical) == 114 and ALLOWED_AXIOMS <= set(logical)
    rejected = [a for a in logical if not axiom_allowed(a)]
    assert len(rejected) == 58 and "ax-riotaBAD" in rejected and "ax-hilex" in rejected
    labels = {tokens[i - 1] for i, t in enumerate(tokens) if t in ("$a", "$p", "$e", "$f")}
    assert not any(label.startswith(LABEL_PREFIX) for label in labels)  # batch labels never clash


def test_another_set_mm_is_refused_with_its_hash(tmp_path):
    fake = tmp_path / "set.mm"
    fake.write_text("$c |- $.\n")
    with pytest.raises(CheckerUnavailable, match=r"is not the pinned set\.mm \(sha256 .*want 4d93307bc8133"):
        find_database(fake)
    assert SET_MM_SHA256.startswith("4d93307b")


def test_missing_metamath_names_the_install_command(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CheckerUnavailable, match="apt-get install metamath metamath-databases"):
        MetamathChecker()


def test_harness_grade_checks_one_proof(valid, data_dir):
    require_metamath()
    from typer.testing import CliRunner

    from harness.cli import app

    ref = next(r for r in valid if r["name"] == "mathd-algebra-247")["reference_proof"]
    runner = CliRunner()
    ok = runner.invoke(app, ["grade", "minif2f_metamath_valid", "-p", ref, "-r", "mathd-algebra-247"])
    assert ok.exit_code == 0 and "proved" in ok.output and "0.195" in ok.output
    bad = runner.invoke(app, ["grade", "minif2f_metamath_valid", "-p", "( a1i ) AB $}", "-r", "mathd-algebra-247"])
    assert bad.exit_code == 1 and "rejected" in bad.output
    unknown = runner.invoke(app, ["grade", "minif2f_metamath", "-p", ref, "-r", "mathd-algebra-2477"])
    assert unknown.exit_code == 2 and "did you mean" in unknown.output
