"""Pages: report data and figures into one self-contained, escaped HTML file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    import plotly.graph_objects as go

REPORTS_DIR = Path("reports")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str, suffix: str = ".html") -> str:
    """A file name derived from a study or campaign name that stays in its folder.

    Separators, ``..`` and anything unusual become ``_``; a short hash keeps
    distinct names distinct after cleaning.
    """
    cleaned = _SAFE.sub("_", name).strip("._-")[:80] or "report"
    if cleaned != name:
        cleaned += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return cleaned + suffix


def default_path(name: str) -> Path:
    path = REPORTS_DIR / safe_filename(name)
    assert path.resolve().parent == REPORTS_DIR.resolve()
    return path


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hpo.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


@lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    # Inlined once per page, so the report opens offline; "</" can't end the tag.
    return str(get_plotlyjs()).replace("</", "<\\/")


def figure_json(fig: go.Figure) -> str:
    """Figure JSON safe inside a <script> element: '<', '>' and '&' are \\u-escaped."""
    text = str(fig.to_json(validate=False, pretty=False, engine="json"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:g}"
    return str(value)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def render(
    template: str,
    *,
    title: str,
    subtitle: str,
    nav: list[tuple[str, str]],
    figures: list[tuple[str, str, go.Figure]],
    **context: Any,
) -> str:
    entries = [(fid, label, i) for i, (fid, label, _) in enumerate(figures)]
    return (
        _env()
        .get_template(template)
        .render(
            title=title,
            subtitle=subtitle,
            nav=nav + [(fid, label) for fid, label, _ in figures],
            figures=entries,
            figure_json=[figure_json(fig) for _, _, fig in figures],
            plotly_js=plotly_js(),
            fmt=fmt,
            seconds=seconds,
            generated=dt.datetime.now().isoformat(timespec="seconds"),
            **context,
        )
    )


def write(path: Path, html: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
