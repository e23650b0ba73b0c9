"""The report's charts: matplotlib figures as inline SVG, so the page fetches nothing and reads
the same from a file, behind a firewall, or inside Airflow.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from markupsafe import Markup

from sa_hygiene.contract.config import Config

log = logging.getLogger(__name__)


def _svg(fig) -> Markup:
    """A matplotlib figure as inline SVG that scales with the page."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img"', svg, count=1)
    return Markup(svg)


@contextmanager
def _figure(name: str, width: float, height: float) -> Iterator[Any]:
    """A matplotlib Figure (no pyplot: no global state) drawn and saved under the report's style."""
    import matplotlib
    from matplotlib.figure import Figure

    # Text stays text (smaller, selectable); "$" in a Salesforce value is not TeX; ids unique per chart.
    rc = {"svg.fonttype": "none", "svg.hashsalt": name, "text.parse_math": False, "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#9aa5b1"}  # fmt: skip
    with matplotlib.rc_context(rc):
        yield Figure(figsize=(width, height), dpi=100)


PALETTE = ["#1d5fbf", "#e07b39", "#2e9d6b", "#c0392b", "#8e6cc3", "#8c6d31", "#d35fa7", "#7b8794", "#b5a32b",
           "#17a2b8", "#5a3e9b", "#3c8d2f", "#a93226", "#2c3e50", "#d4ac0d", "#6c7a89", "#117a65"]  # fmt: skip


def charts(model: dict, cfg: Config) -> dict[str, Markup]:
    """The report's charts: open issues by region, the trend, SA activity by type and region,
    and the quarter's evaluation outcomes."""
    out = {}
    matrix = model["matrix"]
    issue_rows = [r for r in matrix["rows"] if not r["news"] and r["total"]["n"]]
    regions = [r for i, r in enumerate(matrix["regions"]) if any(row["cells"][i]["n"] for row in issue_rows)]

    with _figure("regions", 6.2, 0.42 * max(len(regions), 2) + 1.4) as fig:
        ax = fig.subplots()
        left = [0] * len(regions)
        for n, row in enumerate(issue_rows):
            idx = [matrix["regions"].index(r) for r in regions]
            values = [row["cells"][i]["n"] for i in idx]
            ax.barh(regions, values, left=left, color=PALETTE[n % len(PALETTE)], label=row["wid"], height=0.65)
            left = [a + b for a, b in zip(left, values, strict=True)]
        for y, total in enumerate(left):
            ax.text(total, y, f" {total}", va="center", fontsize=8, color="#3e4c59")
        ax.invert_yaxis()
        ax.set_xlabel("open hygiene issues")
        ax.legend(ncol=min(6, max(len(issue_rows), 1)), fontsize=7, frameon=False, loc="upper center",
                  bbox_to_anchor=(0.5, -0.12 - 0.6 / max(len(regions), 2)))  # fmt: skip
        out["regions"] = _svg(fig)

    trend = model["trend"]
    with _figure("trend", 6.2, 4.2) as fig:
        # All open issues above, each workflow below: on one axis the total flattens the rest.
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2.2]})
        xs = [pd.Timestamp(t["taken_at"]).strftime("%m-%d") for t in trend]
        issue_ids = [w for w in cfg.workflows if w not in cfg.report.news_workflows and cfg.workflows[w].enabled]
        totals = [sum(t["workflows"].get(w, 0) for w in issue_ids) for t in trend]
        top.plot(xs, totals, color="#1f2933", linewidth=2.2, marker="o")
        top.set_ylabel("all issues")
        for n, wid in enumerate(issue_ids):
            bottom.plot(xs, [t["workflows"].get(wid, 0) for t in trend], color=PALETTE[n % len(PALETTE)], linewidth=1.2,
                        marker=".", label=wid)  # fmt: skip
        bottom.set_ylabel("per workflow")
        bottom.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.05))
        for ax in (top, bottom):
            ax.set_ylim(bottom=0)
            ax.grid(axis="y", color="#e4e7eb")
        out["trend"] = _svg(fig)

    types = model["activity"]["tables"]["activity_types"]
    with _figure("types", 5.6, 0.25 * max(len(types), 3) + 0.9) as fig:
        ax = fig.subplots()
        labels = [t["label"] for t in types]
        ax.barh(labels, [t["weeks"]["n"] for t in types], color="#9fc1ee", label=f"last {model['activity']['weeks']} weeks")
        ax.barh(labels, [t["window"]["n"] for t in types], color="#1d5fbf", label="window", height=0.45)
        ax.invert_yaxis()
        ax.set_xlabel("SA activities (one with two types counts under both)")
        ax.legend(fontsize=8, frameon=False, loc="lower right")
        out["types"] = _svg(fig)

    outcomes = model["evaluations"]["outcomes"]
    with _figure("outcomes", 4.2, 1.9) as fig:
        ax = fig.subplots()
        colors = {"Win": "#2e9d6b", "Loss": "#c0392b", "Stalled": "#e07b39"}
        names = [o["status"] for o in outcomes]
        ax.barh(names, [o["n"] for o in outcomes], color=[colors.get(s, "#9aa5b1") for s in names], height=0.6)
        for y, o in enumerate(outcomes):
            ax.text(o["n"], y, f" {o['n']}", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"evaluations ended in {model['evaluations']['quarter'].label}")
        out["outcomes"] = _svg(fig)
    return out
