"""The hygiene report's pages: one static, self-contained HTML dashboard per snapshot.

The handbook's reports (SA activity, the current quarter's technical evaluations, the
regional dashboards) need a Salesforce licence to read; this page needs a browser. Layout of a
report folder (``<report folder>/<snapshot name>/``): ``index.html`` (headline numbers,
regions, open alerts, SAs, technical evaluations, data quality), ``activity.html`` (SA activity
and its drill-downs, apart so that the main page stays light), ``data_docs/`` (Great
Expectations Data Docs of the run's validations) and ``counts.json`` (alerts per workflow: the
points of the trend chart). ``latest.json`` beside the folders names the newest report; the
Airflow UI plugin serves it. Salesforce text reaches the page only through Jinja2's
autoescaping. The step that evaluates and publishes it is ``pipeline.report``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from sa_hygiene.contract.config import Config
from sa_hygiene.web.report_model import ReportModel
from sa_hygiene.web.report_records import date_cell, slug

log = logging.getLogger(__name__)


LATEST = "latest.json"


COUNTS = "counts.json"


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("sa_hygiene.web", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters.update(
        number=lambda n: f"{n:,}",
        pct=lambda x: "—" if x is None else f"{x:.0%}",
        signed=lambda n: "" if n is None else ("±0" if n == 0 else f"{n:+,}"),
        stamp=lambda t: "" if t is None else pd.Timestamp(t).strftime("%Y-%m-%d %H:%M UTC"),
        day=date_cell,
        regionslug=lambda r: slug(r),
    )
    return env


def render(page: dict, model: ReportModel, chart_svgs: dict, validations: list[dict], cfg: Config) -> dict[str, str]:
    """``{file name: HTML}`` of the report's pages: ``page`` is what ``model.build()`` returned."""
    env = _environment()
    common = {"m": page, "cfg": cfg, "charts": chart_svgs, "validations": validations,
              "generated": datetime.now(UTC), "workflows": cfg.workflows}  # fmt: skip
    pages = {
        "index.html": env.get_template("report.html.j2").render(**common, d=model.drills),
        "activity.html": env.get_template("report_activity.html.j2").render(**common, drills=model.activity_drills.values()),
    }
    # One page per region (the handbook's regional SA dashboards), linked from the regions table.
    region = env.get_template("report_region.html.j2")
    for p in page.get("region_pages") or []:
        pages[p["file"]] = region.render(**common, d=model.drills, page=p)
    return pages
