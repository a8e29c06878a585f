"""What hpo shows in a terminal: run progress and tables that never cut names.

``RunProgress`` is the live bar of ``hpo run``; ``make_console``,
``make_table`` and ``print_table`` give every command full names and paths
when its output goes to a pipe or a file. Rich is imported here, never by
the modules that compute what is shown.
"""

from __future__ import annotations

from hpo.console._progress import RunProgress
from hpo.console._tables import WIDE, make_console, make_table, print_table
from hpo.console._workers_table import WorkerRow, WorkersTable

__all__ = [
    "WIDE",
    "RunProgress",
    "WorkerRow",
    "WorkersTable",
    "make_console",
    "make_table",
    "print_table",
]
