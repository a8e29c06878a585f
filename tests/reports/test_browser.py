"""Open the reports in headless Chromium: every figure drawn, no console error, and
every figure inside its card at a wide (1280 px) and a narrow (800 px) window."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

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


WIDTHS = (1280, 800)

# Each figure's card (its <section>) and the boxes plotly drew inside it.
_MEASURE = """() => Array.from(document.querySelectorAll("section")).filter(
  s => s.querySelector("div.figure")).map(s => {
    const card = s.getBoundingClientRect();
    const boxes = Array.from(s.querySelectorAll(
      "div.figure .svg-container, div.figure svg.main-svg")).map(e => e.getBoundingClientRect());
    return {id: s.id, left: card.left, right: card.right,
            figLeft: Math.min(...boxes.map(b => b.left)),
            figRight: Math.max(...boxes.map(b => b.right))};
  })"""


def render_page(
    path: Path, shot: Path, width: int = 1280
) -> tuple[int, int, list[str], list[dict[str, Any]]]:
    """Open a page at ``width`` px: figures expected, drawn, console errors, their boxes."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
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
        boxes = page.evaluate(_MEASURE)
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    return expected, drawn, errors, boxes


def overflowing(boxes: list[dict[str, Any]]) -> list[str]:
    """Figures that reach past either edge of their card (1 px for rounding)."""
    return [
        f"{b['id']}: figure {b['figLeft']:.0f}..{b['figRight']:.0f} px, "
        f"card {b['left']:.0f}..{b['right']:.0f} px"
        for b in boxes
        if b["figLeft"] < b["left"] - 1 or b["figRight"] > b["right"] + 1
    ]


@pytest.mark.slow
def test_reports_render_in_chromium(sqlite_url: str, tmp_path: Path) -> None:
    _chromium_or_skip()
    # Eight parameters: Optuna's slice plot would be 8 x 300 px wide, past any card.
    build_study(sqlite_url, "browser-study", n_trials=15, extra_params=5)
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
    for r in range(2):  # and a campaign that knows its optimum, for the regret figure
        for sampler, q in (("tpe", 0.0), ("random", -0.1)):
            build_study(
                sqlite_url,
                f"o.{sampler}.r{r}",
                seed=20 + r + len(sampler),
                sampler=sampler,
                campaign="optimum",
                repeat=r,
                n_trials=14,
                quality=q,
                optimum=1.0,
            )
    out_dir = Path(os.environ.get("HPO_SCREENSHOT_DIR", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = {
        "study": write_study_report(sqlite_url, "browser-study", tmp_path / "study.html"),
        "campaign": write_campaign_report(sqlite_url, "optimum", tmp_path / "campaign.html"),
        "early-campaign": write_campaign_report(sqlite_url, "browser", tmp_path / "early.html"),
    }
    for kind, path in pages.items():
        for width in WIDTHS:
            # The wide shots are the README's pictures (HPO_SCREENSHOT_DIR=docs).
            shot = (out_dir if width == WIDTHS[0] else tmp_path) / f"report-{kind}.png"
            expected, drawn, errors, boxes = render_page(path, shot, width)
            assert expected >= {"study": 11, "campaign": 5, "early-campaign": 4}[kind]
            assert drawn == expected, kind
            assert errors == [], errors
            assert shot.stat().st_size > 10_000
            assert len(boxes) == expected
            assert overflowing(boxes) == [], f"{kind} at {width} px"
