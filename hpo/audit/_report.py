"""The audit as one self-contained HTML page, thumbnails inlined as small PNGs.

It goes through the shared page layer (``hpo.html``: one Jinja environment,
one base template, the same escaping as reports). The page has no figures,
so plotly.js, which the base inlines for figures, is left out.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hpo.html import environment, fmt, seconds, write_page

if TYPE_CHECKING:
    from hpo.audit._findings import Audit

THUMB_SIDE = 64  # longest side of a thumbnail, in pixels
MAX_GROUPS_SHOWN = 300  # groups drawn with thumbnails; the JSON lists every one
MAX_ODD_SHOWN = 200


def thumbnail(image: np.ndarray) -> str:
    """A data: URI of a small PNG; small images are enlarged without smoothing."""
    from PIL import Image

    arr = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    pil = Image.fromarray(np.ascontiguousarray(arr))
    scale = THUMB_SIDE / max(pil.size)
    size = (max(1, round(pil.size[0] * scale)), max(1, round(pil.size[1] * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR
    buffer = io.BytesIO()
    pil.resize(size, resample).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render(audit: Audit) -> str:
    """The page's HTML."""
    images = audit.images
    shown = audit.groups[:MAX_GROUPS_SHOWN]
    odd = audit.odd[:MAX_ODD_SHOWN]
    thumbs = {
        i: thumbnail(images.image(i))
        for i in sorted({m.index for g in shown for m in g.members} | {o.index for o in odd})
    }
    nav = [
        ("summary", "Summary"),
        ("counts", "Counts"),
        ("leaks", "Across splits"),
        ("conflicts", "Label conflicts"),
        ("within", "Within a class"),
        ("odd", "Odd images"),
        ("method", "Method"),
    ]
    return (
        environment()
        .get_template("hpo.audit/audit.html.j2")
        .render(
            title=f"Dataset audit: {images.target}",
            subtitle=f"hpo audit · generated {dt.datetime.now():%Y-%m-%d %H:%M}",
            nav=nav,
            figures=[],
            figure_json=[],
            plotly_js="",
            fmt=fmt,
            seconds=seconds,
            generated=dt.datetime.now().isoformat(timespec="seconds"),
            a=audit,
            data=audit.to_json(),
            shown=shown,
            odd=odd,
            thumbs=thumbs,
            splits=("train", "val", "test"),
            totals=dict(
                zip(
                    images.class_names,
                    np.bincount(images.label, minlength=len(images.class_names)).tolist(),
                    strict=True,
                )
            ),
        )
    )


def write_html(audit: Audit, out: str | Path) -> Path:
    """Write the page atomically; returns its path."""
    return write_page(Path(out), render(audit))
