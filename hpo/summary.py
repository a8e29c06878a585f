"""Read-only views of studies for ``hpo studies``, ``status`` and ``best``.

Plain dicts out, computed from the storage alone; no TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from hpo import keys
from hpo.errors import HpoError

if TYPE_CHECKING:
    import optuna


def best_trial_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    return max(complete, key=lambda t: t.value if t.value is not None else float("-inf"))


def list_studies(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    import optuna

    rows: list[dict[str, Any]] = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        counts = {state: 0 for state in TrialState}
        best: float | None = None
        for t in study.get_trials(deepcopy=False):
            counts[t.state] += 1
            if t.state == TrialState.COMPLETE and t.value is not None:
                best = t.value if best is None else max(best, t.value)
        cfg = s.user_attrs.get(keys.STUDY_CONFIG) or {}
        rows.append(
            {
                "name": s.study_name,
                "complete": counts[TrialState.COMPLETE],
                "pruned": counts[TrialState.PRUNED],
                "fail": counts[TrialState.FAIL],
                "running": counts[TrialState.RUNNING],
                "waiting": counts[TrialState.WAITING],
                "best_value": best,
                "sampler": (cfg.get("sampler") or {}).get("name"),
                "backbone": (cfg.get("model") or {}).get("backbone"),
                "created": s.datetime_start.isoformat() if s.datetime_start else None,
            }
        )
    return sorted(rows, key=lambda r: r["name"])


def study_status(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    best = best_trial_or_none(study)
    running = []
    for t in trials:
        if t.state != TrialState.RUNNING:
            continue
        steps = sorted(t.intermediate_values)
        running.append(
            {
                "number": t.number,
                "worker": t.user_attrs.get(keys.WORKER),
                "device": t.user_attrs.get(keys.DEVICE),
                "epoch": steps[-1] + 1 if steps else None,
                "last_f1": t.intermediate_values[steps[-1]] if steps else None,
                "started": t.datetime_start,
            }
        )
    cfg = study.user_attrs.get(keys.STUDY_CONFIG) or {}
    return {
        "name": study.study_name,
        "n_trials": len(trials),
        "states": states,
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
        "train_seconds": sum(float(t.user_attrs.get(keys.TRAIN_SECONDS, 0.0)) for t in trials),
        "running": running,
        "sampler": (cfg.get("sampler") or {}).get("name", "-"),
        "pruner": (cfg.get("pruner") or {}).get("name", "-"),
        "dataset": study.user_attrs.get(keys.STUDY_FINGERPRINT),
        "test_used": study.user_attrs.get(keys.STUDY_TEST_USED),
    }


def best_summary(study: optuna.Study) -> dict[str, Any]:
    best = best_trial_or_none(study)
    if best is None:
        raise HpoError(f"study '{study.study_name}' has no completed trial yet")
    fp = study.user_attrs.get(keys.STUDY_FINGERPRINT) or {}
    names = fp.get("class_names") or []
    support = ((fp.get("split_counts") or {}).get("val")) or {}
    per_class = best.user_attrs.get(keys.F1_PER_CLASS) or []
    rows = []
    for i, f1 in enumerate(per_class):
        name = names[i] if i < len(names) else str(i)
        rows.append({"class": name, "f1": f1, "support": support.get(name)})
    return {
        "study": study.study_name,
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "params_full": best.user_attrs.get(keys.PARAMS_FULL, best.params),
        "metrics": best.user_attrs.get(keys.METRICS, {}),
        "f1_per_class": rows,
        "confusion_matrix": best.user_attrs.get(keys.CONFUSION),
        "epochs": best.user_attrs.get(keys.EPOCHS),
        "train_seconds": best.user_attrs.get(keys.TRAIN_SECONDS),
    }
