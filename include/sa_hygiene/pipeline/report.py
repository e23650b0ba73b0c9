"""The sa_report step: evaluate the latest snapshot once, keep that evaluation and record it in
the alert state, then publish the report (pages, counts, the trend, ``latest.json`` last).
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import fsspec

from sa_hygiene.contract.config import Config
from sa_hygiene.engine.rules import Evaluation, evaluate_snapshots
from sa_hygiene.source.store import SnapshotRef, SnapshotStore
from sa_hygiene.state.ledger import unknown_slack_users
from sa_hygiene.web.charts import charts
from sa_hygiene.web.report import COUNTS, LATEST, render
from sa_hygiene.web.report_model import ReportInputs, ReportModel, alert_memory

log = logging.getLogger(__name__)


# Slack users not found are read from the deliveries of this many days before the snapshot.
SLACK_LOOKBACK = timedelta(days=7)


def _read_json(fs, path: str) -> dict | None:
    try:
        with fs.open(path, "r") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def trend(cfg: Config, store: SnapshotStore, latest: SnapshotRef, latest_counts: dict) -> list[dict]:
    """Alerts per workflow of the latest ``report.trend_snapshots`` snapshots, oldest first.

    Each report keeps its snapshot's counts; a snapshot without them (taken before the first
    report, or whose report failed) is evaluated once, with its own previous snapshot and its
    own date, and its counts are kept for the next report.
    """
    fs, root = fsspec.core.url_to_fs(cfg.report_folder())
    refs = [r for r in store.list() if r.taken_at <= latest.taken_at][-cfg.report.trend_snapshots :]
    points = []
    for i, ref in enumerate(refs):
        if ref.name == latest.name:
            points.append(latest_counts)
            continue
        counts = _read_json(fs, f"{root}/{ref.name}/{COUNTS}")
        if counts is None:
            result = evaluate_snapshots(ref, store.previous(ref), cfg, ref.taken_at.date())
            counts = _counts(ref, ref.taken_at.date(), result)
            fs.makedirs(f"{root}/{ref.name}", exist_ok=True)
            with fs.open(f"{root}/{ref.name}/{COUNTS}", "w") as fh:
                json.dump(counts, fh, indent=1)
            log.info("trend: evaluated %s (%d of %d) for its counts", ref.name, i + 1, len(refs))
        points.append(counts)
    return points


def _counts(ref: SnapshotRef, as_of: date, evaluation: Evaluation) -> dict:
    return {"snapshot": ref.name, "taken_at": ref.taken_at.isoformat(), "as_of": as_of.isoformat(),
            "workflows": evaluation.counts()}  # fmt: skip


def write_report(cfg: Config, *, as_of: date | None = None, ledger_url: str | None = None) -> dict:
    """Evaluate the latest snapshot of the store and publish its report; what the sa_report DAG runs.

    ``as_of`` defaults to the snapshot's own (UTC) date. The report is built in a local
    temporary folder, then copied to ``<report folder>/<snapshot name>/`` (a local folder or
    any fsspec URL), and ``latest.json`` is rewritten last, so the plugin never serves a
    half-written report. Reports of snapshots the store has pruned are removed with them.
    """
    store = SnapshotStore(cfg.store.url, keep=cfg.store.keep)
    latest = store.latest()
    if latest is None:
        from sa_hygiene.source.snapshot import SnapshotError

        raise SnapshotError(f"{cfg.store.url}: the snapshot store holds no snapshot yet (run sa_snapshot first)")
    previous = store.previous(latest)
    as_of = as_of or latest.taken_at.date()
    evaluation = evaluate_snapshots(latest, previous, cfg, as_of)
    from sa_hygiene.pipeline.alert_state import record_stored_evaluations, store_evaluation
    from sa_hygiene.state.db import DatabaseError

    # The one full evaluation of this snapshot, recorded in the alert state before the report
    # reads it: the report's fixes are today's too, the same the DMs tell. A state that is down
    # costs the report its ages (it says so), never the report; the next run catches up.
    store_evaluation(cfg, latest.name, as_of, evaluation.alert_records(), evaluation.scope, evaluation.quarantined_keys())
    try:
        record_stored_evaluations(cfg, cfg.state.url or ledger_url)
    except DatabaseError as exc:
        log.warning("alert state not recorded before the report: %s", exc)
    counts = _counts(latest, as_of, evaluation)
    points = trend(cfg, store, latest, counts)
    slack = unknown_slack_users(ledger_url or cfg.slack.ledger_url, latest.taken_at - SLACK_LOOKBACK)
    context = ReportInputs(cfg, evaluation, evaluation.snapshot, as_of, latest.name, previous.name if previous else None, points, slack,
                      alert_memory(cfg, as_of, ledger_url))  # fmt: skip
    model_obj = ReportModel(context)
    model = model_obj.build()

    from sa_hygiene.web.data_docs import build_data_docs

    fs, root = fsspec.core.url_to_fs(cfg.report_folder())
    target = f"{root}/{latest.name}"
    with tempfile.TemporaryDirectory(prefix="sa-report-") as tmp:
        local = Path(tmp) / latest.name
        validations = build_data_docs(evaluation.results, local / "data_docs", latest.name, latest.taken_at)
        for name, html in render(model, model_obj, charts(model, cfg), validations, cfg).items():
            (local / name).write_text(html, encoding="utf-8")
        (local / COUNTS).write_text(json.dumps(counts, indent=1), encoding="utf-8")
        if fs.exists(target):
            fs.rm(target, recursive=True)
        fs.makedirs(root, exist_ok=True)
        fs.put(str(local), f"{root}/", recursive=True)
    pointer = {"snapshot": latest.name, "index": f"{latest.name}/index.html", "as_of": as_of.isoformat(),
               "written_at": datetime.now(UTC).isoformat()}  # fmt: skip
    with fs.open(f"{root}/{LATEST}", "w") as fh:
        json.dump(pointer, fh, indent=1)
    removed = prune_reports(fs, root, {r.name for r in store.list()})
    url = f"{cfg.report_folder()}/{latest.name}/index.html"
    log.info("report of %s: %s (%d alerts; pruned %d old reports)", latest.name, url, len(evaluation.alerts), len(removed))
    return {"report": url, "snapshot": latest.name, "as_of": as_of.isoformat(), "issues": model["issues"],
            "news": model["news"], "quarantined": model["quality"]["quarantined_total"], "counts": counts["workflows"]}  # fmt: skip


def prune_reports(fs, root: str, kept: set[str]) -> list[str]:
    """Remove the report folders of snapshots no longer in the store."""
    from sa_hygiene.source.store import parse_snapshot_name

    removed = []
    for entry in fs.ls(root, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if parse_snapshot_name(name) and name not in kept:
            fs.rm(f"{root}/{name}", recursive=True)
            removed.append(name)
    return removed
