"""Tables and consoles keep full names when output is not a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from hpo.console import WIDE, make_console, make_table, print_table

LONG = "study-" + "x" * 150 + "-end"


def test_console_off_a_terminal_is_wide_and_does_not_wrap() -> None:
    buf = io.StringIO()
    console = make_console(buf)
    assert not console.is_terminal and console.width == WIDE
    console.print(f"wrote reports/{LONG}.html")
    assert buf.getvalue() == f"wrote reports/{LONG}.html\n"


def test_table_keeps_full_names_off_a_terminal() -> None:
    buf = io.StringIO()
    console = make_console(buf)
    table = make_table("name", "best", title="studies", right=["best"])
    table.add_row(LONG, "0.9123")
    print_table(console, table)
    out = buf.getvalue()
    assert LONG in out and "…" not in out
    row = next(line for line in out.splitlines() if LONG in line)
    assert row.rstrip().endswith("0.9123 │")
    assert len(row) < 200  # as wide as the table, not as the console


def test_print_table_widens_an_80_column_console() -> None:
    buf = io.StringIO()
    narrow = Console(file=buf, width=80)  # what rich picks for a pipe by itself
    table = make_table("name", "value")
    table.add_row(LONG, "1")
    print_table(narrow, table)
    assert LONG in buf.getvalue() and "…" not in buf.getvalue()


def test_table_on_a_terminal_folds_instead_of_cutting() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=60, force_terminal=True, color_system=None)
    table = make_table("name", "value")
    table.add_row(LONG, "1")
    print_table(console, table)
    out = buf.getvalue()
    assert "…" not in out
    first_column = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert "".join(first_column) == LONG  # folded over several lines, every character kept
