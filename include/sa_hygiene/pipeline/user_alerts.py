"""User alerts in the DAGs' steps: evaluated with the workflows, rendered, paused, told.

- ``evaluate_snapshots``: what ``rules.evaluate_snapshots`` does, with the active user alerts
  among the workflows (one evaluation). Alerts that no longer compile, and those that sent more
  messages than ``user_alerts.max_messages_per_day``, are paused with a notice pending for their
  owners, and their lines dropped. A state database that cannot be read leaves the user alerts
  out of this run (logged), never the YAML workflows.
- ``rendering_config``: the configuration a digest renders with: every stored alert compiled
  (paused ones too: yesterday's items still name their workflow), scopes aside.
- ``pause_notices``: the pending notices as messages, marked told once delivered.
"""

from __future__ import annotations

import json
import logging
from datetime import date

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.user_alerts import ID_PREFIX
from sa_hygiene.engine.user_alerts import absent_sqlite, rendering_config, stored
from sa_hygiene.state.db import DatabaseError
from sa_hygiene.state.user_alerts import UserAlerts

log = logging.getLogger(__name__)


def evaluate_snapshots(current, previous, cfg: Config, as_of: date, since=None, until=None, **kw):
    """``rules.evaluate_snapshots`` with the active user alerts (see the module's docstring)."""
    from sa_hygiene.engine.rules import evaluate_snapshots as evaluate_workflows
    from sa_hygiene.engine.user_alerts import evaluate_with_user_alerts, over_limit

    alerts = stored(cfg)
    active = {a.alert_id: a.spec for a in alerts or [] if a.active}
    if not active:
        return evaluate_workflows(current, previous, cfg, as_of, since, until, **kw)
    result, broken = evaluate_with_user_alerts(current, previous, cfg, as_of, active, since, until, **kw)
    over = over_limit(result.alerts, cfg)
    if over:
        dropped = result.alerts["workflow"].isin([ID_PREFIX + a for a in over])
        result.alerts = result.alerts[~dropped].reset_index(drop=True)
    pauses = {**broken, **over}
    if pauses:
        try:
            with UserAlerts(cfg.state_url) as store:
                for alert_id, why in pauses.items():
                    store.pause(alert_id, why, notify=True)
        except DatabaseError as exc:
            log.warning("user alerts to pause (%s) could not be paused: %s", ", ".join(pauses), exc)
    return result


def alerts_key(cfg: Config) -> list:
    """What the evaluation cache keys the user alerts by: each one's id, status and choices."""
    return [[a.alert_id, a.status, json.dumps(a.spec, sort_keys=True)] for a in stored(cfg) or []]


def pause_notices(cfg: Config, snapshot, as_of: date, url: str | None = None) -> list:
    """The DMs of the pauses their owners have not heard of yet; ``snapshot``: read, or its URL."""
    from sa_hygiene.delivery.user_alert_notices import pause_notices as render

    url = url or cfg.state_url
    if absent_sqlite(url):
        return []
    try:
        with UserAlerts(url) as store:
            pending = store.notices()
    except DatabaseError as exc:
        log.warning("user alert notices not read: %s", exc)
        return []
    if not pending:
        return []
    if isinstance(snapshot, str):  # nothing else to render today: read it for the owners' names and e-mails
        from sa_hygiene.source.snapshot import read_snapshot

        snapshot = read_snapshot(snapshot, cfg)
    return render(pending, snapshot, cfg, as_of)


def notices_told(cfg: Config, messages: list, delivered: set[str], url: str | None = None) -> None:
    """Mark told the owners of the notices among ``messages`` whose keys were delivered."""
    told = [m.key.split("|")[2] for m in messages if m.slot == "user_alert_notice" and m.key in delivered]
    if told:
        with UserAlerts(url or cfg.state_url) as store:
            store.mark_notified(told)


__all__ = ["alerts_key", "evaluate_snapshots", "notices_told", "pause_notices", "rendering_config", "stored"]
