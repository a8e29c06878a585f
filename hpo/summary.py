"""Read-only views of studies for ``hpo studies``, ``status`` and ``best``.

Plain dicts out, computed from the storage alone; no TensorFlow. The facts
(states, best trial, its metrics, the objective metric) come from
``hpo.facts``, the same reads the HTML reports make.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from hpo import keys
from hpo.errors import HpoError
from hpo.facts import config_of, label_of, objective_metric, section, study_facts
from hpo.results import best_trial

if TYPE_CHECKING:
    import optuna

best_trial_or_none = best_trial
"""Kept for callers of the old name: the best complete trial, direction-aware."""


def metric_label(study: optuna.Study) -> str:
    """How to name the study's objective (``"macro F1"``, ``"accuracy"``...)."""
    return label_of(objective_metric(config_of(study)))


def list_studies(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    import optuna

    rows: list[dict[str, Any]] = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        facts = study_facts(optuna.load_study(study_name=s.study_name, storage=storage))
        rows.append(
            {
                "name": s.study_name,
                "complete": facts.states.get(TrialState.COMPLETE.name, 0),
                "pruned": facts.states.get(TrialState.PRUNED.name, 0),
                "fail": facts.states.get(TrialState.FAIL.name, 0),
                "running": facts.states.get(TrialState.RUNNING.name, 0),
                "waiting": facts.states.get(TrialState.WAITING.name, 0),
                "best_value": facts.best.value if facts.best else None,
                "metric": facts.metric,
                "sampler": section(facts.config, "sampler").get("name"),
                "backbone": section(facts.config, "model").get("backbone"),
                "created": s.datetime_start.isoformat() if s.datetime_start else None,
            }
        )
    return sorted(rows, key=lambda r: r["name"])


def study_status(study: optuna.Study) -> dict[str, Any]:
    facts = study_facts(study)
    best = facts.best
    running = []
    for t in facts.trials:
        if t.state != TrialState.RUNNING:
            continue
        steps = sorted(t.intermediate_values)
        running.append(
            {
                "number": t.number,
                "worker": t.user_attrs.get(keys.WORKER),
                "device": t.user_attrs.get(keys.DEVICE),
                "epoch": steps[-1] + 1 if steps else None,
                # the last reported objective value; the key predates objective.metric
                "last_f1": t.intermediate_values[steps[-1]] if steps else None,
                "started": t.datetime_start,
            }
        )
    return {
        "name": study.study_name,
        "n_trials": len(facts.trials),
        "states": facts.states,
        "metric": facts.metric,
        "metric_label": facts.metric_label,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
        "train_seconds": sum(facts.train_seconds),
        "running": running,
        "sampler": section(facts.config, "sampler").get("name", "-"),
        "pruner": section(facts.config, "pruner").get("name", "-"),
        "dataset": study.user_attrs.get(keys.STUDY_FINGERPRINT),
        "test_used": study.user_attrs.get(keys.STUDY_TEST_USED),
        "executor": study.user_attrs.get(keys.STUDY_EXECUTOR),  # engine and job id of the launch
        "failed": failed_trials(facts.trials),
    }


FAILED_SHOWN = 5


def failed_trials(
    trials: list[optuna.trial.FrozenTrial], last: int = FAILED_SHOWN
) -> list[dict[str, Any]]:
    """The last few failed trials with the reason stored on each, oldest first.

    A count alone ("fail 1") leaves the user to guess between a crash, an
    out-of-memory, a timeout and a Ctrl-C that re-queued the trial.
    """
    failed = [t for t in trials if t.state == TrialState.FAIL]
    return [
        {
            "number": t.number,
            "reason": str(t.user_attrs.get(keys.FAIL_REASON) or "no reason stored"),
            "finished": t.datetime_complete,
        }
        for t in sorted(failed, key=lambda t: t.number)[-last:]
    ]


def best_summary(study: optuna.Study) -> dict[str, Any]:
    facts = study_facts(study)
    best = facts.best
    if best is None:
        from hpo.results import no_best_reason

        raise HpoError(f"study '{study.study_name}': {no_best_reason(study)}")
    fp = study.user_attrs.get(keys.STUDY_FINGERPRINT) or {}
    names = fp.get("class_names") or []
    support = ((fp.get("split_counts") or {}).get("val")) or {}
    rows = []
    for i, f1 in enumerate(best.f1_per_class):
        name = names[i] if i < len(names) else str(i)
        rows.append({"class": name, "f1": f1, "support": support.get(name)})
    return {
        "study": study.study_name,
        "metric": facts.metric,
        "metric_label": facts.metric_label,
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "params_full": best.params_full if best.params_full is not None else best.params,
        "metrics": best.metrics,
        "f1_per_class": rows,
        "confusion_matrix": best.confusion,
        "epochs": best.epochs,
        "train_seconds": best.train_seconds,
    }
