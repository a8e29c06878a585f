"""``hpo audit``: duplicates, leakage across splits and odd images in a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hpo.cli._app import app, console

AUDIT_DIR = Path("reports")


@app.command()
def audit(
    target: Annotated[
        Path,
        typer.Argument(
            help="A study file (its dataset, split as training splits it), a folder of "
            "class folders or a MedMNIST-style .npz file.",
            metavar="STUDY_FILE_OR_DATA",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file (default: reports/audit-<name>.html)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the findings as JSON (no page unless --out).")
    ] = False,
    near_threshold: Annotated[
        int | None,
        typer.Option(
            "--near-threshold",
            help="Hamming distance (bits of the 64-bit perceptual hash) for near duplicates "
            "[default: 8].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Find duplicates (within a class, across labels, across splits) and odd images."""
    from hpo import audit as audit_mod
    from hpo.html import safe_filename

    threshold = audit_mod.DEFAULT_NEAR_THRESHOLD if near_threshold is None else near_threshold
    result = audit_mod.audit(target, near_threshold=threshold)
    path = out
    if path is None and not as_json:
        path = AUDIT_DIR / safe_filename(f"audit-{target.stem or target.name}")
    if path is not None:
        audit_mod.write_html(result, path)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    console.print(escape(result.sentence()))
    console.print(f"wrote {escape(str(path))}")
