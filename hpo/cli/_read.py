"""Read-only commands: studies, status, best. They never import a Keras backend
and never create a database."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hpo.cli._app import (
    FormatOpt,
    ReadStorageOpt,
    app,
    check_format,
    console,
    fmt,
    storage_url,
)
from hpo.errors import HpoError

JsonOpt = Annotated[bool, typer.Option("--json", help="Same as --format json.")]


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def open_read_only(cli_value: str | None) -> tuple[Any, str]:
    """Open the storage a read-only command looks in, without creating it."""
    from hpo.storage import open_storage, redact

    url = storage_url(cli_value)
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise HpoError(
            f"storage: no database at {redact(url)} ({path.resolve()} does not exist); "
            "give --storage URL or set $HPO_STORAGE"
        )
    return open_storage(url), url


def load_study(name: str, cli_value: str | None) -> Any:
    from hpo.storage import redact
    from hpo.studies import load_existing

    store, url = open_read_only(cli_value)
    return load_existing(store, name, where=redact(url))


def _print_rows(rows: list[dict[str, Any]], columns: list[str], output: str) -> None:
    """CSV or JSON for scripts: every value, never cut."""
    if output == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    sys.stdout.write(buf.getvalue())


@app.command()
def studies(
    storage: ReadStorageOpt = None,
    output: FormatOpt = "table",
    as_json: JsonOpt = False,
) -> None:
    """List the studies in the storage."""
    check_format(output)
    output = "json" if as_json else output
    from hpo.summary import list_studies

    store, url = open_read_only(storage)
    rows = list_studies(store)
    if output != "table":
        _print_rows(rows, list(rows[0]) if rows else ["name"], output)
        return
    if not rows:
        from hpo.storage import redact

        console.print(f"no studies in {redact(url)}", markup=False)
        return
    table = Table(header_style="bold")
    for col in ("study", "complete", "pruned", "failed", "running", "best", "sampler", "backbone"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"],
            str(r["complete"]),
            str(r["pruned"]),
            str(r["fail"]),
            str(r["running"]),
            fmt(r["best_value"]),
            r["sampler"] or "-",
            r["backbone"] or "-",
        )
    console.print(table)


@app.command()
def status(
    name: Annotated[str, typer.Argument(help="Study name.")],
    storage: ReadStorageOpt = None,
    output: FormatOpt = "table",
    as_json: JsonOpt = False,
) -> None:
    """Show a study's progress: trials by state, best value, running trials."""
    check_format(output)
    output = "json" if as_json else output
    from hpo.summary import study_status

    info = study_status(load_study(name, storage))
    if output == "json":
        print(json.dumps(info, indent=2, default=str))
        return
    if output == "csv":
        rows = [{"state": k, "trials": v} for k, v in info["states"].items()]
        _print_rows(rows, ["state", "trials"], output)
        return
    label = info.get("metric_label") or "macro F1"
    console.print(f"[bold]{info['name']}[/]  sampler {info['sampler']}  pruner {info['pruner']}")
    states = "  ".join(f"{k.lower()} {v}" for k, v in info["states"].items())
    console.print(f"trials: {info['n_trials']}  ({states})")
    if info["dataset"]:
        ds = info["dataset"]
        counts = ", ".join(f"{k} {v}" for k, v in ds.get("class_counts", {}).items())
        console.print(
            f"dataset: {ds.get('source')} sha256 {str(ds.get('sha256'))[:12]}  ({counts})",
            markup=False,
        )
    if info.get("executor"):
        from hpo.executors import executor_line

        console.print(f"executor: {executor_line(info['executor'])}", markup=False)
    if info["best_value"] is not None:
        console.print(f"best {label} {info['best_value']:.4f} (trial {info['best_trial']})")
    if info["train_seconds"]:
        console.print(f"training time: {info['train_seconds']:.1f} s in total")
    for row in info.get("failed", []) or []:
        console.print(f"trial {row['number']} failed: {row['reason']}", markup=False)
    if info["running"]:
        table = Table(title="running", header_style="bold")
        for col in ("trial", "worker", "device", "epoch", "last value", "started"):
            table.add_column(col)
        for r in info["running"]:
            table.add_row(
                str(r["number"]),
                r["worker"] or "-",
                r["device"] or "-",
                str(r["epoch"] if r["epoch"] is not None else "-"),
                fmt(r["last_f1"]),
                str(r["started"])[:19],
            )
        console.print(table)


@app.command()
def best(
    name: Annotated[str, typer.Argument(help="Study name.")],
    storage: ReadStorageOpt = None,
    output: FormatOpt = "table",
    as_json: JsonOpt = False,
) -> None:
    """Show the best trial: parameters, the objective metric and per-class F1."""
    check_format(output)
    output = "json" if as_json else output
    from hpo.summary import best_summary

    info = best_summary(load_study(name, storage))
    if output == "json":
        print(json.dumps(info, indent=2, default=str))
        return
    if output == "csv":
        rows = [{"parameter": k, "value": v} for k, v in info["params"].items()]
        _print_rows(rows, ["parameter", "value"], output)
        return
    label = info.get("metric_label") or "macro F1"
    console.print(f"[bold]{name}[/] best trial {info['number']}: {label} {info['value']:.4f}")
    table = Table(header_style="bold")
    table.add_column("parameter")
    table.add_column("value")
    for k, v in info["params"].items():
        table.add_row(k, fmt(v))
    console.print(table)
    if info["metrics"]:
        console.print("  ".join(f"{k} {fmt(v)}" for k, v in info["metrics"].items()))
    if info["f1_per_class"]:
        table = Table(header_style="bold")
        table.add_column("class")
        table.add_column("F1")
        table.add_column("val images")
        for row in info["f1_per_class"]:
            table.add_row(row["class"], f"{row['f1']:.4f}", str(row.get("support", "-")))
        console.print(table)
