"""The ``hpo`` command line.

Thin by design: each command resolves its settings, calls one function of
the package and prints. Commands that only read the database import neither
TensorFlow nor plotly, so they answer in well under two seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hpo.errors import HpoError
from hpo.storage import redact

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig

app = typer.Typer(
    name="hpo",
    help="Hyperparameter optimization for transfer-learning image classifiers (macro F1).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="SQLAlchemy URL (default: $HPO_STORAGE, the study file, sqlite:///storage/hpo.db).",
        show_default=False,
    ),
]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def _open(storage: str | None, file_value: str | None = None, *, heartbeat: bool = False) -> Any:
    from hpo.storage import open_storage, resolve_url

    return open_storage(resolve_url(storage, file_value), heartbeat=heartbeat)


def _load_config(path: Path, **overrides: Any) -> StudyConfig:
    from hpo.config import load_config

    config = load_config(path)
    if any(v is not None for v in overrides.values()):
        config = config.with_overrides(**overrides)
    return config


# --------------------------------------------------------------------------
# run


@app.command()
def run(
    study_file: Annotated[Path, typer.Argument(help="YAML study file.")],
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="Trials to add (default: budget.trials).")
    ] = None,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="tpe, gp, gpyopt or random.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed.")] = None,
    storage: StorageOpt = None,
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Override study.name.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Stop starting trials after SECONDS.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Run (or resume) a study in this process: each run adds trials."""
    if trials is not None and trials < 1:
        raise HpoError(f"--trials: must be at least 1, got {trials}")
    if timeout is not None and timeout <= 0:
        raise HpoError(f"--timeout: must be positive, got {timeout}")
    config = _load_config(
        study_file,
        trials=trials,
        sampler=sampler,
        seed=seed,
        storage=storage,
        study_name=study_name,
        timeout=timeout,
    )
    from hpo.studies import make_study
    from hpo.worker import prepare_dataset

    store = _open(storage, config.storage, heartbeat=True)
    prepare_dataset(config)  # bad data fails here, before anything is stored
    study = make_study(config, store)
    n = config.budget.trials
    from hpo.progress import RunProgress

    t0 = time.perf_counter()
    with RunProgress(study, n_trials=n, config=config, console=console, enabled=not quiet) as prog:
        from hpo.worker import run_worker

        summary = run_worker(
            config,
            study,
            n_trials=n,
            timeout=config.budget.timeout,
            on_epoch=prog.on_epoch,
            callbacks=[prog.on_trial],
        )
    elapsed = time.perf_counter() - t0
    _print_run_summary(study, summary.states, elapsed)


def _print_run_summary(study: optuna.Study, states: dict[str, int], elapsed: float) -> None:
    from hpo.summary import best_trial_or_none

    done = ", ".join(f"{k.lower()} {v}" for k, v in sorted(states.items())) or "none"
    console.print(f"[bold]{study.study_name}[/]: this run {done} in {elapsed:.1f} s")
    best = best_trial_or_none(study)
    if best is None:
        console.print("no completed trial yet")
        return
    console.print(f"best macro F1 {best.value:.4f} (trial {best.number})")
    table = Table(show_header=True, header_style="bold")
    table.add_column("parameter")
    table.add_column("value")
    for k, v in best.params.items():
        table.add_row(k, _fmt(v))
    console.print(table)


# --------------------------------------------------------------------------
# read-only commands


