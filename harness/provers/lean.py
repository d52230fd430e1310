"""Lean 4 checking for users with a Lean + Mathlib set-up (it cannot run on the CI machines):
two back-ends behind one interface, and :class:`LeanChecker`, which applies the integrity rules
(:mod:`.integrity`) whatever Lean says.

* :class:`LeanRepl` — the Lean REPL (leanprover-community/repl) run as ``lake exe repl`` in a
  project folder the user names. JSON commands on stdin, separated by blank lines:
  ``{"cmd": header}`` once per distinct header (its ``env`` is reused), then
  ``{"cmd": statement + proof + "#print axioms <name>", "env": <that env>}``; each response is one
  JSON object (``env``, ``messages`` [``severity``, ``pos``, ``endPos``, ``data``], ``sorries``)
  or ``{"message": ...}`` for a REPL error, followed by a blank line.
* :class:`KiminaServer` — a Kimina Lean Server (project-numina/kimina-lean-server, arXiv
  2504.21230): ``POST <url>/api/check`` with ``{"snippets": [{"id", "code"}], "timeout": s}``;
  the answer ``{"results": [{"id", "time", "error", "response"}]}``, ``response`` being the REPL's
  JSON for the snippet (the server splits the imports off and reuses a REPL per header), and
  ``error`` a server-side failure (``"... timed out ..."`` for a timeout).

The code checked is always built here: ``header + formal_statement + proof + "\\n\\n#print
axioms <name>\\n"``. The Lean version is probed with ``#eval Lean.versionString`` and must match
the task's (``v4.9.0-rc1`` for ``minif2f_lean``, ``v4.24.0`` for ``minif2f_lean_v4_24``).

How a user checks a set-up (README "Lean 4"): ``harness grade minif2f_lean --lean-repl DIR -p
'  norm_num' -r <a trivially true problem>`` proves it, and ``-p '  sorry'`` is rejected.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from harness.provers.integrity import response_verdict, statement_problem, text_verdict
from harness.provers.verdict import ERROR, TIMEOUT, Verdict

VERSION_PROBE = "#eval Lean.versionString"
_THEOREM_NAME = re.compile(r"^\s*(?:theorem|lemma)\s+([^\s(:{\[]+)", re.MULTILINE)


class LeanUnavailable(RuntimeError):
    """The Lean set-up cannot be used (not found, not answering, or the wrong Lean version)."""


@dataclass
class RawResult:
    """One snippet's outcome from a back-end: ``response`` (the REPL's JSON), or ``timeout`` /
    ``error`` with a reason. ``time_s``: wall seconds (``time.perf_counter``) or the server's."""

    response: dict | None = None
    timeout: bool = False
    error: str | None = None
    time_s: float = 0.0


class LeanBackend(Protocol):
    name: str

    def run(self, snippets: list[tuple[str, str, str]], timeout_s: float) -> list[RawResult]:
        """Check ``(id, header, body)`` snippets; one result each, in order."""

    def close(self) -> None: ...


def theorem_name(formal_statement: str) -> str:
    """The declared name in a ``theorem``/``lemma`` statement.

    Raises:
        ValueError: no ``theorem <name>`` in it.
    """
    match = _THEOREM_NAME.search(formal_statement)
    if match is None:
        raise ValueError(f"no 'theorem <name>' in statement {formal_statement[:60]!r}")
    return match.group(1)


def parse_version(messages: list[dict]) -> str | None:
    """The Lean version from ``#eval Lean.versionString``'s info message (``"4.9.0-rc1"``)."""
    for message in messages:
        data = str(message.get("data", "")).strip()
        match = re.fullmatch(r'"?(\d+\.\d+\.\d+[^"\s]*)"?', data)
        if match:
            return match.group(1)
    return None


def same_version(reported: str, wanted: str) -> bool:
    """``4.9.0-rc1`` matches ``v4.9.0-rc1``; ``4.24.0`` matches ``v4.24.0``."""
    return reported.lstrip("v") == wanted.lstrip("v")


def _pump(stream, lines: queue.Queue[str | None]) -> None:
    """Copy ``stream``'s lines into ``lines`` (``None`` at its end): reads never block the caller,
    which waits on the queue with its own timeout."""
    for line in stream:
        lines.put(line)
    lines.put(None)


