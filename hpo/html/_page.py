"""One self-contained, escaped HTML page: the Jinja set-up every page shares.

Reports and the model card are pages of one kind: a header, a nav, sections,
plotly figures whose JSON sits in ``<script type="application/json">`` blocks,
and plotly.js inlined once so the file opens offline. The environment, the
base template and the escaping live here so a fix to one reaches every page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from collections.abc import Sequence

    import plotly.graph_objects as go

BASE = "hpo.html/base.html.j2"
"""The base template; pages start with ``{% extends "hpo.html/base.html.j2" %}``."""

Figure = tuple[str, str, "go.Figure"]  # (section id, heading, figure)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _PackageTemplates(jinja2.BaseLoader):
    """``"<package>/<name>"`` -> ``<package>/templates/<name>``.

    Each package keeps its own pages next to its code; one environment loads
    them all, so a page of ``hpo.export`` can extend the base of ``hpo.html``
    without this module knowing who its users are.
    """

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Any]:
        package, sep, name = template.partition("/")
        if not sep or not (package == "hpo" or package.startswith("hpo.")):
            raise jinja2.TemplateNotFound(template)
        return _package_loader(package).get_source(environment, name)


@cache
def _package_loader(package: str) -> jinja2.PackageLoader:
    return jinja2.PackageLoader(package, "templates")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja environment: autoescaped, and strict about missing names."""
    return jinja2.Environment(
        loader=_PackageTemplates(),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js, inlined once per page so it opens offline; ``</`` can't end the tag."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs()).replace("</", "<\\/")


def figure_json(fig: go.Figure) -> str:
    """Figure JSON safe inside a <script> element: '<', '>' and '&' are \\u-escaped."""
    text = str(fig.to_json(validate=False, pretty=False, engine="json"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fmt(value: Any) -> str:
    """A table cell: 4 significant decimals, scientific for tiny or huge values."""
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
    """A duration in the unit a reader takes in at a glance."""
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def render_page(
    template: str,
    *,
    title: str,
    subtitle: str,
    nav: Sequence[tuple[str, str]],
    figures: Sequence[Figure],
    nav_after: Sequence[tuple[str, str]] = (),
    **context: Any,
) -> str:
    """Render a page template (``"<package>/<file>"``) that extends ``BASE``.

    The nav lists ``nav``, then one entry per figure, then ``nav_after``; the
    base draws each figure in its own section from its escaped JSON.
    """
    entries = [(fid, label, i) for i, (fid, label, _) in enumerate(figures)]
    return (
        environment()
        .get_template(template)
        .render(
            title=title,
            subtitle=subtitle,
            nav=[*nav, *((fid, label) for fid, label, _ in figures), *nav_after],
            figures=entries,
            figure_json=[figure_json(fig) for _, _, fig in figures],
            plotly_js=plotly_js(),
            fmt=fmt,
            seconds=seconds,
            generated=dt.datetime.now().isoformat(timespec="seconds"),
            **context,
        )
    )


def safe_filename(name: str, suffix: str = ".html") -> str:
    """A file name derived from a study or campaign name that stays in its folder.

    Separators, ``..`` and anything unusual become ``_``; a short hash keeps
    distinct names distinct after cleaning.
    """
    cleaned = _SAFE.sub("_", name).strip("._-")[:80] or "report"
    if cleaned != name:
        cleaned += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return cleaned + suffix


def write_page(path: Path, html: str) -> Path:
    """Write atomically: a reader (or a browser refresh) never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
