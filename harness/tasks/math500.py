"""MATH-500 (HuggingFaceH4/MATH-500, test split; 500 problems): symbolic grading with math-verify.

Extraction: the last explicit final answer of the output (:mod:`harness.tasks.answers`): the
content of the last balanced ``\\boxed{...}`` / ``\\fbox{...}``, or what follows a later explicit
answer phrase (``Therefore, the final answer is $\\frac{3}{4}$.``, ``**Final answer:** 12``,
``The answer is: $\\sqrt{5}$``). Never the last number of the text: without a marker the output is
incorrect. In an output cut at the token cap (``truncated``) a final answer that runs to the very
end of the output (still being written) is not credited. The extracted content and the gold are
each wrapped as ``$\\boxed{...}$`` and parsed by math-verify, then compared with
``math_verify.verify`` (numeric, symbolic, set/interval/tuple, equation aware).

Reference (:func:`math_reference`): the doc's ``answer``, else the last ``\\boxed{...}`` /
``\\boxed 7`` / ``\\fbox{...}`` of its worked ``solution`` (the full MATH test set has no
``answer``); a doc with neither raises :class:`~harness.tasks.spec.ReferenceUnavailable`, which
grades its samples ``error: ...`` without stopping the cell.

Time limit: math-verify's own timeouts use ``signal.alarm`` (main thread only; from any other
thread they raise ``ValueError``, and they cancel any other SIGALRM user's alarm). We disable them
(``parsing_timeout=None`` / ``timeout_seconds=None``) and bound the whole parse-and-verify of one
check ourselves, in two layers: ``call_with_time_limit`` (works in any thread, interrupts Python
code) inside a worker process, which the caller kills if it still has not answered shortly after
the limit (the only way to stop one long C-level operation, e.g. a huge integer power). See
"Worker processes" below; ``isolated=False`` skips the process.

Three corrections on top of math-verify, found with the oracle/perturbation tests and public
grader bug reports:

* exact values compared exactly: when both sides are exact numbers (integers, rationals, powers,
  radicals, π, e: no decimal point, no ``%``, no free symbol), equality is decided by sympy on the
  exact values (:func:`_exact_equal`), not by math-verify's rounded floats, which call
  ``2^{-60}`` equal to ``2^{-61}`` and ``7 \\cdot 10^{-30}`` equal to ``8 \\cdot 10^{-30}``. A side
  written as a decimal keeps math-verify's numeric tolerance (the problem asked to round).
* base-n answers (``52_8``, ``4210_{5}``): math-verify drops the subscript, so ``52_9`` would match
  ``52_8``. When both sides are written as ``digits_base`` we compare digits and base ourselves.
* small numbers: math-verify rounds floats to ``float_rounding=6`` decimals, so ``.0000673`` would
  match ``.0000672``. We raise the rounding so that about 6 significant digits of the gold count.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

from harness.tasks.answers import final_answer
from harness.tasks.grading import Grade, GradeTimeout, call_with_time_limit, last_boxed
from harness.tasks.registry import register_task
from harness.tasks.spec import ReferenceUnavailable, TaskSpec

__all__ = ["DEFAULT_TIMEOUT_S", "TASK", "grade_math500", "math_reference", "shutdown_workers"]

DEFAULT_TIMEOUT_S = 10.0  # whole grade (parse gold + parse answer + verify)
_REASON_MAX = 80

_mv_lock = threading.Lock()
_mv: SimpleNamespace | None = None


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once that we disabled its (signal-based) timeouts; we enforce our own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


def _math_verify() -> SimpleNamespace:
    """Import math-verify lazily (it pulls in sympy and antlr; ~1 s)."""
    global _mv
    if _mv is None:
        with _mv_lock:
            if _mv is None:
                from math_verify import LatexExtractionConfig, parse, verify

                for name in ("math_verify.parser", "math_verify.grader"):
                    logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
                _mv = SimpleNamespace(
                    parse=parse,
                    verify=verify,
                    config=[LatexExtractionConfig(boxed_match_priority=0)],
                )
    return _mv


def _wrap(latex: str) -> str:
    # Newlines would stop math-verify's inline `$...$` pattern; LaTeX treats them as spaces anyway.
    return "$\\boxed{" + latex.replace("\r", " ").replace("\n", " ") + "}$"


def _parse(latex: str) -> list:
    mv = _math_verify()
    return mv.parse(_wrap(latex), extraction_config=mv.config, parsing_timeout=None)


@lru_cache(maxsize=2048)
def _parse_gold(latex: str) -> tuple:
    return tuple(_parse(latex))  # sympy objects are immutable; safe to share


def _float_rounding(gold: tuple) -> int:
    """Decimal places for math-verify's float rounding: 6, more for golds below 0.1 in magnitude."""
    rounding = 6
    for g in gold:
        if getattr(g, "is_Number", False) and not getattr(g, "is_zero", True):
            try:
                x = abs(float(g))
            except (TypeError, ValueError, OverflowError):
                continue
            if 0 < x < 0.1 and math.isfinite(x):
                rounding = max(rounding, 5 + math.ceil(-math.log10(x)))
    return min(rounding, 30)


