"""The Lean 4 path, which cannot run here: its protocol (a Lean REPL speaking JSON over stdin and
stdout, a Kimina Lean Server over HTTP) and its integrity rules, driven by recorded responses
written from the documented formats (leanprover-community/repl README; kimina-lean-server
``/api/check``, its ``CheckRequest``/``ReplResponse`` models)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from harness.provers.integrity import response_verdict, statement_problem, text_verdict
from harness.provers.lean import (
    KiminaServer,
    LeanChecker,
    LeanRepl,
    LeanUnavailable,
    theorem_name,
)
from harness.tasks.minif2f import lean_extract

DOC = {"name": "toy_add", "header": "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 400000\n\n",
       "formal_statement": "theorem toy_add (a b : ℕ) (h₀ : a = 2) (h₁ : b = 3) : a + b = 5 := by\n"}


def pos(line: int, column: int) -> dict:
    return {"line": line, "column": column}


def info(data: str) -> dict:
    return {"severity": "info", "pos": pos(9, 0), "endPos": pos(9, 6), "data": data}


AXIOMS_OK = info("'toy_add' depends on axioms: [propext,\n Classical.choice,\n Quot.sound]")
# proof text marker → the REPL's response to the theorem command (recorded shapes)
RECORDED = {
    "#eval Lean.versionString": {"env": 0, "messages": [info('"4.9.0-rc1"')]},
    "  subst h₀ h₁\n  rfl": {"env": 2, "messages": [AXIOMS_OK]},
    "  linarith [h₀]": {"env": 2, "messages": [
        {"severity": "error", "pos": pos(7, 2), "endPos": pos(7, 14), "data": "linarith failed to find a contradiction\na b : ℕ"},
        info("'toy_add' depends on axioms: [propext, Classical.choice, Quot.sound]")]},
    "  hidden_gap": {"env": 2, "messages": [  # a macro expanding to sorry: the text never says it
        {"severity": "warning", "pos": pos(6, 8), "endPos": pos(6, 15), "data": "declaration uses 'sorry'"},
        info("'toy_add' depends on axioms: [propext, sorryAx, Classical.choice, Quot.sound]")]},
    "  native_decide": {"env": 2, "messages": [info("'toy_add' depends on axioms: [propext, Lean.ofReduceBool]")]},
    "  gap_tactic": {"env": 2, "sorries": [{"pos": pos(7, 2), "endPos": pos(7, 7), "goal": "⊢ a + b = 5", "proofState": 0}],
                     "messages": [AXIOMS_OK]},
    "  spurious_warning": {"env": 2, "messages": [  # the warning alone decides nothing: the axioms do
        {"severity": "warning", "pos": pos(6, 8), "endPos": pos(6, 15), "data": "declaration uses 'sorry'"}, AXIOMS_OK]},
    "  no_trace": {"env": 2, "messages": []},
    "  other_name": {"env": 2, "messages": [info("'Foo.toy_add' depends on axioms: [propext]")]},
    "  repl_breaks": {"message": "unknown environment."},
    "  slow_tactic": "SLEEP",
}
FAKE_REPL = r'''
import json, sys, time
recorded = json.load(open(sys.argv[1]))
buffer = []
for line in sys.stdin:
    if line.strip():
        buffer.append(line)
        continue
    if not buffer:
        continue
    cmd = json.loads("".join(buffer))["cmd"]
    buffer = []
    if cmd.startswith("import"):
        answer = {"env": 1}
    else:
        answer = next((r for marker, r in recorded.items() if marker in cmd), {"env": 3, "messages": []})
    if answer == "SLEEP":
        time.sleep(30)
    print(json.dumps(answer), end="\n\n", flush=True)
'''


@pytest.fixture
def repl(tmp_path):
    script, table = tmp_path / "fake_repl.py", tmp_path / "recorded.json"
    script.write_text(FAKE_REPL)
    table.write_text(json.dumps(RECORDED, ensure_ascii=False))
    backend = LeanRepl(str(tmp_path), command=[sys.executable, str(script), str(table)])
    yield backend
    backend.close()


def check(backend, proof: str, allow_native_decide: bool = False, timeout_s: float = 10.0):
    checker = LeanChecker(backend, "v4.9.0-rc1", allow_native_decide, timeout_s)
    assert checker.probe_version() == "4.9.0-rc1"
    (verdict,), _ = checker.check([(DOC, proof)])
    return verdict


@pytest.mark.parametrize("proof, status, rule", [
    ("  subst h₀ h₁\n  rfl", "proved", None),
    ("  linarith [h₀]", "failed", None),
    ("  hidden_gap", "rejected", "axioms"),
    ("  native_decide", "rejected", "axioms"),
    ("  gap_tactic", "failed", None),
    ("  spurious_warning", "proved", None),
    ("  no_trace", "failed", None),
    ("  other_name", "failed", None),
    ("  repl_breaks", "error", None),
])
def test_repl_protocol_and_verdicts(repl, proof, status, rule):
    verdict = check(repl, proof)
    assert (verdict.status, verdict.rule) == (status, rule), verdict.message


def test_native_decide_only_when_the_suite_allows_it(repl):
    assert check(repl, "  native_decide", allow_native_decide=True).status == "proved"


def test_repl_timeout_is_timeout_and_the_repl_restarts(repl):
    verdict = check(repl, "  slow_tactic", timeout_s=1.0)
    assert verdict.status == "timeout"
    assert check(repl, "  subst h₀ h₁\n  rfl").status == "proved"  # a fresh REPL, the header sent again


def test_a_repl_on_another_lean_version_refuses_to_start(repl):
    checker = LeanChecker(repl, "v4.24.0")
    with pytest.raises(LeanUnavailable, match=r"runs Lean 4\.9\.0-rc1, but the task's data targets v4\.24\.0"):
        checker.probe_version()


@pytest.mark.parametrize("proof, rule", [
    ("  sorry", "sorry"), ("  admit", "admit"), ("  exact?", "exact?"), ("  apply? using h₀", "apply?"),
    ("  simp\naxiom cheat : False", "axiom"), ("  simp\nimport Mathlib.Tactic", "import"),
    ("  set_option maxHeartbeats 0 in\n  simp", "set_option"), ("  simp\n#exit", "#exit"),
    ("  simp\n@[implemented_by f] def g := 1", "implemented_by"), ("  exact (by extern_hack)", None),
    ("  simp\ntheorem toy_add' : True := trivial", "top_level_command"), ("  simp\nend", "top_level_command"),
])
def test_integrity_text_rules(proof, rule):
    verdict = text_verdict(proof)
    assert (verdict.rule if verdict else None) == rule


def test_statement_must_reach_the_checker_unchanged():
    code = DOC["header"] + DOC["formal_statement"] + "  rfl\n"
    assert statement_problem(code, DOC["header"], DOC["formal_statement"]) is None
    changed = code.replace("a + b = 5", "a + b = a + b")
    assert "differs" in statement_problem(changed, DOC["header"], DOC["formal_statement"])
    assert response_verdict({"env": 1, "messages": [AXIOMS_OK]}, "toy_add").status == "proved"
    assert theorem_name(DOC["formal_statement"]) == "toy_add"


class _Kimina(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Kimina.seen.append((self.path, body))
        results = []
        for snippet in body["snippets"]:
            code = snippet["code"]
            if "slow_tactic" in code:
                results.append({"id": snippet["id"], "time": 60.0, "error": "Lean REPL command timed out in 60 seconds"})
            elif "server_breaks" in code:
                results.append({"id": snippet["id"], "time": 0.1, "error": "No available REPLs"})
            else:
                response = next((r for m, r in RECORDED.items() if m in code and r != "SLEEP"), {"env": 0, "messages": []})
                results.append({"id": snippet["id"], "time": 0.4, "response": response})
        payload = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def kimina():
    server = HTTPServer(("127.0.0.1", 0), _Kimina)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Kimina.seen.clear()
    yield KiminaServer(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()


def test_kimina_protocol_and_verdicts(kimina):
    checker = LeanChecker(kimina, "v4.9.0-rc1", timeout_s=60)
    assert checker.probe_version() == "4.9.0-rc1"
    proofs = ["  subst h₀ h₁\n  rfl", "  hidden_gap", "  slow_tactic", "  server_breaks", "  sorry", "  linarith [h₀]"]
    verdicts, stats = checker.check([(DOC, p) for p in proofs])
    assert [v.status for v in verdicts] == ["proved", "rejected", "timeout", "error", "rejected", "failed"]
    path, body = _Kimina.seen[-1]
    assert path == "/api/check" and body["timeout"] == 60 and {"id", "code"} == set(body["snippets"][0])
    code = body["snippets"][0]["code"]
    assert code.startswith(DOC["header"] + DOC["formal_statement"]) and code.endswith("#print axioms toy_add\n")
    assert len(body["snippets"]) == 5  # the `sorry` attempt never reached the server
    assert stats.batches[0][0] == 5


def test_lean_reply_extraction():
    reply = "Reasoning...\n```lean4\ntheorem toy_add (a b : ℕ) : a + b = 5 := by\n  subst h₀ h₁\n  rfl\n```"
    assert lean_extract(reply) == "  subst h₀ h₁\n  rfl"
    assert lean_extract("```lean\nnorm_num\n```") == "  norm_num"
