"""Commands that write files from the database: report, export, predict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hpo.cli._app import FormatOpt, ReadStorageOpt, app, at_least, check_format, console, fmt
from hpo.cli._read import open_read_only
from hpo.errors import HpoError


@app.command()
def report(
    name: Annotated[str | None, typer.Argument(help="Study name.")] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Rebuild a sampler-comparison report.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file (default: reports/<name>.html).")
    ] = None,
    storage: ReadStorageOpt = None,
) -> None:
    """Write a self-contained HTML report of a study or a campaign, from the database."""
    if (name is None) == (campaign is None):
        raise HpoError("report: give a study NAME or --campaign NAME (one of them)")
    from hpo import reports

    store, url = open_read_only(storage)
    if campaign is not None:
        path = reports.write_campaign_report(store, campaign, out)
    else:
        from hpo.storage import redact
        from hpo.studies import load_existing

        load_existing(store, str(name), where=redact(url))
        path = reports.write_study_report(store, str(name), out)
    console.print(f"wrote {escape(str(path))}")


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="Study name.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model into.")],
    trial: Annotated[
        int | None, typer.Option("--trial", help="Trial number (default: the best trial).")
    ] = None,
    storage: ReadStorageOpt = None,
    train_on: Annotated[
        str, typer.Option("--train-on", help="Retrain on 'train' or 'train+val'.")
    ] = "train",
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Bootstrap resamples for 95% intervals (0: none).")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    gradcam_per_class: Annotated[
        int, typer.Option("--gradcam-per-class", help="Grad-CAM test images per class.")
    ] = 3,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an export already in --out.")
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Fit temperature scaling on the validation split (--train-on train).",
        ),
    ] = False,
    lime_samples: Annotated[
        int,
        typer.Option(
            "--lime-samples", help="LIME perturbed samples per Grad-CAM image (0: no LIME)."
        ),
    ] = 200,
) -> None:
    """Retrain a trial, evaluate it once on the test split, write model, metadata and card."""
    from hpo.export import TRAIN_ON, export_model

    if train_on not in TRAIN_ON:
        raise HpoError(f"--train-on: must be one of {', '.join(TRAIN_ON)}, got '{train_on}'")
    at_least("--trial", trial, 0)
    at_least("--bootstrap", bootstrap, 0)
    at_least("--gradcam-per-class", gradcam_per_class, 0)
    store, _ = open_read_only(storage)
    # TensorFlow starts only once study, trial, folder and data have passed their checks.
    result = export_model(
        store,
        name,
        out,
        trial=trial,
        train_on=train_on,  # type: ignore[arg-type]
        n_bootstrap=bootstrap,
        seed=seed,
        gradcam_per_class=gradcam_per_class,
        overwrite=overwrite,
        calibrate_temperature=calibrate,
        lime_samples=lime_samples,
    )
    m = result.metrics
    console.print(
        f"[bold]{escape(result.study)}[/] trial {result.trial} retrained on {train_on}, "
        f"tested once on {m.n_test} held-out images"
    )
    for key in ("macro_f1", "balanced_accuracy", "roc_auc"):
        e = m.overall[key]
        interval = f" [{e.low:.4f}, {e.high:.4f}]" if e.low is not None else ""
        console.print(f"  test {key} {fmt(e.value)}{escape(interval)}")
    check = result.reproduction
    console.print(f"  {check.summary()}", markup=False)
    cal = result.calibration
    if cal is not None:
        after = "" if cal.after is None else f", {cal.after.ece:.4f} at T = {cal.temperature:.3f}"
        console.print(f"  test ECE ({len(cal.before.count)} bins) {cal.before.ece:.4f}{after}")
    if result.recipe_source != "trial":
        console.print(
            "  recipe: the study's stored file (this trial predates per-trial recipes)",
            markup=False,
        )
    for path in result.files:
        console.print(f"wrote {escape(str(path))}")
    console.print(f"model sha256 {result.model_sha256}")
    if check.warning:
        # on stderr, where warnings go; both scores are on stdout above
        print(f"warning: {check.warning}", file=sys.stderr)
    if result.previous_test_uses:
        last = result.previous_test_uses[-1]
        console.print(
            f"[yellow]note:[/] the test split was used {len(result.previous_test_uses)} time(s) "
            f"before (last {escape(str(last.get('at')))}, trial {last.get('trial')}); picking "
            "among models by test score makes it less of a held-out estimate"
        )


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="Folder written by 'hpo export'.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    output: FormatOpt = "table",
) -> None:
    """Classify images with an exported model (sha256 checked, Keras safe mode)."""
    check_format(output)
    from hpo.export import predict_files

    result = predict_files(model_dir, images)
    if result.split_note:
        print(f"note: in_split unknown ('?'): {result.split_note}", file=sys.stderr)
    if output == "json":
        print(result.to_json())
        return
    if output == "csv":
        sys.stdout.write(result.to_csv())
        return
    table = Table(header_style="bold")
    table.add_column("file", overflow="fold")
    table.add_column("predicted")
    table.add_column("in_split")
    for cls in result.class_names:
        table.add_column(escape(cls), justify="right")
    for i, (f, predicted, row) in enumerate(
        zip(result.files, result.predicted, result.proba, strict=True)
    ):
        table.add_row(
            escape(str(f)),
            escape(predicted),
            result.split_of(i),
            *(f"{float(p):.4f}" for p in row),
        )
    console.print(table)