# A decimal written out (3.5, .25, 18.) or a percentage: rounded figures, compared with tolerance.
_INEXACT_RE = re.compile(r"\d\.|\.\d|%|\\approx")


def _exact_value(parsed: tuple | list, latex: str):
    """The exact sympy number ``latex`` denotes (the right side of ``x = ...``), or None when it is
    not one: a decimal, a percentage, a free symbol, an infinity, a set/tuple/interval, a Float."""
    import sympy

    if _INEXACT_RE.search(latex) or not parsed or not isinstance(parsed[0], sympy.Basic):
        return None
    expr = parsed[0]
    if isinstance(expr, sympy.Equality) and isinstance(expr.lhs, sympy.Symbol):
        expr = expr.rhs
    if not isinstance(expr, sympy.Expr) or not expr.is_number or expr.free_symbols:
        return None
    if expr.atoms(sympy.Float) or expr.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
        return None
    return expr


def _exact_equal(a, b) -> bool:
    """Exact equality of two exact sympy numbers: ``simplify(a - b)`` is zero; when sympy cannot
    decide, their 60-digit values agree to 45 significant digits (relative, so 2^{-200} and
    2^{-201} differ)."""
    import sympy

    diff = sympy.simplify(a - b)
    if diff == 0 or diff.is_zero is True:
        return True
    if diff.is_zero is False:
        return False
    va, vb = sympy.N(a, 60), sympy.N(b, 60)
    return bool(abs(va - vb) <= sympy.Float("1e-45", 60) * max(abs(va), abs(vb)))


def _verify(pred: str, reference: str) -> tuple[bool, str]:
    gold = _parse_gold(reference)
    if not gold:
        return False, f"error: unparsable reference: {_short(reference)}"
    target = _parse(pred)
    if not target:
        return False, f"unparsable answer: {_short(pred)}"
    exact_gold, exact_pred = _exact_value(gold, reference), _exact_value(target, pred)
    if exact_gold is not None and exact_pred is not None:
        ok = _exact_equal(exact_pred, exact_gold)
        return ok, "match [exact]" if ok else f"mismatch [exact]: {_short(pred)} != {_short(reference)}"
    mv = _math_verify()
    ok = mv.verify(list(gold), target, float_rounding=_float_rounding(gold), timeout_seconds=None)
    return ok, "match" if ok else f"mismatch: {_short(pred)} != {_short(reference)}"


