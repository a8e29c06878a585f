"""The ``hpo`` command line.

Thin by design: each command parses, calls one function of the package and
prints. Commands that only read the database import neither a Keras backend
nor plotly, and never create a database.
"""

from __future__ import annotations

# isort: off
# Importing registers the commands; `hpo --help` lists them in this order.
from hpo.cli import _run, _read, _output, _proxy, _audit  # noqa: F401
# isort: on
from hpo.cli._app import app, main

__all__ = ["app", "main"]
