"""Mutation score per module: do the tests notice when the code is broken?

    python benchmarks/mutation.py                     # the affordable targets
    python benchmarks/mutation.py metrics results     # some targets
    python benchmarks/mutation.py --all               # every target (hours on 2 cores)
    python benchmarks/mutation.py --list              # targets, files, tests
    python benchmarks/mutation.py --tests-from HEAD   # the committed tests: a baseline

Runs ``mutmut`` 3 on each target's modules with the fast tests that guard
them, in a private copy of the tree (mutmut writes a ``mutants/`` folder
next to the sources; a shared checkout must not see it), and prints per
target: mutants, killed, survived, not reached by any test, timeouts and
the score (killed + timeouts over all mutants). ``--survivors FILE`` writes
each surviving mutant's diff, which is where a missing test shows.
Not part of CI: a run takes minutes per target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    cheap: bool  # affordable on a shared 2-core machine (minutes, not hours)
    note: str = ""
    pytest_args: tuple[str, ...] = field(default_factory=tuple)


TARGETS: dict[str, Target] = {
    "gpyopt": Target(
        ("hpo/samplers/_gpyopt.py",),
        ("tests/samplers/test_gpyopt.py",),
        cheap=False,
        note="465 mutants, ~10 s of GP fits each: ~45 min on 2 idle cores, hours when busy",
        pytest_args=("-m", "not postgres"),
    ),
    "objective": Target(
        ("hpo/objective.py",),
        ("tests/training/test_phases.py", "tests/test_out_of_memory.py"),
        cheap=False,
        note="310 mutants, ~80 s of real training each: ~3.5 h on 2 cores",
    ),
    "metrics": Target(
        ("hpo/metrics.py",),
        (
            "tests/test_metrics.py",
            "tests/test_metrics_score.py",
            "tests/test_constraints.py::test_constraint_values_follow_optunas_sign_convention",
        ),
        cheap=True,
    ),
    "results": Target(
        ("hpo/summary.py", "hpo/facts.py", "hpo/results.py"),
        ("tests/test_summary.py", "tests/test_facts.py", "tests/test_results.py"),
        cheap=True,
    ),
    "space": Target(
        ("hpo/space.py", "hpo/config.py", "hpo/hyperparameters.py"),
        ("tests/test_space.py", "tests/test_config.py", "tests/test_hyperparameters.py"),
        cheap=False,
        note="575 mutants, ~10 s of tests each: ~50 min on 2 idle cores",
    ),
    "admission": Target(
        ("hpo/worker/_admission.py",),
        ("tests/worker/test_admission.py", "tests/test_admission_races.py"),
        cheap=True,
        note="SQLite, and PostgreSQL when HPO_TEST_POSTGRES_URL is set",
    ),
    "integrity": Target(
        ("hpo/export/_integrity.py",),
        ("tests/export/test_integrity.py",),
        cheap=True,
    ),
    "extract": Target(
        ("hpo/reports/_extract.py",),
        ("tests/reports/test_study_report.py", "tests/reports/test_campaign_report.py"),
        cheap=False,
        note="218 mutants; the campaign tests run `hpo compare` (~2 min): ~4 h on 2 cores",
    ),
}


def _config(target: Target, tests: list[str]) -> str:
    def toml_list(items: list[str] | tuple[str, ...]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    # Fixed order: a mutant's verdict must not depend on which test ran first.
    args = ["-p", "no:randomly", "-q", "-p", "no:cacheprovider", *target.pytest_args]
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["hpo"]\n'
        f"only_mutate = {toml_list(target.modules)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        f"pytest_add_cli_args = {toml_list(args)}\n"
        "use_git_change_detection = false\n"
    )


def _workspace(root: Path, target: Target, tests: list[str], ref: str | None) -> None:
    """A copy of the package and tests (of the working tree, or of git ``ref``),
    with this target's mutmut settings."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
    shutil.copytree(REPO / "hpo", root / "hpo", ignore=ignore)
    if ref is None:
        shutil.copytree(REPO / "tests", root / "tests", ignore=ignore)
    else:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", ref, "tests"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    text = (REPO / "pyproject.toml").read_text()
    if "[tool.mutmut]" in text:
        text = text[: text.index("[tool.mutmut]")]
    (root / "pyproject.toml").write_text(text + _config(target, tests))


