"""Commands that run trials: run, worker, launch, compare.

(Over 400 lines: `launch` carries the options of four executors; each command stays thin.)
"""

from __future__ import annotations

import shlex
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


def resume_command(command: str, study_file: Path, url: str, **flags: object) -> str:
    """The command line that goes on where an interrupted one stopped, password hidden."""
    from hpo.storage import redact

    parts = ["hpo", command, str(study_file), "--storage", redact(url)]
    for flag, value in flags.items():
        if value is not None:
            parts += [f"--{flag.replace('_', '-')}", str(value)]
    return shlex.join(parts)


def stop_interrupted(study: optuna.Study, exc: KeyboardInterrupt, resume: str) -> None:
    """One line on what happened to the running trial and how to resume; exit 128 + signal."""
    from hpo.worker import Interrupted, interrupted_line

    print(interrupted_line(study, exc, resume), file=sys.stderr, flush=True)
    raise typer.Exit(exc.exit_code if isinstance(exc, Interrupted) else 130) from None


def print_run_summary(study: optuna.Study, states: dict[str, int], elapsed: float) -> None:
    from hpo.results import best_trial
    from hpo.summary import metric_label

    done = ", ".join(f"{k.lower()} {v}" for k, v in sorted(states.items())) or "none"
    console.print(f"[bold]{escape(study.study_name)}[/]: this run {done} in {elapsed:.1f} s")
    best_t = best_trial(study)
    if best_t is None:
        from hpo.results import no_best_reason

        console.print(no_best_reason(study))
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

    url = storage_url(storage, config)
    study = create_or_resume(config, url, source=str(study_file))
    n = config.budget.trials
    from hpo.console import RunProgress
    from hpo.worker import run_worker

    finished: list[int] = []  # this run's finished trials, for the resume command's --trials
    t0 = time.perf_counter()
    try:
        with RunProgress(
            study, n_trials=n, config=config, console=console, enabled=not quiet
        ) as prog:
            summary = run_worker(
                config,
                study,
                n_trials=n,
                timeout=config.budget.timeout,
                on_epoch=prog.on_epoch,
                callbacks=[prog.on_trial, lambda _, t: finished.append(t.number)],
            )
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM; the bar has stopped by now
        resume = resume_command(
            "run",
            study_file,
            url,
            trials=max(n - len(finished), 1),
            study_name=study_name,
            sampler=sampler,
            seed=seed,
        )
        stop_interrupted(study, exc, resume)
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
    from hpo.worker import RECYCLE_EXIT_CODE, run_worker

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
    except KeyboardInterrupt as exc:  # the running trial (if any) is failed and queued again
        resume = resume_command(
            "worker",
            study_file,
            url,
            trials=config.budget.trials,
            worker_name=worker_name,
            study_name=study_name,
            max_trials_per_process=max_trials_per_process,
        )
        stop_interrupted(study, exc, resume)
    done = ", ".join(f"{k.lower()} {v}" for k, v in sorted(summary.states.items())) or "none"
    console.print(f"worker {escape(worker_name or '')} done: {done}")
    if summary.recycle:
        raise typer.Exit(RECYCLE_EXIT_CODE)


