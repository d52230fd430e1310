"""The Metamath checker: Debian's ``metamath`` (metamath-exe 0.195) against the pinned set.mm
(``metamath-databases``, "Version of 28-Dec-2020"), in batches.

Reading set.mm costs about a second and ~330 MB per process; one proof after that takes
milliseconds. :meth:`MetamathChecker.check` therefore writes all admitted attempts into one
batch file per ``batch_size`` attempts and runs one metamath process per batch
(:mod:`.metamath_batch`). Before anything reaches metamath, each attempt passes the input rules
(:mod:`.metamath_input`) and the citation rule (other problems' labels, the batch's own labels);
after it, the axiom allow-list (:mod:`.metamath_axioms`).

Timeouts: a batch may run ``read_timeout_s + attempt_timeout_s × attempts``. When it runs
over, the attempts whose verdicts were already printed keep them and every other attempt is
checked again on its own, with ``read_timeout_s + attempt_timeout_s``; one that runs over alone
is ``timeout`` (never proved).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.hashing import stable_hash
from harness.provers.metamath_axioms import ALLOWED_AXIOMS
from harness.provers.metamath_batch import (
    LABEL_PREFIX,
    BatchItem,
    MetamathProblem,
    block_label,
    build_file,
    build_script,
    item_verdict,
    read_errors,
    split_output,
    timeout_verdict,
)
from harness.provers.metamath_input import (
    MAX_PROOF_CHARS,
    ProofInput,
    check_labels,
    parse_proof,
)
from harness.provers.verdict import ERROR, Verdict

SET_MM_SHA256 = "4d93307bc81337a621031739acfffb4159175f94fb90e727f4a231401091e45b"
"""sha256 of Debian metamath-databases' set.mm ("Version of 28-Dec-2020"), the only one accepted."""
DEFAULT_DATABASE = Path("/usr/share/metamath/databases/set.mm")
DATABASE_ENV = "HARNESS_SET_MM"
INSTALL_HINT = "sudo apt-get install metamath metamath-databases (Debian/Ubuntu; `make install` runs it when missing)"
BATCH_FILE = "batch.mm"


def checker_identity() -> dict:
    """What Metamath verdicts depend on besides the proof: the database and the axiom allow-list
    (part of a proving cell's identity; computed without running anything)."""
    return {"checker": "metamath", "database_sha256": SET_MM_SHA256,
            "allowed_axioms": stable_hash(sorted(ALLOWED_AXIOMS)), "definitions": "df-*"}


class CheckerUnavailable(RuntimeError):
    """The checker cannot run here (program or database missing, or the wrong database)."""


def find_executable(name: str = "metamath") -> str:
    """Path of the ``metamath`` program.

    Raises:
        CheckerUnavailable: not on ``PATH``, naming the install command.
    """
    found = shutil.which(name)
    if found is None:
        raise CheckerUnavailable(f"the Metamath checker '{name}' is not installed; install it with: {INSTALL_HINT}")
    return found