@app.command()
def studies(
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the studies in the storage."""
    from hpo.summary import list_studies

    rows = list_studies(_open(storage))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no studies")
        return
    table = Table(header_style="bold")
    for col in (
        "study",
        "complete",
        "pruned",
        "failed",
        "running",
        "best F1",
        "sampler",
        "backbone",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            str(r["complete"]),
            str(r["pruned"]),
            str(r["fail"]),
            str(r["running"]),
            _fmt(r["best_value"]),
            r["sampler"] or "-",
            r["backbone"] or "-",
        )
    console.print(table)


@app.command()
def status(
    name: Annotated[str, typer.Argument(help="Study name.")],
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a study's progress: trials by state, best F1, running trials."""
    from hpo.studies import load_existing
    from hpo.summary import study_status

    info = study_status(load_existing(_open(storage), name))
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    console.print(f"[bold]{info['name']}[/]  sampler {info['sampler']}  pruner {info['pruner']}")
    states = "  ".join(f"{k.lower()} {v}" for k, v in info["states"].items())
    console.print(f"trials: {info['n_trials']}  ({states})")
    if info["dataset"]:
        ds = info["dataset"]
        counts = ", ".join(f"{k} {v}" for k, v in ds.get("class_counts", {}).items())
        console.print(
            f"dataset: {ds.get('source')} sha256 {str(ds.get('sha256'))[:12]}  ({counts})"
        )
    if info["best_value"] is not None:
        console.print(f"best macro F1 {info['best_value']:.4f} (trial {info['best_trial']})")
    if info["train_seconds"]:
        console.print(f"training time: {info['train_seconds']:.1f} s in total")
    if info["running"]:
        table = Table(title="running", header_style="bold")
        for col in ("trial", "worker", "device", "epoch", "last F1", "started"):
            table.add_column(col)
        for r in info["running"]:
            table.add_row(
                str(r["number"]),
                r["worker"] or "-",
                r["device"] or "-",
                str(r["epoch"] if r["epoch"] is not None else "-"),
                _fmt(r["last_f1"]),
                str(r["started"])[:19],
            )
        console.print(table)


@app.command()
def best(
    name: Annotated[str, typer.Argument(help="Study name.")],
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the best trial: parameters, macro F1 and per-class F1."""
    from hpo.studies import load_existing
    from hpo.summary import best_summary

    info = best_summary(load_existing(_open(storage), name))
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    console.print(f"[bold]{name}[/] best trial {info['number']}: macro F1 {info['value']:.4f}")
    table = Table(header_style="bold")
    table.add_column("parameter")
    table.add_column("value")
    for k, v in info["params"].items():
        table.add_row(k, _fmt(v))
    console.print(table)
    if info["metrics"]:
        console.print("  ".join(f"{k} {_fmt(v)}" for k, v in info["metrics"].items()))
    if info["f1_per_class"]:
        table = Table(header_style="bold")
        table.add_column("class")
        table.add_column("F1")
        table.add_column("val images")
        for row in info["f1_per_class"]:
            table.add_row(row["class"], f"{row['f1']:.4f}", str(row.get("support", "-")))
        console.print(table)


# --------------------------------------------------------------------------
# parallel workers


@app.command()
def worker(
    study_file: Annotated[Path, typer.Argument(help="YAML study file (the same on every host).")],
    storage: StorageOpt = None,
    trials: Annotated[
        int | None,
        typer.Option("--trials", "-n", help="The study's total finished trials (shared budget)."),
    ] = None,
    worker_name: Annotated[
        str | None, typer.Option("--worker-name", help="Shown in status and reports.")
    ] = None,
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Override study.name.")
    ] = None,
    max_trials_per_process: Annotated[
        int | None,
        typer.Option(
            "--max-trials-per-process",
            help="Exit with code 76 after this many trials so a fresh process continues.",
        ),
    ] = None,
) -> None:
    """Join a study from any host and run trials until its shared budget is reached."""
    if trials is not None and trials < 1:
        raise HpoError(f"--trials: must be at least 1, got {trials}")
    config = _load_config(study_file, trials=trials, storage=storage, study_name=study_name)
    from hpo.studies import make_study
    from hpo.worker import prepare_dataset, run_worker

    url = _storage_url(storage, config)
    store = _open(url, heartbeat=True)
    prepare_dataset(config)
    study = make_study(config, store)
    from hpo.worker import Interrupted

    try:
        summary = run_worker(
            config,
            study,
            n_trials=None,
            budget=config.budget.trials,
            storage_url=url,
            worker=worker_name,
            timeout=config.budget.timeout,
            max_trials_per_process=max_trials_per_process,
        )
    except Interrupted as exc:
        # The running trial (if any) is already failed and queued again.
        print(f"worker {worker_name or ''} stopped by {exc.signal_name}", file=sys.stderr)
        raise typer.Exit(128 + int(signal.Signals[exc.signal_name])) from None
    done = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.states.items())) or "none"
    console.print(f"worker {worker_name or ''} done: {done}")
    if summary.recycle:
        from hpo.worker import RECYCLE_EXIT_CODE

        raise typer.Exit(RECYCLE_EXIT_CODE)


@app.command()
def launch(
    study_file: Annotated[Path, typer.Argument(help="YAML study file.")],
    gpus: Annotated[str, typer.Option("--gpus", help="all, none, or a list like 0,1,3.")] = "all",
    workers_per_gpu: Annotated[
        int, typer.Option("--workers-per-gpu", help="Worker processes per GPU (or CPU workers).")
    ] = 1,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="Total finished trials of the study.")
    ] = None,
    storage: StorageOpt = None,
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Override study.name.")
    ] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="Override the sampler.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live table.")] = False,
    max_trials_per_process: Annotated[
        int,
        typer.Option(
            "--max-trials-per-process",
            help="Start a fresh worker process after this many trials (0: never).",
        ),
    ] = 20,
) -> None:
    """Create or resume a study and run one worker per GPU slot until N trials finish."""
    if trials is not None and trials < 1:
        raise HpoError(f"--trials: must be at least 1, got {trials}")
    config = _load_config(
        study_file,
        trials=trials,
        storage=storage,
        study_name=study_name,
        sampler=sampler,
        seed=seed,
    )
    from hpo.gpus import plan_slots
    from hpo.launcher import launch_study
    from hpo.studies import make_study
    from hpo.worker import prepare_dataset

    slots = plan_slots(gpus, workers_per_gpu)
    url = _storage_url(storage, config)
    store = _open(url, heartbeat=True)
    prepare_dataset(config)
    study = make_study(config, store)
    console.print(
        f"{study.study_name}: {len(slots)} worker(s) on "
        + ", ".join(s.name for s in slots)
        + f", {config.budget.trials} trials in total"
    )
    t0 = time.perf_counter()
    if max_trials_per_process < 0:
        raise HpoError(f"--max-trials-per-process: must be 0 or more, got {max_trials_per_process}")
    result = launch_study(
        config,
        study,
        storage_url=url,
        slots=slots,
        budget=config.budget.trials,
        console=console,
        quiet=quiet,
        per_process=max_trials_per_process or None,
    )
    _print_run_summary(study, {"FINISHED": result["finished"]}, time.perf_counter() - t0)


@app.command("storage-proxy")
def storage_proxy(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 13000,
) -> None:
    """Serve Optuna's gRPC storage proxy in front of the database (grpc://HOST:PORT)."""
    if not 0 < port < 65536:
        raise HpoError(f"--port: must be between 1 and 65535, got {port}")
    import optuna

    url = _storage_url_only(storage)
    if url.startswith("grpc://"):
        raise HpoError("storage-proxy: --storage must be a database URL, not grpc://")
    # Optuna's cache in front of the RDB storage, as its proxy documentation advises.
    store = optuna.storages.get_storage(_open(url))
    console.print(f"serving {redact(url)} on grpc://{host}:{port}")
    optuna.storages.run_grpc_proxy_server(store, host=host, port=port)


def _storage_url_only(cli_value: str | None) -> str:
    from hpo.storage import resolve_url

    return resolve_url(cli_value)


# --------------------------------------------------------------------------
# reports and campaigns


@app.command()
def report(
    name: Annotated[str | None, typer.Argument(help="Study name.")] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Rebuild a sampler-comparison report.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file (default: reports/<name>.html).")
    ] = None,
    storage: StorageOpt = None,
) -> None:
    """Write a self-contained HTML report of a study or a campaign, from the database."""
    if (name is None) == (campaign is None):
        raise HpoError("report: give a study NAME or --campaign NAME (one of them)")
    from hpo import reports

    store = _open(storage)
    if campaign is not None:
        path = reports.write_campaign_report(store, campaign, out)
    else:
        from hpo.studies import load_existing

        load_existing(store, str(name))
        path = reports.write_study_report(store, str(name), out)
    console.print(f"wrote {path}")


@app.command()
def compare(
    study_file: Annotated[Path, typer.Argument(help="YAML study file.")],
    samplers: Annotated[
        str, typer.Option("--samplers", help="Comma-separated: tpe,gp,gpyopt,random.")
    ] = "tpe,gp,gpyopt,random",
    repeats: Annotated[int, typer.Option("--repeats", help="Seeds per sampler.")] = 3,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="Finished trials per study.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes per study (per GPU with --gpus).")
    ] = 1,
    gpus: Annotated[
        str, typer.Option("--gpus", help="With --workers > 1: all, none or a list like 0,1.")
    ] = "none",
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Campaign name (default: <study>-compare).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first repeat.")] = 0,
    storage: StorageOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Report file.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")] = False,
) -> None:
    """Run one study per sampler and seed as a campaign, then write the comparison report."""
    from hpo.campaign import parse_samplers, run_campaign

    names = parse_samplers(samplers)
    if repeats < 1:
        raise HpoError(f"--repeats: must be at least 1, got {repeats}")
    if trials is not None and trials < 1:
        raise HpoError(f"--trials: must be at least 1, got {trials}")
    if workers < 1:
        raise HpoError(f"--workers: must be at least 1, got {workers}")
    config = _load_config(study_file, storage=storage)
    n = trials or config.budget.trials
    name = campaign or f"{config.study.name}-compare"
    store = _open(storage, config.storage, heartbeat=True)

    def run_member(cfg: StudyConfig, study: optuna.Study, remaining: int) -> None:
        if workers > 1:
            # The same machinery as `hpo launch`: CPU or GPU slots, a shared exact budget.
            from hpo.gpus import plan_slots
            from hpo.launcher import launch_study

            launch_study(
                cfg,
                study,
                storage_url=_storage_url(storage, cfg),
                slots=plan_slots(gpus, workers),
                budget=cfg.budget.trials,
                console=console,
                quiet=quiet,
                per_process=20,
            )
            return
        from hpo.progress import RunProgress
        from hpo.worker import run_worker

        with RunProgress(
            study, n_trials=remaining, config=cfg, console=console, enabled=not quiet
        ) as prog:
            run_worker(
                cfg, study, n_trials=remaining, on_epoch=prog.on_epoch, callbacks=[prog.on_trial]
            )

    def announce(member: Any, remaining: int) -> None:
        console.print(
            f"[bold]{member.sampler}[/] repeat {member.repeat} (seed {member.seed}): "
            f"{remaining} trial(s) to run in {member.study_name}"
        )

    run_campaign(
        config,
        store,
        campaign=name,
        samplers=names,
        repeats=repeats,
        trials=n,
        base_seed=seed,
        run_member=run_member,
        on_member=announce,
    )
    from hpo import reports

    path = reports.write_campaign_report(store, name, out)
    console.print(f"campaign {name}: wrote {path}")