@dataclass
class Score:
    name: str
    counts: dict[str, int]
    seconds: float
    survivors: list[str]

    @property
    def score(self) -> float:
        total = self.counts.get("total", 0) - self.counts.get("skipped", 0)
        killed = self.counts.get("killed", 0) + self.counts.get("timeout", 0)
        return killed / total if total else float("nan")


def _exists(path: str, ref: str | None) -> bool:
    path = path.split("::")[0]  # a test file, or one test in it
    if ref is None:
        return (REPO / path).exists()
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{ref}:{path}"], capture_output=True
    )
    return found.returncode == 0


def run_target(
    name: str,
    target: Target,
    children: int,
    diffs: list[str] | None = None,
    ref: str | None = None,
) -> Score:
    tests = [t for t in target.tests if _exists(t, ref)]
    missing = sorted(set(target.tests) - set(tests))
    if missing:
        print(f"# {name}: test files not found, skipped: {', '.join(missing)}", file=sys.stderr)
    if not tests:  # mutmut would run the whole suite
        return Score(name, {}, 0.0, [])
    mutmut = Path(sys.executable).with_name("mutmut")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    with tempfile.TemporaryDirectory(prefix=f"hpo-mutmut-{name}-") as tmp:
        root = Path(tmp)
        _workspace(root, target, tests, ref)
        t0 = time.perf_counter()
        run = subprocess.run(
            [str(mutmut), "run", "--max-children", str(children)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - t0
        if run.returncode != 0:
            tail = (run.stdout + run.stderr)[-3000:]
            raise SystemExit(f"mutmut failed on {name} (exit {run.returncode}):\n{tail}")
        subprocess.run(
            [str(mutmut), "export-cicd-stats"], cwd=root, env=env, check=True, capture_output=True
        )
        counts = json.loads((root / "mutants" / "mutmut-cicd-stats.json").read_text())
        listing = subprocess.run(
            [str(mutmut), "results"], cwd=root, env=env, capture_output=True, text=True
        ).stdout
        survivors = [
            line.split(":")[0].strip()
            for line in listing.splitlines()
            if line.strip().endswith(("survived", "no tests"))
        ]
        for mutant in survivors if diffs is not None else ():
            shown = subprocess.run(
                [str(mutmut), "show", mutant], cwd=root, env=env, capture_output=True, text=True
            ).stdout
            diffs.append(f"## {name}: {mutant}\n{shown}")  # type: ignore[union-attr]
    return Score(name, counts, seconds, survivors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", help=f"any of: {', '.join(TARGETS)}")
    parser.add_argument("--all", action="store_true", help="every target, slow ones included")
    parser.add_argument("--list", action="store_true", help="show the targets and exit")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutant runs")
    parser.add_argument("--survivors", type=Path, help="write surviving mutants' diffs here")
    parser.add_argument(
        "--tests-from", metavar="REF", help="the tests of git REF (e.g. HEAD) on today's code"
    )
    args = parser.parse_args()
    if args.list:
        for name, t in TARGETS.items():
            speed = "cheap" if t.cheap else f"slow: {t.note}"
            print(f"{name:10} {', '.join(t.modules)}")
            print(f"{'':10} tests: {', '.join(t.tests)} ({speed})")
        return
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; allowed: {', '.join(TARGETS)}")
    chosen = args.targets or [n for n, t in TARGETS.items() if args.all or t.cheap]
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"mutmut {_mutmut_version()}, {args.max_children} parallel mutant runs, "
        f"tests of {args.tests_from or 'the working tree'}"
    )
    diffs: list[str] = []
    rows = []
    for name in chosen:
        keep = diffs if args.survivors is not None else None
        score = run_target(name, TARGETS[name], args.max_children, keep, args.tests_from)
        rows.append(score)
        c = score.counts
        if not c:
            print(f"{name:10} no test file exists: nothing guards it", flush=True)
            continue
        print(
            f"{name:10} mutants {c['total']:4}  killed {c['killed']:4}  survived "
            f"{c['survived']:4}  no tests {c['no_tests']:4}  timeout {c['timeout']:3}  "
            f"score {score.score:6.1%}  ({score.seconds:.0f} s)",
            flush=True,
        )
    if args.survivors is not None:
        args.survivors.write_text("\n".join(diffs))
        print(f"# surviving mutants' diffs: {args.survivors}")


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


if __name__ == "__main__":
    main()
