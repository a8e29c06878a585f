"""``hpo export`` and ``hpo predict`` end to end, on the session's trained image study."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import optuna
import pytest

from hpo import keys
from hpo.export import CARD_FILE, METADATA_FILE, MODEL_FILE, SPLITS_FILE
from tests.helpers import hpo, run_cli, write
from tests.image_study import N_CLASSES, SIZE, ImageStudy, class_name

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(image_study: ImageStudy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "model"
    result = hpo(
        "export",
        image_study.name,
        "--storage",
        image_study.url,
        "--out",
        str(out),
        "--bootstrap",
        "200",
        "--gradcam-per-class",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert "tested once on" in result.stdout and "model sha256" in result.stdout
    return out


def test_export_writes_model_metadata_and_card(exported: Path, image_study: ImageStudy) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        [MODEL_FILE, METADATA_FILE, CARD_FILE, SPLITS_FILE]
    )
    meta = json.loads((exported / METADATA_FILE).read_text())
    study = optuna.load_study(study_name=image_study.name, storage=image_study.url)
    assert meta["trial"] == study.best_trial.number
    assert meta["class_names"] == [class_name(k) for k in range(N_CLASSES)]
    assert meta["dataset"]["sha256"] == study.user_attrs[keys.STUDY_FINGERPRINT]["sha256"]
    assert meta["params"] == study.best_trial.user_attrs[keys.PARAMS_FULL]
    assert set(meta["versions"]) >= {"hpo", "keras", "tensorflow", "optuna"}
    m = meta["metrics"]
    for key in ("macro_f1", "accuracy", "balanced_accuracy", "roc_auc"):
        est = m["overall"][key]
        low, high = est["ci"]
        assert low <= est["value"] <= high, key
    assert len(m["per_class"]) == N_CLASSES
    for row in m["per_class"]:
        assert {"class", "f1", "precision", "recall", "support"} <= set(row)
    confusion = np.asarray(m["confusion_matrix"])
    assert confusion.shape == (N_CLASSES, N_CLASSES)
    n_test = sum(meta["dataset"]["split_counts"]["test"].values())
    assert confusion.sum() == m["n_test"] == n_test

    card = (exported / CARD_FILE).read_text()
    for section in ("confusion", "roc", "perclass", "reliability", "gradcam"):
        assert f'id="{section}"' in card, section
    figures = re.findall(
        r'<script type="application/json" id="data-\d+">(.*?)</script>', card, re.S
    )
    assert len(figures) == 4  # confusion, ROC, per class, reliability
    for fig in figures:
        assert json.loads(fig)["data"], "a figure without traces"
    assert card.count('<figure class="cam">') == N_CLASSES  # 1 Grad-CAM per class
    assert card.count('alt="LIME of ') == N_CLASSES  # LIME beside each, by default
    assert "digit <0>" not in card and "digit &lt;0&gt;" in card  # names escaped
    assert "<script src=" not in card  # self-contained: plotly.js inlined


def test_export_records_the_test_use_and_the_report_says_so(
    exported: Path, image_study: ImageStudy, tmp_path: Path
) -> None:
    study = optuna.load_study(study_name=image_study.name, storage=image_study.url)
    uses = study.user_attrs[keys.STUDY_TEST_USED]
    assert [u["out"] for u in uses] == [str(exported.resolve())]
    assert uses[0]["trial"] == study.best_trial.number
    page = tmp_path / "report.html"
    result = hpo("report", image_study.name, "--storage", image_study.url, "--out", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    number = study.best_trial.number
    assert "test split has been used by export" in html and f"(trial {number})" in html


def test_predict_matches_the_model_before_saving(
    exported: Path, image_study: ImageStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    import keras

    from hpo.export import collect_images, decode_images, predict_files
    from hpo.models import build_model  # noqa: F401  registers the preprocessing layer

    folder = image_study.data / class_name(2)
    result = hpo("predict", str(exported), str(folder), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    files = collect_images([folder])
    assert [r["file"] for r in rows] == [str(f) for f in files]
    for row in rows:
        assert abs(sum(row["probabilities"].values()) - 1.0) < 1e-4
        assert row["predicted"] == max(row["probabilities"], key=row["probabilities"].get)

    # Same numbers as the in-process API and as Keras loading the file itself.
    api = predict_files(exported, [folder])
    direct = keras.saving.load_model(exported / MODEL_FILE, compile=False).predict(
        decode_images(files, api_shape(exported)), verbose=0
    )
    np.testing.assert_allclose(api.proba, direct, atol=1e-5)
    cli = np.array([[r["probabilities"][c] for c in api.class_names] for r in rows])
    np.testing.assert_allclose(cli, api.proba, atol=1e-5)
    assert (api.proba.argmax(axis=1) == 2).mean() >= 0.5  # it learned something

    code, out, err = run_cli(
        capsys, "predict", str(exported), str(files[0]), str(files[1]), "--format", "csv"
    )
    assert code == 0, err
    parsed = list(csv.reader(io.StringIO(out)))
    assert parsed[0] == ["file", "predicted", "in_split", *api.class_names] and len(parsed) == 3


def api_shape(folder: Path) -> tuple[int, int, int]:
    shape = json.loads((folder / METADATA_FILE).read_text())["input_shape"]
    return (shape[0], shape[1], shape[2])


def test_predict_refuses_a_modified_model(
    exported: Path, image_study: ImageStudy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    image = str(next((image_study.data / class_name(0)).iterdir()))
    # Rewrite the zip with one byte of a weight changed: still a valid .keras file.
    src = copy / MODEL_FILE
    with zipfile.ZipFile(src) as zin:
        members = {name: zin.read(name) for name in zin.namelist()}
    weights = next(n for n in members if n.endswith(".h5"))
    blob = bytearray(members[weights])
    blob[-100] ^= 0xFF
    members[weights] = bytes(blob)
    with zipfile.ZipFile(src, "w") as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    code, _, err = run_cli(capsys, "predict", str(copy), image)
    assert code == 2
    assert "does not match" in err and "refused" in err
    assert "Traceback" not in err

    # A foreign model whose sha256 was written into model.json is loaded in
    # safe mode: a Lambda layer (arbitrary code) is refused.
    import keras

    inp = keras.Input((SIZE, SIZE, 1))
    out = keras.layers.Dense(N_CLASSES, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(lambda t: t * 2.0)(inp))
    )
    keras.Model(inp, out).save(src)
    from hpo.export import sha256_file

    meta = json.loads((copy / METADATA_FILE).read_text())
    meta["model_sha256"] = sha256_file(src)
    (copy / METADATA_FILE).write_text(json.dumps(meta))
    code, _, err = run_cli(capsys, "predict", str(copy), image)
    assert code == 2
    assert "safe mode" in err and "Traceback" not in err


def test_export_refuses_bad_requests_before_training(
    exported: Path, image_study: ImageStudy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["export", image_study.name, "--storage", image_study.url]
    cases = [
        ([*base, "--out", str(exported)], "already holds an export"),
        ([*base, "--out", str(tmp_path / "a"), "--trial", "99"], "has no trial 99"),
        ([*base, "--out", str(tmp_path / "b"), "--train-on", "all"], "--train-on"),
        (["export", "nope", "--storage", image_study.url, "--out", str(tmp_path / "c")], "nope"),
    ]
    for args, message in cases:
        code, _, err = run_cli(capsys, *args)  # in this process: no start-up per refusal
        assert code == 2, (args, err)
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    study = optuna.load_study(study_name=image_study.name, storage=image_study.url)
    assert len(study.user_attrs[keys.STUDY_TEST_USED]) == 1  # refusals used no test data


def test_export_refuses_changed_data(
    image_study: ImageStudy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(image_study.data, data)
    from PIL import Image

    first = sorted((data / class_name(1)).iterdir())[0]
    Image.new("L", (SIZE, SIZE), 255).save(first)
    # A copy of the study whose study file and trial recipes point at the changed folder.
    source = optuna.load_study(study_name=image_study.name, storage=image_study.url)
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    copy = optuna.create_study(study_name=image_study.name, storage=url, direction="maximize")
    for key, value in source.user_attrs.items():
        copy.set_user_attr(key, value)
    config = dict(source.user_attrs[keys.STUDY_CONFIG])
    copy.set_user_attr(
        keys.STUDY_CONFIG, {**config, "dataset": {**config["dataset"], "path": str(data)}}
    )
    for t in source.trials:
        attrs = dict(t.user_attrs)
        if keys.RECIPE in attrs:
            recipe = dict(attrs[keys.RECIPE])
            attrs[keys.RECIPE] = {**recipe, "dataset": {**recipe["dataset"], "path": str(data)}}
        copy.add_trial(
            optuna.trial.create_trial(
                params=t.params, distributions=t.distributions, value=t.value, user_attrs=attrs
            )
        )
    code, out, err = run_cli(
        capsys, "export", image_study.name, "--storage", url, "--out", str(tmp_path / "m")
    )
    assert code == 2, out
    assert "dataset changed" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_export_refuses_a_benchmark_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = {"study": {"name": "b"}, "objective": {"benchmark": "branin"}, "budget": {"trials": 1}}
    code, _, err = run_cli(capsys, "run", str(write(tmp_path, study)), "--storage", url, "-q")
    assert code == 0, err
    code, _, err = run_cli(capsys, "export", "b", "--storage", url, "--out", str(tmp_path / "m"))
    assert code == 2
    assert "is a benchmark study: it trained no model to export" in err
    assert "Traceback" not in err and not (tmp_path / "m").exists()
