"""Temperature scaling and ECE: on synthetic logits, then in a real calibrated export."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import optuna
import pytest

from hpo import keys
from hpo.config import validate_config
from hpo.data import load_dataset
from hpo.export import CARD_FILE, METADATA_FILE, MODEL_FILE
from hpo.export._calibration import (
    N_BINS,
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    log_probabilities,
    reliability,
)
from tests.helpers import run_cli
from tests.image_study import ImageStudy, class_name


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("known", [0.6, 2.5])
def test_fit_recovers_a_known_temperature(known: float) -> None:
    """Labels drawn from softmax(z); the model reports softmax(known * z)."""
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, size=(20000, 4))
    p_true = _softmax(z)
    y = np.array([rng.choice(4, p=row) for row in p_true])
    reported = _softmax(z * known)  # known > 1: over-confident, < 1: under-confident
    fitted = fit_temperature(log_probabilities(reported), y)
    assert fitted == pytest.approx(known, rel=0.05)
    # Scaling back gives calibrated probabilities: the ECE drops to sampling noise.
    assert expected_calibration_error(apply_temperature(reported, fitted), y) < 0.015
    assert expected_calibration_error(reported, y) > 0.05


def test_apply_temperature_is_softmax_of_log_p_over_t() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.05, 0.05, 0.9], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(apply_temperature(p, 1.0), p, atol=1e-9)
    want = _softmax(np.log(np.clip(p, 1e-12, 1.0)) / 2.0)
    np.testing.assert_allclose(apply_temperature(p, 2.0), want, atol=1e-12)
    assert (apply_temperature(p, 3.0).argmax(axis=1) == p.argmax(axis=1)).all()


def test_ece_on_known_cases() -> None:
    y = np.array([0, 0, 1, 1])
    # Certain and right: perfectly calibrated.
    assert expected_calibration_error(np.eye(2)[y], y) == 0.0
    # Always 0.9 on class 0, right half the time: |0.5 - 0.9| = 0.4.
    p = np.tile([0.9, 0.1], (4, 1))
    assert expected_calibration_error(p, y) == pytest.approx(0.4)
    # Two bins: 0.9 (right, right) and 0.6 (right, wrong):
    # 0.5 * |1 - 0.9| + 0.5 * |0.5 - 0.6| = 0.1.
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 0, 0, 0])
    rel = reliability(p, y)
    assert rel.ece == pytest.approx(0.1)
    assert len(rel.count) == N_BINS == 15 and sum(rel.count) == 4
    assert rel.edges[0] == 0.0 and rel.edges[-1] == 1.0
    # A confidence of exactly 1 lands in the last bin, not outside.
    assert reliability(np.array([[1.0, 0.0]]), np.array([0])).count[-1] == 1


def test_calibrate_without_validation_only_measures() -> None:
    p = np.tile([0.9, 0.1], (4, 1))
    cal = calibrate(None, None, p, np.array([0, 0, 1, 1]))
    assert cal.temperature is None and cal.after is None
    assert cal.to_dict()["ece"] == pytest.approx(0.4)


# --------------------------------------------------------------------------
# a real export


@pytest.fixture(scope="module")
def calibrated(image_study: ImageStudy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hpo.cli import main

    root = tmp_path_factory.mktemp("calibrated")
    url = f"sqlite:///{root / 'copy.db'}"
    optuna.copy_study(
        from_study_name=image_study.name, from_storage=image_study.url, to_storage=url
    )
    out = root / "model"
    args = ["export", image_study.name, "--storage", url, "--out", str(out), "--bootstrap", "0"]
    try:
        main([*args, "--gradcam-per-class", "0", "--calibrate"])
    except SystemExit as exc:
        assert not exc.code
    return out


@pytest.mark.slow
def test_calibrated_export_stores_t_fitted_on_validation_only(
    calibrated: Path, image_study: ImageStudy
) -> None:
    import keras

    from hpo.models import build_model  # noqa: F401  registers the preprocessing layer
    from hpo.training import configure_backend, predict_proba

    meta = json.loads((calibrated / METADATA_FILE).read_text())
    t = meta["temperature"]
    assert isinstance(t, float) and t > 0
    cal = meta["calibration"]
    assert cal["temperature"] == t and cal["fitted_on"] == "val" and cal["bins"] == 15

    # The stored T is the fit on the validation predictions, computed here independently.
    study = optuna.load_study(study_name=image_study.name, storage=image_study.url)
    dataset = load_dataset(validate_config(study.user_attrs[keys.STUDY_CONFIG]).dataset)
    configure_backend()
    model = keras.saving.load_model(calibrated / MODEL_FILE, compile=False)
    val_proba = predict_proba(model, dataset.val.x)
    assert cal["n_validation"] == len(dataset.val)
    assert t == pytest.approx(
        fit_temperature(log_probabilities(val_proba), dataset.val.y), rel=1e-3
    )
    # ...and not a fit that saw the test split.
    test_proba = predict_proba(model, dataset.test.x)
    on_test = fit_temperature(log_probabilities(test_proba), dataset.test.y)
    assert abs(on_test - t) > 1e-3 * t
    # The card's figures are the test split's, before and after.
    assert cal["ece"] == pytest.approx(expected_calibration_error(test_proba, dataset.test.y))
    after = apply_temperature(test_proba, t)
    assert cal["ece_after"] == pytest.approx(expected_calibration_error(after, dataset.test.y))

    card = html.unescape((calibrated / CARD_FILE).read_text())
    assert (
        'id="reliability"' in card
        and "Reliability diagram (test split, 15 equal-width bins)" in card
    )
    assert re.search(rf"after temperature scaling, T = {t:.3f}", card)
    assert f"{cal['ece']:.4f}" in card and f"{cal['ece_after']:.4f}" in card


@pytest.mark.slow
def test_predict_applies_the_stored_temperature(
    calibrated: Path, image_study: ImageStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    import keras

    from hpo.export import collect_images, decode_images
    from hpo.models import build_model  # noqa: F401

    meta = json.loads((calibrated / METADATA_FILE).read_text())
    folder = image_study.data / class_name(1)
    code, out, err = run_cli(capsys, "predict", str(calibrated), str(folder), "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert all(
        r["calibration"] == f"temperature scaling, T = {meta['temperature']:.6g}" for r in rows
    )
    files = collect_images([folder])
    raw = keras.saving.load_model(calibrated / MODEL_FILE, compile=False).predict(
        decode_images(files, tuple(meta["input_shape"])), verbose=0
    )
    got = np.array([[r["probabilities"][c] for c in meta["class_names"]] for r in rows])
    want = _softmax(np.log(np.clip(raw.astype(np.float64), 1e-12, 1.0)) / meta["temperature"])
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert not np.allclose(got, raw, atol=1e-3)  # T made a difference


@pytest.mark.slow
def test_calibrate_is_refused_with_train_plus_val(
    image_study: ImageStudy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    code, _, err = run_cli(
        capsys,
        *("export", image_study.name, "--storage", image_study.url, "--out", str(out)),
        *("--train-on", "train+val", "--calibrate"),
    )
    assert code == 2 and "--calibrate" in err and "validation split" in err
    assert "Traceback" not in err and not out.exists()
    assert len(err.strip().splitlines()) == 1


def test_card_draws_the_reliability_diagram_from_the_bins() -> None:
    import json as _json

    from hpo.export._card import render_card
    from tests.export.card_inputs import gradcam, metadata, sample_metrics

    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 0, 0, 0])
    cal = calibrate(p, y, p, y)
    page = render_card(
        metadata=metadata(), metrics=sample_metrics(), gradcam=gradcam(), calibration=cal
    )
    assert 'id="reliability"' in page and 'id="ece"' in page
    blobs = re.findall(r'<script type="application/json" id="data-\d+">(.*?)</script>', page, re.S)
    figures = [_json.loads(html.unescape(b)) for b in blobs]
    bars = [t for f in figures for t in f["data"] if t.get("type") == "bar" and "ECE" in t["name"]]
    assert len(bars) == 2  # before and after
    assert bars[0]["y"][13] == pytest.approx(1.0) and bars[0]["y"][8] == pytest.approx(0.5)
