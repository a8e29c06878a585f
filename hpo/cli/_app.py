"""The typer application, shared options and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from hpo.console import make_console
from hpo.errors import HpoError
from hpo.storage import redact

if TYPE_CHECKING:
    from hpo.config import StudyConfig

app = typer.Typer(
    name="hpo",
    help="Hyperparameter optimization for transfer-learning image classifiers (macro F1).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: flags read as flags (rich mode prints `--quiet <bool>`).
    rich_markup_mode=None,
)


console: Console = make_console()

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="SQLAlchemy or grpc:// URL (default: $HPO_STORAGE, then the study file's "
        "storage, then sqlite:///storage/hpo.db).",
        show_default=False,
    ),
]
ReadStorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="SQLAlchemy or grpc:// URL (default: $HPO_STORAGE, then sqlite:///storage/hpo.db).",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    str, typer.Option("--format", help="table, csv or json.", show_default=True)
]
FORMATS = ("table", "csv", "json")


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def at_least(flag: str, value: int | float | None, low: int | float) -> None:
    """One check and one message for every count flag (--trials, --repeats, ...)."""
    if value is not None and value < low:
        shown = f"{low}" if low != 1 else "1"
        raise HpoError(f"{flag}: must be at least {shown}, got {value}")


def check_format(value: str) -> None:
    if value not in FORMATS:
        raise HpoError(f"--format: must be one of {', '.join(FORMATS)}, got '{value}'")


def load_config(path: Path, **overrides: Any) -> StudyConfig:
    from hpo.config import load_config as _load

    config = _load(path)
    if any(v is not None for v in overrides.values()):
        config = config.with_overrides(**overrides)
    return config


def storage_url(cli_value: str | None, config: StudyConfig | None = None) -> str:
    from hpo.storage import resolve_url

    return resolve_url(cli_value, config.storage if config is not None else None)


def version_callback(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("hpo")
        except metadata.PackageNotFoundError:  # a source tree without an install
            version = "unknown"
        print(f"hpo {version}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Hyperparameter optimization for transfer-learning image classifiers (macro F1)."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(code) comes back as a value here
            sys.exit(code)
    except HpoError as exc:
        # One line, never wrapped, whatever the terminal width.
        message = " ".join(redact(str(exc)).split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors and aborts of the command-line parser
        code = getattr(exc, "exit_code", None)
        if hasattr(exc, "show") and isinstance(code, int):
            exc.show()
            sys.exit(code)
        if exc.__class__.__name__ == "Abort":
            sys.exit(130)
        raise
