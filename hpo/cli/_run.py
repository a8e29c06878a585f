"""Commands that run trials: run, worker, launch, compare."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hpo.cli._app import StorageOpt, app, at_least, console, fmt, load_config, storage_url
from hpo.errors import HpoError

if TYPE_CHECKING:
    import optuna

    from hpo.config import StudyConfig

StudyFile = Annotated[Path, typer.Argument(help="YAML study file.")]
StudyNameOpt = Annotated[str | None, typer.Option("--study-name", help="Override study.name.")]
SamplerOpt = Annotated[str | None, typer.Option("--sampler", help="tpe, gp, gpyopt or random.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Sampler seed.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No live progress.")]


def print_run_summary(study: optuna.Study, states: dict[str, int], elapsed: float) -> None:
    from hpo.results import best_trial
    from hpo.summary import metric_label

    done = ", ".join(f"{k.lower()} {v}" for k, v in sorted(states.items())) or "none"
    console.print(f"[bold]{escape(study.study_name)}[/]: this run {done} in {elapsed:.1f} s")
    best_t = best_trial(study)
    if best_t is None:
        console.print("no completed trial yet")
        return
    console.print(f"best {metric_label(study)} {best_t.value:.4f} (trial {best_t.number})")
    table = Table(show_header=True, header_style="bold")
    table.add_column("parameter")
    table.add_column("value")
    for k, v in best_t.params.items():
        table.add_row(k, fmt(v))
    console.print(table)


@app.command()
def run(
    study_file: StudyFile,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="Trials to add (default: budget.trials).")
    ] = None,
    sampler: SamplerOpt = None,
    seed: SeedOpt = None,
    storage: StorageOpt = None,
    study_name: StudyNameOpt = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Stop starting trials after SECONDS.")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Run (or resume) a study in this process: each run adds trials."""
    at_least("--trials", trials, 1)
    if timeout is not None and timeout <= 0:
        raise HpoError(f"--timeout: must be positive, got {timeout}")
    config = load_config(
        study_file,
        trials=trials,
        sampler=sampler,
        seed=seed,
        storage=storage,
        study_name=study_name,
        timeout=timeout,
    )
    from hpo.studies import create_or_resume

    study = create_or_resume(config, storage_url(storage, config), source=str(study_file))
    n = config.budget.trials
    from hpo.console import RunProgress
    from hpo.worker import run_worker

    t0 = time.perf_counter()
    with RunProgress(study, n_trials=n, config=config, console=console, enabled=not quiet) as prog:
        summary = run_worker(
            config,
            study,
            n_trials=n,
            timeout=config.budget.timeout,
            on_epoch=prog.on_epoch,
            callbacks=[prog.on_trial],
        )
    print_run_summary(study, summary.states, time.perf_counter() - t0)


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
    study_name: StudyNameOpt = None,
    max_trials_per_process: Annotated[
        int | None,
        typer.Option(
            "--max-trials-per-process",
            help="Exit with code 76 after this many trials so a fresh process continues.",
        ),
    ] = None,
) -> None:
    """Join a study from any host and run trials until its shared budget is reached."""
    at_least("--trials", trials, 1)
    at_least("--max-trials-per-process", max_trials_per_process, 1)
    config = load_config(study_file, trials=trials, storage=storage, study_name=study_name)
    from hpo.studies import create_or_resume
    from hpo.worker import RECYCLE_EXIT_CODE, Interrupted, run_worker

    url = storage_url(storage, config)
    study = create_or_resume(config, url, source=str(study_file))
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
    console.print(f"worker {escape(worker_name or '')} done: {done}")
    if summary.recycle:
        raise typer.Exit(RECYCLE_EXIT_CODE)


@app.command()
def launch(
    study_file: StudyFile,
    gpus: Annotated[str, typer.Option("--gpus", help="all, none, or a list like 0,1,3.")] = "all",
    workers_per_gpu: Annotated[
        int, typer.Option("--workers-per-gpu", help="Worker processes per GPU (or CPU workers).")
    ] = 1,
    trials: Annotated[
        int | None, typer.Option("--trials", "-n", help="Total finished trials of the study.")
    ] = None,
    storage: StorageOpt = None,
    study_name: StudyNameOpt = None,
    sampler: SamplerOpt = None,
    seed: SeedOpt = None,
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
    at_least("--trials", trials, 1)
    at_least("--workers-per-gpu", workers_per_gpu, 1)
    at_least("--max-trials-per-process", max_trials_per_process, 0)
    config = load_config(
        study_file,
        trials=trials,
        storage=storage,
        study_name=study_name,
        sampler=sampler,
        seed=seed,
    )
    from hpo.gpus import plan_slots
    from hpo.launcher import launch_study
    from hpo.studies import create_or_resume

    slots = plan_slots(gpus, workers_per_gpu)
    url = storage_url(storage, config)
    study = create_or_resume(config, url, source=str(study_file))
    console.print(
        f"{escape(study.study_name)}: {len(slots)} worker(s) on "
        + ", ".join(s.name for s in slots)
        + f", {config.budget.trials} trials in total"
    )
    t0 = time.perf_counter()
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
    print_run_summary(study, {"FINISHED": result["finished"]}, time.perf_counter() - t0)


@app.command()
def compare(
    study_file: StudyFile,
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
    quiet: QuietOpt = False,
) -> None:
    """Run one study per sampler and seed as a campaign, then write the comparison report."""
    from hpo.campaign import parse_samplers, run_campaign

    names = parse_samplers(samplers)
    at_least("--repeats", repeats, 1)
    at_least("--trials", trials, 1)
    at_least("--workers", workers, 1)
    config = load_config(study_file, storage=storage)
    n = trials or config.budget.trials
    name = campaign or f"{config.study.name}-compare"
    from hpo.storage import open_storage

    store = open_storage(storage_url(storage, config), heartbeat=True)

    def run_member(cfg: StudyConfig, study: optuna.Study, remaining: int) -> None:
        if workers > 1:
            # The same machinery as `hpo launch`: CPU or GPU slots, a shared exact budget.
            from hpo.gpus import plan_slots
            from hpo.launcher import launch_study

            launch_study(
                cfg,
                study,
                storage_url=storage_url(storage, cfg),
                slots=plan_slots(gpus, workers),
                budget=cfg.budget.trials,
                console=console,
                quiet=quiet,
                per_process=20,
            )
            return
        from hpo.console import RunProgress
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
            f"{remaining} trial(s) to run in {escape(member.study_name)}"
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
    console.print(f"campaign {escape(name)}: wrote {escape(str(path))}")