def _dpkg_set_mm() -> Path | None:
    """set.mm as ``dpkg -L metamath-databases`` lists it (None without dpkg or the package)."""
    try:
        listing = subprocess.run(["dpkg", "-L", "metamath-databases"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.stdout.splitlines():
        if line.strip().endswith("/set.mm"):
            return Path(line.strip())
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_database(path: str | Path | None = None) -> Path:
    """The pinned set.mm: ``path``, else ``$HARNESS_SET_MM``, else the file ``dpkg -L
    metamath-databases`` lists, else :data:`DEFAULT_DATABASE`; its sha256 must be
    :data:`SET_MM_SHA256`.

    Raises:
        CheckerUnavailable: no such file, a path metamath-exe cannot include (whitespace or
            ``$``), or another set.mm (its sha256 named).
    """
    chosen = Path(path or os.environ.get(DATABASE_ENV) or _dpkg_set_mm() or DEFAULT_DATABASE)
    if not chosen.is_file():
        raise CheckerUnavailable(f"set.mm not found at {chosen}; install it with: {INSTALL_HINT}")
    if any(c.isspace() or c == "$" for c in str(chosen.resolve())):
        raise CheckerUnavailable(f"set.mm path {chosen} holds whitespace or '$': metamath cannot include it")
    digest = file_sha256(chosen)
    if digest != SET_MM_SHA256:
        raise CheckerUnavailable(
            f"{chosen} is not the pinned set.mm (sha256 {digest[:16]}…, want {SET_MM_SHA256[:16]}…, "
            "metamath-databases' 'Version of 28-Dec-2020'); results against another database are not comparable"
        )
    return chosen.resolve()


@dataclass
class CheckStats:
    """Checker time of one :meth:`MetamathChecker.check` call, measured with ``time.perf_counter``.

    Attributes:
        batches: ``(attempts in the batch, wall seconds)`` per metamath process (re-runs after
            a timeout included).
    """

    batches: list[tuple[int, float]] = field(default_factory=list)

    @property
    def time_s(self) -> float:
        return sum(t for _, t in self.batches)


class MetamathChecker:
    """Checks Metamath proof attempts against the pinned set.mm.

    Args:
        executable: the ``metamath`` program (default: found on ``PATH``).
        database: set.mm (default: :func:`find_database`).
        attempt_timeout_s: seconds allowed per attempt in a batch.
        read_timeout_s: seconds allowed to start metamath and read set.mm, per batch.
        batch_size: attempts per metamath process.
        max_chars: cap on an attempt's text (:data:`.metamath_input.MAX_PROOF_CHARS`).

    Raises:
        CheckerUnavailable: program or database missing, or the wrong database.
    """

    name = "metamath"

    def __init__(self, executable: str | None = None, database: str | Path | None = None,
                 attempt_timeout_s: float = 30.0, read_timeout_s: float = 120.0, batch_size: int = 256,
                 max_chars: int = MAX_PROOF_CHARS):
        self.executable = executable or find_executable()
        self.database = find_database(database)
        self.attempt_timeout_s = float(attempt_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.batch_size = int(batch_size)
        self.max_chars = int(max_chars)
        self._version: str | None = None

    @property
    def version(self) -> str:
        """metamath-exe's banner version, e.g. ``0.195 30-Dec-2020`` (runs it once)."""
        if self._version is None:
            out = subprocess.run([self.executable], input="exit\n", capture_output=True, text=True, timeout=60,
                                 check=False).stdout
            first = out.splitlines()[0] if out else ""
            self._version = first.split("Version", 1)[1].split("Type")[0].strip() if "Version" in first else "unknown"
        return self._version

    def describe(self) -> dict:
        """The cell's ``checker_json``: identity plus program version and paths."""
        return {**checker_identity(), "version": self.version, "executable": self.executable, "database": str(self.database)}

    def check(self, attempts: list[tuple[MetamathProblem, str]], forbidden: dict[str, str] | None = None
              ) -> tuple[list[Verdict], CheckStats]:
        """Check attempts ``(problem, proof text)``; one verdict each, in order.

        Args:
            forbidden: labels a proof may not cite although a batch file or the benchmark holds
                them (every problem's statement and hypothesis labels), label → problem name;
                each attempt may still cite its own hypotheses.

        Never raises for a bad attempt: bad input is ``rejected``, a crashed checker ``error``.
        """
        forbidden = forbidden or {}
        verdicts: list[Verdict | None] = [None] * len(attempts)
        admitted: list[tuple[int, BatchItem]] = []
        for i, (problem, text) in enumerate(attempts):
            parsed = parse_proof(text, problem.symbols, self.max_chars, problem.dv_pairs)
            if isinstance(parsed, Verdict):
                verdicts[i] = parsed
                continue
            verdicts[i] = self._citation(problem, parsed, forbidden)
            if verdicts[i] is None:
                admitted.append((i, BatchItem(problem, parsed)))
        stats = CheckStats()
        for start in range(0, len(admitted), self.batch_size):
            chunk = admitted[start : start + self.batch_size]
            for (i, _), verdict in zip(chunk, self._run_with_retry([item for _, item in chunk], stats)):
                verdicts[i] = verdict
        return [v for v in verdicts if v is not None], stats

    @staticmethod
    def _citation(problem: MetamathProblem, proof: ProofInput, forbidden: dict[str, str]) -> Verdict | None:
        return check_labels(proof, problem.hyp_labels, problem.label, problem.name, forbidden, LABEL_PREFIX)

    def _run_with_retry(self, items: list[BatchItem], stats: CheckStats) -> list[Verdict]:
        verdicts, done = self._run_batch(items, stats)
        if done is None:  # finished within its time
            return verdicts
        out = list(verdicts)
        for i in range(len(items)):
            if i in done:
                continue
            if len(items) > 1:
                alone, _ = self._run_batch([items[i]], stats)
                out[i] = alone[0]
        return out

    def _run_batch(self, items: list[BatchItem], stats: CheckStats) -> tuple[list[Verdict], set[int] | None]:
        """Run one metamath process; returns the verdicts and, when it timed out, the indices
        whose verdicts were complete (``None`` when it finished)."""
        limit = self.read_timeout_s + self.attempt_timeout_s * len(items)
        names = {}
        for i, item in enumerate(items):
            for j, (hyp, _) in enumerate(item.problem.hyps):
                names[f"{block_label(i)}.{j}"] = hyp
        with tempfile.TemporaryDirectory(prefix="harness-mm-") as tmp:
            text, spans = build_file(str(self.database), items)
            Path(tmp, BATCH_FILE).write_text(text, encoding="ascii")
            script = "\n".join(build_script(BATCH_FILE, len(items))) + "\n"
            began = time.perf_counter()
            timed_out = False
            try:
                done = subprocess.run([self.executable], input=script.encode("ascii"), capture_output=True, cwd=tmp,
                                      timeout=limit, check=False)
                stdout, code, stderr = done.stdout, done.returncode, done.stderr
            except subprocess.TimeoutExpired as exc:
                stdout, code, stderr, timed_out = exc.stdout or b"", 0, b"", True
            except OSError as exc:
                stats.batches.append((len(items), time.perf_counter() - began))
                return [Verdict(ERROR, f"metamath could not run: {exc}")] * len(items), None
            elapsed = time.perf_counter() - began
        stats.batches.append((len(items), elapsed))
        share = elapsed / len(items)
        output = stdout.decode("utf-8", errors="replace")
        if code != 0 and not timed_out:
            reason = (stderr.decode("utf-8", errors="replace").strip() or output.strip() or f"exit code {code}")
            return [Verdict(ERROR, f"metamath exited {code}: {reason}", share)] * len(items), None
        chunks = split_output(output)
        per_item, whole = read_errors(chunks[2] if len(chunks) > 2 else "", BATCH_FILE, spans)
        if whole is not None and not timed_out:
            return [Verdict(ERROR, whole, share)] * len(items), None
        verdicts, complete = [], set()
        for i in range(len(items)):
            v_at, t_at = 3 + 2 * i, 4 + 2 * i
            finished = t_at < len(chunks) - 1  # a later prompt was printed: both chunks are whole
            if timed_out and not finished:
                verdicts.append(timeout_verdict(limit, share))
                continue
            complete.add(i)
            verdict = item_verdict(i, chunks[v_at] if v_at < len(chunks) else None,
                                   chunks[t_at] if t_at < len(chunks) else None, per_item.get(i), names)
            verdicts.append(Verdict(verdict.status, verdict.message, share, verdict.rule))
        return verdicts, (complete if timed_out else None)