def _with_how(reason: str, how: str) -> str:
    """``"match [exact]"`` → ``"match (boxed, exact)"``; ``"mismatch: a != b"`` → ``"mismatch (answer
    phrase): a != b"``; other reasons (timeout, errors) unchanged."""
    head, sep, tail = reason.partition(":")
    word, _, flag = head.partition(" [")
    if word not in ("match", "mismatch"):
        return reason
    detail = how + (", " + flag.rstrip("]") if flag else "")
    return f"{word} ({detail}){sep}{tail}"


# digits (capital letters for bases > 10) with a numeric base subscript: 52_8, 4210_{5}, A3_{16}.
# Lower-case letters are left out so that variables such as x_1 are not read as numbers.
_BASE_RE = re.compile(r"([0-9A-Z]+)_\{?(\d+)\}?")
_WRAPPER_RE = re.compile(r"\\(?:text|mathrm|mbox)\s*\{([^{}]*)\}")


def _base_form(latex: str, valid_base_only: bool = True) -> tuple[str, int] | None:
    """(digits, base) when ``latex`` is a number written with a base subscript, else None."""
    s = _WRAPPER_RE.sub(r"\1", latex).replace(" ", "").replace("\\!", "")
    m = _BASE_RE.fullmatch(s)
    if not m or len(m.group(2)) > 3 or (valid_base_only and not 2 <= int(m.group(2)) <= 36):
        return None
    return m.group(1).lstrip("0") or "0", int(m.group(2))


def _short(s: str) -> str:
    s = " ".join(s.split())
    return s if len(s) <= _REASON_MAX else s[: _REASON_MAX - 3] + "..."


def _verify_limited(pred: str, reference: str, timeout_s: float | None) -> tuple[bool, str]:
    """Parse-and-verify in this process under ``call_with_time_limit``; never raises."""
    try:
        _math_verify()  # import outside the time limit: an interrupted import would leave half-made modules
        return call_with_time_limit(_verify, timeout_s, pred, reference)
    except GradeTimeout:
        return False, "timeout"
    except Exception as e:
        return False, f"grader error: {type(e).__name__}: {_short(str(e))}"


# ----------------------------------------------------------------------------------------------
# Worker processes
#
# The in-process limit (like math-verify's signal.alarm) can only interrupt Python bytecode. A
# single C-level operation cannot be interrupted: `\boxed{9^{9^{9^{9}}}}` makes sympy compute the
# integer 9**387420489 during verify, which runs for many minutes. Degenerate outputs like that
# are exactly what compressed/quantized models sometimes produce, so by default each check runs
# in a small pool of long-lived worker processes (plain subprocesses speaking JSON lines; they
# import only harness.tasks and math-verify) and a worker that overruns its deadline is killed.
# ----------------------------------------------------------------------------------------------

_WORKER_CODE = "from harness.tasks.math500 import _worker_main; _worker_main()"
_WORKER_STARTUP_S = 60.0  # imports + warm-up; ~0.5 s normally
_WORKER_KILL_GRACE_S = 2.0  # the worker itself answers "timeout" at timeout_s; kill it at +grace
_WORKER_MEMORY_BYTES = 4 << 30  # RLIMIT_AS in the worker: a runaway big-int becomes MemoryError
_WORKER_MAX_PROCS = max(1, min(4, os.cpu_count() or 1))

logger = logging.getLogger(__name__)


class _WorkerStartError(RuntimeError):
    pass


class _WorkerDied(RuntimeError):
    pass