class LeanRepl:
    """``lake exe repl`` in ``project`` (or ``command``: any program speaking the REPL's JSON)."""

    name = "lean_repl"

    def __init__(self, project: str | None = None, command: list[str] | None = None):
        self.project = project
        self.command = command or ["lake", "exe", "repl"]
        self._proc: subprocess.Popen | None = None
        self._envs: dict[str, int] = {}
        self._lines: queue.Queue = queue.Queue()

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            try:
                self._proc = subprocess.Popen(self.command, cwd=self.project, stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                              encoding="utf-8", bufsize=1)
            except OSError as exc:
                raise LeanUnavailable(f"cannot start the Lean REPL ({' '.join(self.command)} in {self.project}): {exc}") from None
            self._envs = {}
            self._lines = queue.Queue()
            threading.Thread(target=_pump, args=(self._proc.stdout, self._lines), daemon=True).start()
        return self._proc

    def send(self, command: dict, timeout_s: float) -> RawResult:
        """One JSON command; its response, or a timeout (the REPL is then restarted)."""
        proc = self._start()
        began = time.perf_counter()
        try:
            proc.stdin.write(json.dumps(command, ensure_ascii=False) + "\n\n")
            proc.stdin.flush()
        except OSError as exc:
            self.close()
            return RawResult(error=f"Lean REPL died: {exc}", time_s=time.perf_counter() - began)
        lines: list[str] = []
        while True:
            left = timeout_s - (time.perf_counter() - began)
            try:
                line = self._lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                self.close()
                return RawResult(timeout=True, time_s=time.perf_counter() - began)
            if line is None:
                self.close()
                return RawResult(error="Lean REPL closed its output", time_s=time.perf_counter() - began)
            if line.strip() == "" and lines:
                break
            if line.strip():
                lines.append(line)
        elapsed = time.perf_counter() - began
        try:
            response = json.loads("".join(lines))
        except json.JSONDecodeError as exc:
            return RawResult(error=f"unreadable REPL response: {exc}", time_s=elapsed)
        if isinstance(response, dict) and "message" in response and "env" not in response:
            return RawResult(error=f"REPL error: {response['message']}", time_s=elapsed)
        return RawResult(response=response, time_s=elapsed)

    def run(self, snippets: list[tuple[str, str, str]], timeout_s: float) -> list[RawResult]:
        out = []
        for _, header, body in snippets:
            if not header.strip():  # no imports: a fresh environment
                out.append(self.send({"cmd": body}, timeout_s))
                continue
            if header not in self._envs:
                head = self.send({"cmd": header}, timeout_s)
                if head.response is None:
                    out.append(head)
                    continue
                self._envs[header] = int(head.response["env"])
            out.append(self.send({"cmd": body, "env": self._envs[header]}, timeout_s))
        return out

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._envs = {}


class KiminaServer:
    """A Kimina Lean Server at ``url`` (``/api/check``)."""

    name = "kimina"

    def __init__(self, url: str, api_key: str | None = None, batch_size: int = 8):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.batch_size = batch_size

    def _post(self, payload: dict, timeout_s: float):
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.url}/api/check", data=json.dumps(payload).encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return json.loads(reply.read().decode("utf-8"))

    def run(self, snippets: list[tuple[str, str, str]], timeout_s: float) -> list[RawResult]:
        out: list[RawResult] = []
        for start in range(0, len(snippets), self.batch_size):
            chunk = snippets[start : start + self.batch_size]
            payload = {"snippets": [{"id": sid, "code": header + body} for sid, header, body in chunk],
                       "timeout": max(1, round(timeout_s)), "debug": False, "reuse": True}
            began = time.perf_counter()
            try:
                answer = self._post(payload, timeout_s * len(chunk) + 30)
            except Exception as exc:  # noqa: BLE001 (network, HTTP status, JSON: every snippet of the batch is an error)
                out += [RawResult(error=f"Kimina server: {type(exc).__name__}: {exc}",
                                  time_s=time.perf_counter() - began)] * len(chunk)
                continue
            results = answer.get("results", []) if isinstance(answer, dict) else answer
            by_id = {str(r.get("id")): r for r in results if isinstance(r, dict)}
            for sid, _, _ in chunk:
                out.append(self._raw(by_id.get(sid)))
        return out

    @staticmethod
    def _raw(result: dict | None) -> RawResult:
        if result is None:
            return RawResult(error="Kimina server returned no result for this snippet")
        spent = float(result.get("time") or 0.0)
        if result.get("error"):
            return RawResult(timeout="timed out" in str(result["error"]), error=str(result["error"]), time_s=spent)
        response = result.get("response")
        if not isinstance(response, dict):
            return RawResult(error="Kimina server result has no response", time_s=spent)
        if "message" in response and "env" not in response and "messages" not in response:
            return RawResult(error=f"REPL error: {response['message']}", time_s=spent)
        return RawResult(response=response, time_s=spent)

    def close(self) -> None:
        pass


