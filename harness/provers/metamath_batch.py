"""One checker batch for metamath-exe: the ``.mm`` file, the command script, and the parsing of
what metamath-exe prints (it exits 0 whatever it finds: its output is the only verdict).

The batch file includes the pinned set.mm (``$[ set.mm $]``) and appends one ``${ ... $}``
block per attempt, written by the harness from the problem (the model supplies only the proof
body and ``$d`` lines, :mod:`.metamath_input`). Each block gets labels of its own
(``zz-harness-a<i>`` and ``zz-harness-a<i>.<j>`` for its hypotheses), so attempts at the same
problem share a file, and no block can cite a problem's dataset label: a proof's citations of
its own hypotheses (dataset names) are renamed to its block's.

The script reads the file once (~1 s here) and then, per attempt, ``verify proof <label>`` and
``show trace_back <label> /axioms /essential`` (milliseconds each). The output is split at the
``MM> `` prompts, one chunk per command (no proof text can hold ``MM>``: a body holds labels,
parentheses and capital letters only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.provers.metamath_axioms import disallowed
from harness.provers.metamath_input import ProofInput
from harness.provers.verdict import ERROR, FAILED, PROVED, REJECTED, TIMEOUT, Verdict

LABEL_PREFIX = "zz-harness-a"
"""Batch labels: no set.mm label starts with it (checked against the pinned file's labels)."""

PROMPT = "MM> "
UNKNOWN_LABEL = "This token is not the label of an assertion or optional hypothesis."
_READ_ERROR = re.compile(r'^\?(Error|Warning) on line (\d+) of file "([^"]+)"', re.MULTILINE)
_AXIOMS_HEADER = re.compile(r'^Statement "([^"]+)" assumes the following axioms \(\$a statements\):\s*$', re.MULTILINE)


@dataclass(frozen=True)
class MetamathProblem:
    """A problem as the harness writes it: theorem ``label`` with hypotheses ``hyps`` (``(label,
    "|- ...")`` in order) proving ``statement`` (``"|- ..."``) under the disjoint-variable
    conditions ``dv`` (each a list of variables, pairwise disjoint: the dataset's ``$d`` lines,
    part of the statement); tokens separated by spaces."""

    name: str
    label: str
    hyps: tuple[tuple[str, str], ...]
    statement: str
    dv: tuple[tuple[str, ...], ...] = ()

    @property
    def dv_pairs(self) -> frozenset[frozenset[str]]:
        """The statement's disjoint pairs (from :attr:`dv`)."""
        return frozenset(frozenset((a, b)) for group in self.dv for a in group for b in group if a != b)

    @property
    def hyp_labels(self) -> frozenset[str]:
        return frozenset(label for label, _ in self.hyps)

    @property
    def symbols(self) -> frozenset[str]:
        """Every math symbol of the statement and hypotheses (after the ``|-``)."""
        out = set(self.statement.split()[1:])
        for _, hyp in self.hyps:
            out.update(hyp.split()[1:])
        return frozenset(out)


@dataclass(frozen=True)
class BatchItem:
    """An attempt admitted to a batch: its problem and parsed proof."""

    problem: MetamathProblem
    proof: ProofInput


def block_label(index: int) -> str:
    return f"{LABEL_PREFIX}{index}"


def build_file(database: str, items: list[BatchItem]) -> tuple[str, list[tuple[int, int]]]:
    """The batch ``.mm`` text and each block's ``(first line, last line)`` (1-based).

    Args:
        database: set.mm's path as metamath-exe reads it (no whitespace, no ``$``).
    """
    lines = [f"$[ {database} $]"]
    spans = []
    for i, item in enumerate(items):
        label, start = block_label(i), len(lines) + 1
        rename = {hyp: f"{label}.{j}" for j, (hyp, _) in enumerate(item.problem.hyps)}
        lines.append("${")
        lines += [f"  $d {' '.join(symbols)} $." for symbols in (*item.problem.dv, *item.proof.dv)]
        lines += [f"  {label}.{j} $e {hyp} $." for j, (_, hyp) in enumerate(item.problem.hyps)]
        lines.append(f"  {label} $p {item.problem.statement} $=")
        lines += [f"    {line}" for line in item.proof.body(rename).splitlines()]
        lines.append("  $.")
        lines.append("$}")
        spans.append((start, len(lines)))
    return "\n".join(lines) + "\n", spans


def build_script(file_name: str, n: int) -> list[str]:
    """The commands metamath-exe runs (one per line, stdin), in the order their outputs come."""
    commands = ["set scroll continuous", "set width 9999", f"read {file_name}"]
    for i in range(n):
        commands += [f"verify proof {block_label(i)}", f"show trace_back {block_label(i)} /axioms /essential"]
    return commands + ["exit"]


def split_output(stdout: str) -> list[str]:
    """One chunk per command: the text after each ``MM> `` prompt (index 0 = the first command)."""
    return stdout.split(PROMPT)[1:]


def _explanation(chunk: str) -> str:
    """metamath-exe's reason in an error chunk: the first line after the ``^`` marker line, else
    the first line that starts with ``?``, else the chunk's first line."""
    lines = chunk.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and set(line.strip()) == {"^"}:
            for after in lines[i + 1 :]:
                if after.strip():
                    return after.strip()
    for line in lines:
        if line.startswith("?"):
            return line.strip()
    return next((line.strip() for line in lines if line.strip()), "no output")


def _marked_token(chunk: str) -> str | None:
    """The token under the ``^`` marker (the source line is printed just above it)."""
    lines = chunk.splitlines()
    for i, line in enumerate(lines):
        if i and line.strip() and set(line.strip()) == {"^"}:
            col = len(line) - len(line.lstrip())
            width = len(line.strip())
            token = lines[i - 1][col : col + width]
            return token or None
    return None


def read_errors(chunk: str, file_name: str, spans: list[tuple[int, int]]) -> tuple[dict[int, str], str | None]:
    """Errors of the ``read`` command: ``{attempt index: reason}`` for those inside a block, and
    a reason for the whole batch when something else went wrong (an error outside every block,
    or no sign that the file was read)."""
    per_item: dict[int, str] = {}
    parts = _READ_ERROR.split(chunk)
    # re.split with 3 groups: [before, kind, line, file, text, kind, line, file, text, ...]
    for k in range(1, len(parts), 4):
        kind, line, name, text = parts[k], int(parts[k + 1]), parts[k + 2], parts[k + 3]
        where = next((i for i, (a, b) in enumerate(spans) if a <= line <= b), None)
        if name != file_name or where is None:
            if kind == "Error":
                return per_item, f"metamath read error outside the attempts (line {line} of {name}): {_explanation(text)}"
            continue
        per_item.setdefault(where, f"read {kind.lower()}: {_explanation(text)}")
    if "statements;" not in chunk and "were read into the source buffer" not in chunk:
        return per_item, f"metamath did not read the batch file: {_explanation(chunk)}"
    return per_item, None


def item_verdict(index: int, verify: str | None, trace: str | None, read_error: str | None,
                 names: dict[str, str]) -> Verdict:
    """One attempt's verdict from its ``verify proof`` and ``show trace_back`` chunks.

    ``proved`` only when ``verify`` printed the label and nothing else, the read raised nothing
    in its block, ``trace`` lists the axioms with no warning, and every axiom is allowed
    (:func:`.metamath_axioms.disallowed`); an unknown label is ``rejected`` (``unknown_label``),
    a forbidden axiom ``rejected`` (``axiom``), anything else that is wrong ``failed``.

    Args:
        verify, trace: the chunks (``None`` when the output stopped before them).
        names: batch label → the label the model wrote (for messages).
    """
    label = block_label(index)
    if verify is None or trace is None:
        return Verdict(ERROR, "metamath output ended before this attempt was checked")
    if verify.strip() != label:
        reason = _explanation(verify.replace(label, "", 1) if verify.strip().startswith(label) else verify)
        if UNKNOWN_LABEL in verify:
            token = _marked_token(verify)
            token = names.get(token, token) if token else None
            return Verdict(REJECTED, f"unknown label {token!r}: not a set.mm assertion nor a hypothesis of this problem"
                           if token else reason, rule="unknown_label")
        return Verdict(FAILED, reason)
    if read_error is not None:
        return Verdict(FAILED, read_error)
    match = _AXIOMS_HEADER.search(trace)
    if match is None or match.group(1) != label or "?Error" in trace or "Warning" in trace:
        return Verdict(FAILED, f"axiom trace failed: {_explanation(trace)}")
    axioms = trace[match.end():].split()
    if not axioms or axioms == ["(None)"]:
        axioms = []
    bad = disallowed(axioms)
    if bad:
        return Verdict(REJECTED, f"rests on {', '.join(bad[:5])}: not on the axiom allow-list", rule="axiom")
    return Verdict(PROVED, f"verified; rests on {len(axioms)} allowed axioms and definitions")


def timeout_verdict(limit_s: float, time_s: float = 0.0) -> Verdict:
    """A ``timeout`` verdict (never proved) for a check that ran past ``limit_s``."""
    return Verdict(TIMEOUT, f"checker exceeded its {limit_s:g} s limit", time_s)
