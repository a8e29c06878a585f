"""The HTML layer shared by reports and model cards.

One Jinja environment (``environment``), one base template (``BASE``), the
escaping of figure JSON (``figure_json``) and plotly.js inlined once
(``plotly_js``): every page hpo writes is self-contained and escaped the
same way. Pages live with their package (``hpo/reports/templates``,
``hpo/export/templates``) and are named ``"<package>/<file>"``.
"""

from __future__ import annotations

from hpo.html._page import (
    BASE,
    Figure,
    environment,
    figure_json,
    fmt,
    plotly_js,
    render_page,
    safe_filename,
    seconds,
    write_page,
)

__all__ = [
    "BASE",
    "Figure",
    "environment",
    "figure_json",
    "fmt",
    "plotly_js",
    "render_page",
    "safe_filename",
    "seconds",
    "write_page",
]
