"""``hpo audit`` through the entry point: JSON schema, the HTML page in Chromium, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.audit.planted import make_folder, make_npz
from tests.helpers import run_cli, write
from tests.reports.test_browser import ARGS, CHROMIUM, _chromium_or_skip, render_page

TOP = {
    "schema",
    "target",
    "source",
    "class_names",
    "given_splits",
    "settings",
    "summary",
    "counts",
    "groups",
    "odd_images",
    "warnings",
    "seconds",
}
SUMMARY = {
    "images",
    "classes",
    "exact_groups",
    "exact_copies",
    "near_groups",
    "near_images",
    "cross_split_groups",
    "cross_split_images",
    "label_conflicts",
    "within_class_groups",
    "odd_images",
    "odd_by_reason",
}
GROUP = {
    "kind",
    "size",
    "splits",
    "classes",
    "cross_split",
    "label_conflict",
    "same_file_bytes",
    "members",
}
MEMBER = {"split", "class", "id", "distance", "correlation", "file_sha256"}


def test_json_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planted = make_folder(tmp_path / "mri")
    code, out, err = run_cli(capsys, "audit", str(tmp_path / "mri"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == TOP
    assert data["schema"] == "hpo.audit/1"
    assert set(data["summary"]) == SUMMARY
    assert data["settings"]["near_threshold"] == 8 and data["settings"]["bands"] == 9
    assert data["summary"]["images"] == sum(sum(c.values()) for c in data["counts"].values())
    assert len(data["groups"]) == len(planted.groups)
    for group in data["groups"]:
        assert set(group) == GROUP and group["kind"] in ("exact", "near")
        assert group["size"] == len(group["members"]) >= 2
        for member in group["members"]:
            assert set(member) == MEMBER
            assert isinstance(member["distance"], int) and len(member["file_sha256"]) == 64
    for odd in data["odd_images"]:
        assert set(odd) == {"split", "class", "id", "reasons"}
    assert not list(Path.cwd().glob("reports/audit-mri*.html")), "--json alone writes no page"
    code, out, _ = run_cli(
        capsys, "audit", str(tmp_path / "mri"), "--json", "--near-threshold", "0"
    )
    strict = json.loads(out)
    assert strict["settings"]["bands"] == 4
    assert strict["summary"]["near_groups"] < data["summary"]["near_groups"]
    near = [g for g in strict["groups"] if g["kind"] == "near"]
    assert all(m["distance"] == 0 for g in near for m in g["members"])
    assert strict["summary"]["exact_groups"] == data["summary"]["exact_groups"]


def test_page_and_summary_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_npz(tmp_path / "scans.npz")
    out = tmp_path / "audit.html"
    code, stdout, err = run_cli(capsys, "audit", str(tmp_path / "scans.npz"), "--out", str(out))
    assert code == 0, err
    assert stdout.startswith("100 images in 2 classes: 2 exact duplicate(s)")
    assert f"wrote {out}" in stdout
    html = out.read_text()
    assert html.count('class="audit-thumb"') == 6  # three groups of two
    assert "<script>" in html and "cdn" not in html.lower()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["audit", "{tmp}/missing"], "missing: no such file or folder"),
        (["audit", "{tmp}/notes.txt"], "not a study file (.yaml, .yml), a folder"),
        (["audit", "{tmp}", "--near-threshold", "40"], "--near-threshold: must be between 0"),
        (["audit", "{tmp}/bad.yaml"], "bad.yaml: dataset.duplicates: Input should be"),
        (["audit", "{tmp}/empty"], "has no class sub-folders with images"),
        (["audit", "{tmp}/gone.yaml"], "gone.yaml: dataset.path: folder '/no/such/dir' does not"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    dataset = {"source": "digits", "duplicates": "sometimes"}
    write(
        tmp_path,
        {"study": {"name": "b"}, "dataset": dataset, "model": {"backbone": "small_cnn"}},
        "bad.yaml",
    )
    gone = {"source": "directory", "path": "/no/such/dir"}
    write(
        tmp_path,
        {"study": {"name": "g"}, "dataset": gone, "model": {"backbone": "small_cnn"}},
        "gone.yaml",
    )
    code, _, err = run_cli(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert needle in err


@pytest.mark.slow
def test_page_renders_in_chromium_with_every_thumbnail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _chromium_or_skip()
    planted = make_folder(tmp_path / "mri")
    page = tmp_path / "audit.html"
    code, _, err = run_cli(capsys, "audit", str(tmp_path / "mri"), "--out", str(page))
    assert code == 0, err
    out_dir = Path(os.environ.get("HPO_SCREENSHOT_DIR", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = out_dir / "audit.png"
    expected, drawn, errors, _boxes = render_page(page, shot)
    assert (expected, drawn) == (0, 0), "the audit page has no plotly figures"
    assert errors == [], errors
    assert shot.stat().st_size > 10_000
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        tab = browser.new_page()
        tab.goto(page.resolve().as_uri())
        sizes = tab.eval_on_selector_all(
            "img.audit-thumb", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])"
        )
        text = tab.inner_text("#summary")
        browser.close()
    n_thumbs = sum(len(g) for g in planted.groups) + len(planted.odd)
    assert len(sizes) == n_thumbs
    assert all(done and w > 0 and h > 0 for done, w, h in sizes), sizes
    assert "12 exact duplicate(s) in 12 group(s) and 6 near-duplicate group(s)" in text


def test_audit_imports_no_keras_backend_nor_plotly(tmp_path: Path) -> None:
    import subprocess
    import sys

    make_npz(tmp_path / "scans.npz")
    code = (
        "import sys, contextlib, io\n"
        "from hpo.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main(['audit', {str(tmp_path / 'scans.npz')!r}, '--json'])\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "print(','.join(m for m in ('tensorflow', 'keras', 'jax', 'torch', 'plotly') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_names_from_the_data_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from tests.audit.planted import pattern

    rng = np.random.default_rng(3)
    evil = "<img src=x onerror=alert(1)>"
    for name in (evil, "plain"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(pattern(rng)).save(tmp_path / "data" / name / f"<b>{i}.png")
    Image.open(tmp_path / "data" / "plain" / "<b>0.png").save(tmp_path / "data" / evil / "c.png")
    out = tmp_path / "audit.html"
    code, _, err = run_cli(capsys, "audit", str(tmp_path / "data"), "--out", str(out))
    assert code == 0, err
    html = out.read_text()
    assert evil not in html and "<b>0.png" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;b&gt;0.png" in html