class _Worker:
    """One worker subprocess; used by one thread at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the directory holding the harness package
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-c", _WORKER_CODE],  # -P: no cwd on sys.path
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                bufsize=0,
            )
        except OSError as e:
            raise _WorkerStartError(f"cannot start grader worker: {e}") from e
        self._buf = b""
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            msg = self._read(time.monotonic() + _WORKER_STARTUP_S)
        except (GradeTimeout, _WorkerDied, ValueError) as e:
            self.kill()
            raise _WorkerStartError(f"grader worker did not start: {type(e).__name__}: {e}") from e
        if msg.get("ready") is not True:
            self.kill()
            raise _WorkerStartError(f"grader worker sent {msg!r} instead of ready")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self, deadline: float | None) -> dict:
        while b"\n" not in self._buf:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise GradeTimeout("grader worker did not answer in time")
            if not self._sel.select(remaining):
                continue  # re-check the deadline
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise _WorkerDied(f"grader worker exited (code {self.proc.wait()})")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def check(self, pred: str, reference: str, timeout_s: float | None) -> tuple[bool, str]:
        req = json.dumps({"pred": pred, "ref": reference, "timeout_s": timeout_s}).encode() + b"\n"
        try:
            self.proc.stdin.write(req)
            self.proc.stdin.flush()
        except OSError as e:  # BrokenPipeError: it died since the last request
            raise _WorkerDied(f"grader worker gone ({e})") from e
        deadline = None if timeout_s is None or timeout_s <= 0 else time.monotonic() + timeout_s + _WORKER_KILL_GRACE_S
        msg = self._read(deadline)
        return bool(msg["ok"]), str(msg["reason"])

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:  # already gone
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass
        self._sel.close()

    def close(self) -> None:
        """Polite stop: EOF on stdin makes the worker exit."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except Exception:
            pass
        self.kill()


class _WorkerPool:
    def __init__(self, max_procs: int) -> None:
        self._slots = threading.BoundedSemaphore(max_procs)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def check(self, pred: str, reference: str, timeout_s: float | None) -> tuple[bool, str]:
        """Raises _WorkerStartError (no worker could be started), GradeTimeout or _WorkerDied."""
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None or not worker.alive():
                if worker is not None:
                    worker.kill()
                worker = _Worker()
            healthy = False
            try:
                result = worker.check(pred, reference, timeout_s)
                healthy = True
                return result
            finally:
                if healthy:
                    with self._lock:
                        self._idle.append(worker)
                else:  # overran its deadline or died: never reuse
                    worker.kill()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for w in idle:
            w.close()


_pool: _WorkerPool | None = None
_pool_lock = threading.Lock()
_workers_unavailable: str | None = None  # set after a worker failed to start: grade in-process


def _get_pool() -> _WorkerPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _WorkerPool(_WORKER_MAX_PROCS)
        return _pool


def shutdown_workers() -> None:
    """Stop the grader worker processes (they are restarted on demand). Called at exit."""
    global _pool, _workers_unavailable
    with _pool_lock:
        pool, _pool = _pool, None
        _workers_unavailable = None
    if pool is not None:
        pool.close()


def _forget_pool_in_child() -> None:  # a forked child must not share the parent's pipes
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