def _storage_url(cli_value: str | None, config: StudyConfig) -> str:
    from hpo.storage import resolve_url

    return resolve_url(cli_value, config.storage)


# --------------------------------------------------------------------------
# export and predict


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="Study name.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the model into.")],
    trial: Annotated[
        int | None, typer.Option("--trial", help="Trial number (default: the best trial).")
    ] = None,
    storage: StorageOpt = None,
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
) -> None:
    """Retrain a trial, evaluate it once on the test split, write model, metadata and card."""
    from rich.markup import escape

    from hpo.export import TRAIN_ON, export_model

    if train_on not in TRAIN_ON:
        raise HpoError(f"--train-on: must be one of {', '.join(TRAIN_ON)}, got '{train_on}'")
    if trial is not None and trial < 0:
        raise HpoError(f"--trial: must be 0 or more, got {trial}")
    # TensorFlow starts only once study, trial, folder and data have passed their checks.
    result = export_model(
        _open(storage),
        name,
        out,
        trial=trial,
        train_on=train_on,  # type: ignore[arg-type]
        n_bootstrap=bootstrap,
        seed=seed,
        gradcam_per_class=gradcam_per_class,
        overwrite=overwrite,
    )
    m = result.metrics
    console.print(
        f"[bold]{escape(result.study)}[/] trial {result.trial} retrained on {train_on}, "
        f"tested once on {m.n_test} held-out images"
    )
    for key in ("macro_f1", "balanced_accuracy", "roc_auc"):
        e = m.overall[key]
        interval = f" [{e.low:.4f}, {e.high:.4f}]" if e.low is not None else ""
        console.print(f"  test {key} {_fmt(e.value)}{escape(interval)}")
    for path in result.files:
        console.print(f"wrote {escape(str(path))}")
    console.print(f"model sha256 {result.model_sha256}")
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
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Classify images with an exported model (sha256 checked, Keras safe mode)."""
    if output not in ("table", "csv", "json"):
        raise HpoError(f"--format: must be table, csv or json, got '{output}'")
    from hpo.export import predict_files

    result = predict_files(model_dir, images)
    if output == "json":
        print(result.to_json())
        return
    if output == "csv":
        sys.stdout.write(result.to_csv())
        return
    from rich.markup import escape

    table = Table(header_style="bold")
    table.add_column("file")
    table.add_column("predicted")
    for cls in result.class_names:
        table.add_column(escape(cls), justify="right")
    for f, predicted, row in zip(result.files, result.predicted, result.proba, strict=True):
        table.add_row(escape(str(f)), escape(predicted), *(f"{float(p):.4f}" for p in row))
    console.print(table)


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
