"""Self-contained HTML reports built from the database alone.

``write_study_report`` describes one study; ``write_campaign_report``
compares samplers across the repeats of a campaign. Data extraction
(``load_study_data``, ``load_campaign_data``) is kept apart from figure
building (``study_figures``, ``campaign_figures``) and from the page,
which ``hpo.html`` renders and escapes for reports and model cards alike.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.html import render_page, safe_filename, write_page
from hpo.reports._campaign import CampaignData, list_campaigns, load_campaign_data
from hpo.reports._campaign_figures import campaign_figures
from hpo.reports._extract import StudyData, load_study_data
from hpo.reports._figures import study_figures

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

REPORTS_DIR = Path("reports")


def default_path(name: str) -> Path:
    """``reports/<safe name>.html``: a study name can never write outside the folder."""
    path = REPORTS_DIR / safe_filename(name)
    assert path.resolve().parent == REPORTS_DIR.resolve()
    return path


def write_study_report(
    storage: str | BaseStorage, study_name: str, out: str | Path | None = None
) -> Path:
    """Write the HTML report of one study; returns its path."""
    data = load_study_data(storage, study_name)
    figures = study_figures(data)
    cfg = data.config
    html = render_page(
        "hpo.reports/study.html.j2",
        title=f"Study {data.name}",
        subtitle=f"hpo optimization report · generated {dt.datetime.now():%Y-%m-%d %H:%M}",
        nav=[("summary", "Summary"), ("dataset", "Dataset")],
        nav_after=[("versions", "Reproducibility")],
        figures=figures,
        d=data,
        model=cfg.get("model") or {},
        training=cfg.get("training") or {},
        splits=("train", "val", "test"),
    )
    return write_page(Path(out) if out is not None else default_path(study_name), html)


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
    html = render_page(
        "hpo.reports/campaign.html.j2",
        title=f"Campaign {campaign}",
        subtitle=f"sampler comparison · {len(data.runs)} studies · generated "
        f"{dt.datetime.now():%Y-%m-%d %H:%M}",
        nav=[("summary", "Summary"), ("verdict", "Verdict"), ("studies", "Studies")],
        figures=campaign_figures(data),
        d=data,
    )
    return write_page(Path(out) if out is not None else default_path(f"campaign-{campaign}"), html)


__all__ = [
    "REPORTS_DIR",
    "CampaignData",
    "StudyData",
    "campaign_figures",
    "default_path",
    "list_campaigns",
    "load_campaign_data",
    "load_study_data",
    "safe_filename",
    "study_figures",
    "write_campaign_report",
    "write_study_report",
]