@app.command()
def launch(
    study_file: StudyFile,
    on: Annotated[
        str, typer.Option("--on", help="Where workers run: local, slurm, ray or k8s.")
    ] = "local",
    gpus: Annotated[
        str,
        typer.Option(
            "--gpus", help="all, none, or a list like 0,1,3 (slurm, ray, k8s: all or none)."
        ),
    ] = "all",
    workers_per_gpu: Annotated[
        int, typer.Option("--workers-per-gpu", help="Worker processes per GPU (or CPU workers).")
    ] = 1,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="slurm, ray, k8s: worker slots to start (default 1)."),
    ] = None,
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
    partition: Annotated[
        str | None, typer.Option("--partition", help="slurm: the partition.")
    ] = None,
    time_limit: Annotated[
        str | None, typer.Option("--time", help="slurm: each task's time limit (D-HH:MM:SS).")
    ] = None,
    account: Annotated[str | None, typer.Option("--account", help="slurm: the account.")] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="ray: the cluster (auto, ray://HOST:PORT); default local."),
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="k8s: container image with hpo installed.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="k8s: namespace (default: default).")
    ] = None,
    job_dir: Annotated[
        Path | None,
        typer.Option(
            "--job-dir",
            help="slurm, k8s: folder for the script or manifests, on a file system the "
            "nodes share (default storage/jobs/<study>).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="slurm, k8s: show the job (k8s: write it) but submit nothing."
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="slurm, k8s: watch until the job ends.")
    ] = False,
) -> None:
    """Create or resume a study and run its workers (this host, Slurm, Ray or Kubernetes)
    until N trials finish."""
    from hpo import executors as ex

    engine = ex.check_engine(on)
    at_least("--trials", trials, 1)
    at_least("--workers-per-gpu", workers_per_gpu, 1)
    at_least("--workers", workers, 1)
    at_least("--max-trials-per-process", max_trials_per_process, 0)
    config = load_config(
        study_file,
        trials=trials,
        storage=storage,
        study_name=study_name,
        sampler=sampler,
        seed=seed,
    )
    url = storage_url(storage, config)
    plan, slots = ex.make_plan(
        engine,
        config,
        url,
        storage_flag=storage,
        gpus=gpus,
        workers_per_gpu=workers_per_gpu,
        workers=workers,
        per_process=max_trials_per_process or None,
        job_dir=job_dir,
    )
    options: dict[str, Any] = {
        "partition": partition,
        "time_limit": time_limit,
        "account": account,
        "address": address,
        "image": image,
        "namespace": namespace,
    }
    # Every flag is checked before the study is touched.
    ex.check_options(engine, options)
    executor = None
    if engine in ("slurm", "k8s") or dry_run:
        executor = ex.make_executor(engine, plan, None, **options)
    if dry_run:
        if isinstance(executor, ex.K8sExecutor):
            secret, _ = executor.write()
            print(executor.render(), end="")
            console.print(
                f"# wrote {executor.job_path} and {secret} (the storage URL, mode 600); "
                f"apply with: {' '.join(executor.apply_command())}",
                markup=False,
            )
        elif executor is not None:
            print(executor.render(), end="")
        return
    from hpo.studies import create_or_resume

    # The study exists before any worker starts: workers only resume it.
    study = create_or_resume(config, url, source=str(study_file))
    if executor is None:
        executor = ex.make_executor(
            engine, plan, study, slots=slots, console=console, quiet=quiet, **options
        )
    where = ", ".join(s.name for s in slots) if slots is not None else f"{engine}"
    console.print(
        f"{escape(study.study_name)}: {plan.workers} worker(s) on {escape(where)}, "
        f"{config.budget.trials} trials in total"
    )
    t0 = time.perf_counter()
    started = executor.start()
    if engine != "local":
        console.print(f"{engine}: job {started.job_id}, {started.detail}", markup=False)
    if not started.submitted:
        return
    ex.record_launch(study, started, plan.gpus)
    if engine in ("slurm", "k8s") and not wait:
        console.print(f"follow it with: hpo status {study.study_name}", markup=False)
        return
    try:
        result = executor.wait()
    except KeyboardInterrupt:
        if engine in ("local", "ray"):
            raise  # the supervisor has stopped its workers and said so
        stop = (
            f"scancel {started.job_id}"
            if engine == "slurm"
            else f"kubectl delete job {started.job_id}"
        )
        console.print(f"stopped watching; the job goes on ({stop} stops it)", markup=False)
        raise typer.Exit(130) from None
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

    try:
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
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: no later study starts
        from hpo.worker import Interrupted

        signal_name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
        console.print(
            f"campaign {escape(name)} interrupted ({signal_name}); the same command resumes it"
        )
        raise typer.Exit(exc.exit_code if isinstance(exc, Interrupted) else 130) from None
    from hpo import reports

    path = reports.write_campaign_report(store, name, out)
    console.print(f"campaign {escape(name)}: wrote {escape(str(path))}")