@dataclass
class LeanStats:
    """Checker time per batch: ``(snippets, wall seconds)``."""

    batches: list[tuple[int, float]] = field(default_factory=list)

    @property
    def time_s(self) -> float:
        return sum(t for _, t in self.batches)


class LeanChecker:
    """Checks Lean attempts at miniF2F problems through a back-end, integrity rules first and last.

    Args:
        backend: :class:`LeanRepl` or :class:`KiminaServer`.
        lean_version: the version the task's data targets (``v4.9.0-rc1``...).
        allow_native_decide: accept ``Lean.ofReduceBool``/``Lean.trustCompiler`` (recorded in the cell).
        timeout_s: per snippet.
    """

    name = "lean"

    def __init__(self, backend: LeanBackend, lean_version: str, allow_native_decide: bool = False,
                 timeout_s: float = 60.0):
        self.backend = backend
        self.lean_version = lean_version
        self.allow_native_decide = allow_native_decide
        self.timeout_s = timeout_s
        self._reported: str | None = None

    def probe_version(self) -> str:
        """The back-end's Lean version (``#eval Lean.versionString``).

        Raises:
            LeanUnavailable: no answer, or a version other than the task's.
        """
        result = self.backend.run([("version-probe", "", VERSION_PROBE)], self.timeout_s)[0]
        reported = parse_version((result.response or {}).get("messages") or [])
        if reported is None:
            raise LeanUnavailable(f"the Lean checker ({self.backend.name}) did not report its version: "
                                  f"{result.error or 'no version message'}")
        if not same_version(reported, self.lean_version):
            raise LeanUnavailable(f"the Lean checker runs Lean {reported}, but the task's data targets "
                                  f"{self.lean_version}; use the matching data file or Lean set-up")
        self._reported = reported
        return reported

    def describe(self) -> dict:
        return {"checker": "lean", "backend": self.backend.name, "lean_version": self._reported,
                "data_lean_version": self.lean_version, "allow_native_decide": self.allow_native_decide}

    def check(self, attempts: list[tuple[dict, str]]) -> tuple[list[Verdict], LeanStats]:
        """One verdict per ``(doc, proof text)`` (``doc``: ``header``, ``formal_statement``)."""
        verdicts: list[Verdict | None] = [None] * len(attempts)
        snippets, where, names, codes = [], [], [], []
        for i, (doc, proof) in enumerate(attempts):
            early = text_verdict(proof)
            if early is not None:
                verdicts[i] = early
                continue
            name = theorem_name(doc["formal_statement"])
            body = f"{doc['formal_statement']}{proof.rstrip()}\n\n#print axioms {name}\n"
            snippets.append((f"attempt-{i}", doc["header"], body))
            where.append(i)
            names.append(name)
            codes.append((doc["header"] + body, doc))
        stats = LeanStats()
        if snippets:
            began = time.perf_counter()
            raws = self.backend.run(snippets, self.timeout_s)
            stats.batches.append((len(snippets), time.perf_counter() - began))
            for i, raw, name, (code, doc) in zip(where, raws, names, codes):
                verdicts[i] = self._verdict(raw, name, code, doc)
        return [v for v in verdicts if v is not None], stats

    def _verdict(self, raw: RawResult, name: str, code: str, doc: dict) -> Verdict:
        if raw.timeout:
            return Verdict(TIMEOUT, f"Lean check exceeded {self.timeout_s:g} s", raw.time_s)
        if raw.response is None:
            return Verdict(ERROR, raw.error or "no response", raw.time_s)
        problem = statement_problem(code, doc["header"], doc["formal_statement"])
        if problem is not None:
            return Verdict("rejected", problem, raw.time_s, "statement_changed")
        verdict = response_verdict(raw.response, name, self.allow_native_decide)
        return Verdict(verdict.status, verdict.message, raw.time_s, verdict.rule)
