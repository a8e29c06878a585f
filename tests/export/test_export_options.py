"""``hpo export --trial N --train-on train+val``, and the warning on a second use of the
test split, on a private copy of the session's trained image study."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest

from hpo import keys
from hpo.export import METADATA_FILE, MODEL_FILE
from tests.helpers import run_cli
from tests.image_study import ImageStudy

pytestmark = pytest.mark.slow

FAST = ["--bootstrap", "0", "--gradcam-per-class", "0", "--lime-samples", "0"]


def one_line(text: str) -> str:
    return " ".join(text.split())  # the console wraps long lines


def optimizer_steps(folder: Path) -> int:
    """Optimizer steps stored in the exported model: epochs x batches per epoch."""
    import keras

    import hpo.models  # noqa: F401  registers the preprocessing layer

    model = keras.saving.load_model(folder / MODEL_FILE, compile=True, safe_mode=True)
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def test_trial_train_on_and_the_second_use_warning(
    image_study: ImageStudy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    optuna.copy_study(
        from_study_name=image_study.name, from_storage=image_study.url, to_storage=url
    )
    study = optuna.load_study(study_name=image_study.name, storage=url)
    study.set_user_attr(keys.STUDY_TEST_USED, [])  # the copy starts unused
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value or 0.0)
    other = next((t for t in complete if t.number != best.number), best)
    base = ["export", image_study.name, "--storage", url, *FAST]

    # --trial N --train-on train+val
    first = tmp_path / "first"
    args = [*base, "--out", str(first), "--trial", str(other.number), "--train-on", "train+val"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert f"trial {other.number} retrained on train+val" in one_line(out)
    assert "the test split was used" not in one_line(out), "no earlier use to warn about"
    meta = json.loads((first / METADATA_FILE).read_text())
    assert (meta["trial"], meta["train_on"], meta["test_used_before"]) == (
        other.number,
        "train+val",
        0,
    )
    assert meta["validation"] is None  # trained on validation: its score would mean nothing
    counts = meta["dataset"]["split_counts"]
    n_train, n_val = (sum(counts[s].values()) for s in ("train", "val"))
    epochs = meta["training"]["epochs_run"]
    batch = int(meta["params"]["batch_size"])
    assert optimizer_steps(first) == epochs * math.ceil((n_train + n_val) / batch), (
        f"{optimizer_steps(first)} optimizer steps: not {epochs} epochs over "
        f"train + val ({n_train} + {n_val} images) in batches of {batch}"
    )

    # The best trial, on train: the second use of the test split is pointed out.
    second = tmp_path / "second"
    code, out, err = run_cli(capsys, *base, "--out", str(second))
    assert code == 0, err
    said = one_line(out)
    assert f"trial {best.number} retrained on train," in said
    assert "note: the test split was used 1 time(s) before" in said, said
    assert f"trial {other.number}); picking among models by test score" in said
    meta = json.loads((second / METADATA_FILE).read_text())
    assert (meta["trial"], meta["train_on"], meta["test_used_before"]) == (best.number, "train", 1)
    assert meta["validation"] is not None
    assert optimizer_steps(second) == epochs * math.ceil(n_train / batch)

    uses = optuna.load_study(study_name=image_study.name, storage=url).user_attrs[
        keys.STUDY_TEST_USED
    ]
    assert [(u["trial"], u["out"]) for u in uses] == [
        (other.number, str(first.resolve())),
        (best.number, str(second.resolve())),
    ]
