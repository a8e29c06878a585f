"""Open the reports in headless Chromium: every figure drawn, no console error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hpo.reports import write_campaign_report, write_study_report
from tests.reports.factories import build_study

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; ./bootstrap test installs it")
        pytest.skip("chromium not installed (./bootstrap test installs it)")


def render_page(path: Path, shot: Path) -> tuple[int, int, list[str]]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        expected = page.locator("div.figure").count()
        page.wait_for_function(
            "n => document.querySelectorAll('div.figure .main-svg').length >= n",
            arg=expected,
            timeout=30000,
        )
        drawn = page.locator("div.figure.js-plotly-plot").count()
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    return expected, drawn, errors


@pytest.mark.slow
def test_reports_render_in_chromium(sqlite_url: str, tmp_path: Path) -> None:
    _chromium_or_skip()
    build_study(sqlite_url, "browser-study", n_trials=15)
    for r in range(2):
        build_study(sqlite_url, f"c.tpe.r{r}", seed=r, campaign="browser", repeat=r)
        build_study(
            sqlite_url,
            f"c.random.r{r}",
            seed=9 + r,
            sampler="random",
            campaign="browser",
            repeat=r,
            quality=-0.1,
        )
    out_dir = Path(os.environ.get("HPO_SCREENSHOT_DIR", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = {
        "study": write_study_report(sqlite_url, "browser-study", tmp_path / "study.html"),
        "campaign": write_campaign_report(sqlite_url, "browser", tmp_path / "campaign.html"),
    }
    for kind, path in pages.items():
        shot = out_dir / f"report-{kind}.png"
        expected, drawn, errors = render_page(path, shot)
        assert expected >= (11 if kind == "study" else 4)
        assert drawn == expected, kind
        assert errors == [], errors
        assert shot.stat().st_size > 10_000