atexit.register(shutdown_workers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _worker_main() -> None:
    """Worker loop: one JSON request per stdin line, one JSON answer per stdout line; exits on EOF."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    except Exception:  # not available / not permitted: run without
        pass
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed by libraries goes to stderr, not into the protocol
    _verify_limited("1", "1", None)  # imports and antlr warm-up
    out.write(b'{"ready": true}\n')
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
            ok, reason = _verify_limited(str(req["pred"]), str(req["ref"]), req.get("timeout_s"))
        except Exception as e:
            ok, reason = False, f"grader error: {type(e).__name__}: {_short(str(e))}"
        out.write(json.dumps({"ok": bool(ok), "reason": reason}).encode() + b"\n")


# ----------------------------------------------------------------------------------------------


def grade_math500(
    output_text: str,
    reference: str,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    isolated: bool = True,
    truncated: bool = False,
) -> Grade:
    """Grade a model output against a MATH answer (LaTeX). Never raises; safe from any thread.

    ``timeout_s`` bounds the whole parse-and-verify of this check (None or <= 0: no limit); past
    it the grade is incorrect with reason "timeout". ``isolated`` (default) runs the check in a
    worker process that is killed if it overruns (needed for uninterruptible C-level work, see
    above); ``isolated=False`` runs it in the calling thread, where a single huge C operation can
    exceed the limit. If a worker process cannot be started, this and later checks run in-process
    (logged once; ``shutdown_workers()`` re-enables workers). ``truncated``: the output stopped at
    the token cap; a final answer still being written at its very end is then not credited.
    The reason names how the answer was found: ``match (boxed)``, ``mismatch (answer phrase, exact): ...``.
    """
    global _workers_unavailable
    pred: str | None = None
    try:
        marked = final_answer(output_text or "", hash_marker=False)
        if marked is None:
            cut = " (output truncated at the token cap)" if truncated else ""
            return Grade(False, None, reference, f"no \\boxed{{}} or final-answer phrase found{cut}")
        pred, how = marked.text, marked.how
        if truncated and not marked.complete:
            return Grade(False, pred, reference, f"truncated at the token cap inside its final answer ({how}; not credited)")
        gold_base = _base_form(reference)
        # the answer side may have any base (an invalid one such as 40_0 is simply a mismatch)
        pred_base = _base_form(pred, valid_base_only=False) if gold_base is not None else None
        if gold_base is not None and pred_base is not None:
            ok = gold_base == pred_base
            reason = "match [base-n]" if ok else f"mismatch [base-n]: {_short(pred)} != {_short(reference)}"
            return Grade(ok, pred, reference, _with_how(reason, how))
        if isolated and _workers_unavailable is None:
            try:
                ok, reason = _get_pool().check(pred, reference, timeout_s)
                return Grade(ok, pred, reference, _with_how(reason, how))
            except _WorkerStartError as e:
                with _pool_lock:
                    first = _workers_unavailable is None
                    _workers_unavailable = str(e)
                if first:
                    logger.warning("MATH grader: %s; grading in-process from now on (no hard time limit)", e)
        ok, reason = _verify_limited(pred, reference, timeout_s)
        return Grade(ok, pred, reference, _with_how(reason, how))
    except GradeTimeout:
        return Grade(False, pred, reference, "timeout")
    except Exception as e:  # never raise out of a grader (includes a worker that died mid-check)
        return Grade(False, pred, reference, f"grader error: {type(e).__name__}: {_short(str(e))}")


def math_reference(doc: dict) -> str:
    """The gold answer of a MATH doc: its ``answer`` (MATH-500), else the content of the last
    ``\\boxed{...}`` / ``\\boxed 7`` / ``\\fbox{...}`` of its worked ``solution`` (the full MATH test
    set, Hendrycks et al. 2021, arXiv 2103.03874, has only ``solution``).

    Raises:
        ReferenceUnavailable: neither a non-blank ``answer`` nor a box in ``solution``.
    """
    answer = doc.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if isinstance(answer, str) and answer.strip():
        return answer.strip()
    solution = doc.get("solution")
    if isinstance(solution, str) and solution.strip():
        boxed = last_boxed(solution)
        if boxed:
            return boxed
        raise ReferenceUnavailable("the doc has no 'answer' and its 'solution' has no \\boxed{}")
    raise ReferenceUnavailable("the doc has neither an 'answer' nor a 'solution'")


PROMPT = "Solve the following math problem step by step. Put your final answer in \\boxed{}.\n\n{question}"

TASK = register_task(TaskSpec(
    name="math500",
    # 1.1: answer phrases without a box, exact comparison of exact values, reference from `answer`
    # or the solution's last box, truncated outputs cut inside their answer not credited
    version="1.1",
    description="MATH-500 (500 competition problems from the MATH test set, PRM800K split), zero-shot "
    "chain of thought, answer in \\boxed{} or an explicit answer phrase, graded with math-verify.",
    data_relpath="math/math500_test.jsonl",
    hub_id="HuggingFaceH4/MATH-500",
    hub_config=None,
    hub_split="test",
    size=500,
    prompt_template=PROMPT,
    question_field="problem",
    required_fields=("problem",),
    reference_fn=math_reference,
    grade_fn=grade_math500,
))
