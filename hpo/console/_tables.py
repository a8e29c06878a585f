"""Consoles and tables whose names are never cut.

Through a pipe or into a file, rich assumes 80 columns and shortens table
cells with an ellipsis: a study name or a path that a script then reads back
would be wrong. Off a terminal the console here is as wide as its content;
on a terminal, long cells wrap instead of being cut.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Iterable

WIDE = 100_000
"""Columns of a console that is not a terminal: wider than any line we print."""


def make_console(file: IO[str] | None = None, *, stderr: bool = False) -> Console:
    """A terminal console, or one that neither wraps nor cuts when output is redirected."""
    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    if is_tty:
        return Console(file=file, stderr=stderr)
    return Console(file=file, stderr=stderr, width=WIDE, soft_wrap=True)


def make_table(*columns: str, title: str | None = None, right: Iterable[str] = ()) -> Table:
    """A table whose cells fold onto more lines rather than end in an ellipsis."""
    aligned = set(right)
    table = Table(title=title, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold", justify="right" if name in aligned else "left")
    return table


def print_table(console: Console, table: Table) -> None:
    """Print a table at its full width when the console is not a terminal.

    A console built elsewhere may still think it has 80 columns; the width is
    then measured from the table itself, so no cell is shortened.
    """
    if console.is_terminal:
        console.print(table)
        return
    from rich.measure import Measurement

    needed = Measurement.get(console, console.options.update_width(WIDE), table).maximum
    width = console.width
    console.width = max(needed, width)  # print(width=...) can only narrow
    try:
        console.print(table, crop=False)
    finally:
        console.width = width
