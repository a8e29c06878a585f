"""A wheel of hpo ships every page template, and pages render from an installed copy.

Editable installs read templates from the source tree, so a template folder
missing from ``[tool.setuptools.package-data]`` only shows after
``pip install .``: ``hpo export`` then fails writing its model card. Building
the wheel and installing it (without dependencies) into a folder is quick;
a fresh virtual environment with TensorFlow would not be.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")

pytestmark = pytest.mark.slow

SMOKE = textwrap.dedent(
    """
    import json, re, sys
    from pathlib import Path

    site, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    import hpo, hpo.html
    assert Path(hpo.__file__).resolve().is_relative_to(site), hpo.__file__

    from hpo.export import render_card
    from hpo.reports import write_study_report
    from tests.export.card_inputs import gradcam, metadata, sample_metrics
    from tests.reports.factories import build_study

    card = render_card(metadata=metadata(), metrics=sample_metrics(), gradcam=gradcam())
    assert "0.812 [0.751, 0.870]" in card and "glioma &lt;b&gt;" in card, "card"

    url = f"sqlite:///{out / 'hpo.db'}"
    study = build_study(url, "wheel", n_trials=6)
    best = max((t for t in study.trials if t.value is not None), key=lambda t: t.value)
    html = write_study_report(url, "wheel", out / "wheel.html").read_text()
    assert f"<b>{best.value:.4f}</b><span>best macro F1 (trial {best.number})</span>" in html
    assert "<b>6</b><span>trials</span>" in html
    template = hpo.html.environment().get_template("hpo.html/base.html.j2")
    print(json.dumps({"hpo": hpo.__file__, "base": template.filename}))
    """
)


def _templates() -> list[str]:
    return sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "hpo").rglob("*")
        if p.is_file() and p.name.endswith(TEMPLATE_SUFFIXES) and "__pycache__" not in p.parts
    )


def _pip(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy, so the shared working tree gets no build/ or egg-info."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "hpo", src / "hpo", ignore=shutil.ignore_patterns("__pycache__"))
    _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), ".", cwd=src)
    (built,) = (tmp / "dist").glob("hpo-*.whl")
    return built


def test_wheel_ships_every_template(wheel: Path) -> None:
    templates = _templates()
    assert {t.split("/")[1] for t in templates} >= {"html", "reports", "export"}
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [t for t in templates if t not in names] == []


def test_installed_wheel_renders_card_and_report(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    _pip(
        "install",
        "--no-deps",
        "--no-compile",
        "-q",
        "--target",
        str(site),
        str(wheel),
        cwd=tmp_path,
    )
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "smoke.py"
    script.write_text(SMOKE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    env.pop("HPO_STORAGE", None)
    result = subprocess.run(
        [sys.executable, str(script), str(site), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(shown["hpo"]).resolve().is_relative_to(site.resolve())
    assert Path(shown["base"]).resolve().is_relative_to(site.resolve())
