"""A rich table laid out for the width it is printed at, that never cuts a name.

rich shrinks a too-wide table by wrapping its widest columns, then, as a last resort, by cutting
every column with an ellipsis (how ``budget-64`` and ``budget-128`` both became ``budget…``).
:class:`FitTable` does the layout itself, when rich renders it and the width is known:

1. every cell on one line when the natural width fits;
2. else the wrapping columns narrow, down to their longest word: first those marked
   ``wrap_first`` (an interval moves to a second line), then the one with the most room (a value's
   unit moves to a second line); ``keep`` columns (names) never narrow;
3. else the same with one space between columns instead of two;
4. else (a narrow console, ``--wide`` at 80 columns) the names keep their width and the other
   columns fold inside theirs: characters move to the next line, none is dropped;
5. else (names alone wider than the console) every column folds.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.cells import cell_len

__all__ = ["FitColumn", "FitTable", "GAP"]

GAP = 2
"""Spaces between two columns (1 when the table is too wide otherwise)."""


@dataclass
class FitColumn:
    """A column: header, justification, ``keep`` (a name: never wrapped, never narrowed) and
    ``wrap_first`` (narrowed before the others, e.g. an interval that can take a second line)."""

    header: str
    justify: str = "right"
    keep: bool = False
    wrap_first: bool = False


def _longest_word(s: str) -> int:
    return max((cell_len(w) for w in s.split()), default=0)


def _widest_line(s: str) -> int:
    return max((cell_len(line) for line in s.splitlines()), default=0)


class FitTable:
    """Rows of strings under :class:`FitColumn` headers (see the module docstring).

    Args:
        columns: the columns; ``rows``: one string per column per row.
        title, caption: as rich's ``Table`` (left-justified).
    """

    def __init__(self, columns: list[FitColumn], rows: list[list[str]], title: str | None = None,
                 caption: str | None = None):
        self.columns, self.rows, self.title, self.caption = columns, rows, title, caption
        cells = [[c.header] + [r[i] for r in rows] for i, c in enumerate(columns)]
        self.natural = [max(_widest_line(s) for s in col) for col in cells]
        self.minimum = [
            nat if c.keep else max(max(_longest_word(s) for s in col), 1)
            for c, nat, col in zip(columns, self.natural, cells)
        ]

    def _total(self, widths: list[int], gap: int = GAP) -> int:
        return sum(widths) + gap * max(len(widths) - 1, 0)

    def widths(self, max_width: int, gap: int = GAP, fold: bool = False) -> list[int] | None:
        """Column widths for ``max_width`` with ``gap`` spaces between columns (steps 1 and 2 of
        the module docstring; with ``fold``, step 4: other columns may narrow below their longest
        word), or None when even the narrowest such layout is wider."""
        minimum = [m if c.keep else 1 for c, m in zip(self.columns, self.minimum)] if fold else self.minimum
        widths = list(self.natural)
        excess = self._total(widths, gap) - max_width
        if excess <= 0:
            return widths
        if self._total(minimum, gap) > max_width:
            return None
        while excess > 0:  # narrow, one character at a time, the wrap_first columns, then the one with most room
            room = [j for j in range(len(widths)) if widths[j] > minimum[j]]
            if fold:  # step 4: the widest first, so every folded column keeps some width
                i = max(room, key=lambda j: (widths[j], self.columns[j].wrap_first))
            else:
                i = max(room, key=lambda j: (self.columns[j].wrap_first, widths[j] - minimum[j], widths[j]))
            widths[i] -= 1
            excess -= 1
        return widths

    def table(self, max_width: int) -> Table:
        """The rich table laid out for ``max_width`` columns."""
        gap = GAP
        widths = self.widths(max_width, gap)
        if widths is None:
            gap = 1
            widths = self.widths(max_width, gap) or self.widths(max_width, gap, fold=True)
        # SIMPLE_HEAD separates columns by one space; the padding adds the second one
        table = Table(title=self.title, caption=self.caption, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      padding=(0, 1 if gap == 2 else 0), collapse_padding=True, title_justify="left",
                      caption_justify="left")
        for i, col in enumerate(self.columns):
            if widths is None:  # step 5: fold everything, drop nothing
                table.add_column(col.header, justify=col.justify, overflow="fold")
            else:
                one_line = widths[i] >= self.natural[i]
                table.add_column(col.header, justify=col.justify, width=widths[i], no_wrap=one_line,
                                 overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self._total(self.minimum, 1), self._total(self.natural)).with_maximum(options.max_width)
