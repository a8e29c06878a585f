"""Self-contained HTML reports built from the database alone.

``write_study_report`` describes one study; ``write_campaign_report``
compares samplers across the repeats of a campaign. Data extraction
(``load_study_data``, ``load_campaign_data``) is kept apart from figure
building (``study_figures``, ``campaign_figures``) and from the page.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.reports._extract import (
    CampaignData,
    StudyData,
    list_campaigns,
    load_campaign_data,
    load_study_data,
)
from hpo.reports._figures import campaign_figures, study_figures
from hpo.reports._html import default_path, render, safe_filename, write

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


def write_study_report(
    storage: str | BaseStorage, study_name: str, out: str | Path | None = None
) -> Path:
    """Write the HTML report of one study; returns its path."""
    data = load_study_data(storage, study_name)
    figures = study_figures(data)
    cfg = data.config
    html = render(
        "study.html.j2",
        title=f"Study {data.name}",
        subtitle=f"hpo optimization report · generated {dt.datetime.now():%Y-%m-%d %H:%M}",
        nav=[("summary", "Summary"), ("dataset", "Dataset")],
        figures=figures,
        d=data,
        model=cfg.get("model") or {},
        training=cfg.get("training") or {},
        objective=(cfg.get("objective") or {}).get("metric", "macro_f1"),
        splits=("train", "val", "test"),
    )
    return write(Path(out) if out is not None else default_path(study_name), html)


def write_campaign_report(
    storage: str | BaseStorage,
    campaign: str,
    out: str | Path | None = None,
    *,
    target_fraction: float = 0.95,
) -> Path:
    """Write the sampler-comparison report of a campaign; returns its path."""
    from hpo.errors import HpoError

    data = load_campaign_data(storage, campaign, target_fraction=target_fraction)
    if not data.runs:
        known = list_campaigns(storage)
        hint = f"; known: {', '.join(known[:10])}" if known else ""
        raise HpoError(f"no campaign named '{campaign}'{hint}")
    html = render(
        "campaign.html.j2",
        title=f"Campaign {campaign}",
        subtitle=f"sampler comparison · {len(data.runs)} studies · generated "
        f"{dt.datetime.now():%Y-%m-%d %H:%M}",
        nav=[("summary", "Summary"), ("verdict", "Verdict"), ("studies", "Studies")],
        figures=campaign_figures(data),
        d=data,
    )
    return write(Path(out) if out is not None else default_path(f"campaign-{campaign}"), html)


__all__ = [
    "CampaignData",
    "StudyData",
    "campaign_figures",
    "list_campaigns",
    "load_campaign_data",
    "load_study_data",
    "safe_filename",
    "study_figures",
    "write_campaign_report",
    "write_study_report",
]
