"""The platform engineer's page of user alerts, in the Airflow UI beside the report
(``report_app``: ``/sa-hygiene/user-alerts``, behind the same login and DAG permission).

Who made which alert, what it watches, where it goes, and whether it is paused and why: the
alerts people made in Slack (``/sa-alert``) are part of what the deployment sends, and the
person running it must be able to see them without opening the database. A self-contained
page (the report's Content-Security-Policy): every value is escaped, nothing is loaded.
"""

from __future__ import annotations

from html import escape

TRIGGER_WORDS = {"blank": "is blank", "equals": "equals", "in": "is one of", "more_than": "is more than",
                 "less_than": "is less than", "older_than_days": "is more than N days ago",
                 "newer_than_days": "is fewer than N days ago"}  # fmt: skip


def describe(spec: dict) -> str:
    """An alert's trigger in words (what the form offered)."""
    t = spec.get("trigger") or {}
    kind = t.get("kind")
    if kind == "stage_move":
        return f"stage moved {t.get('from_value', '') or 'any'} → {t.get('to_value', '') or 'any'}"
    field = f"{spec.get('object', '?')}.{t.get('field', '?')}"
    if kind == "changed":
        if t.get("from_value") is None and t.get("to_value") is None:
            return f"{field} changed"
        return f"{field} changed {t.get('from_value') or 'any'} → {t.get('to_value') or 'any'}"
    words = TRIGGER_WORDS.get(t.get("op"), str(t.get("op")))
    value = ", ".join(map(str, t.get("values") or [])) or ("" if t.get("number") is None else f"{t['number']:g}")
    return f"{field} {words} {value}".strip()


def user_alerts_page(alerts: list, names: dict[str, str], error: str | None = None) -> str:
    """The page: one row per alert (``state.user_alerts.StoredAlert``), owners by name when known."""
    rows = []
    for a in alerts:
        spec = a.spec if isinstance(a.spec, dict) else {}
        delivery = spec.get("delivery", "?") + (f" {spec['channel']}" if spec.get("channel") else "")
        status = "active" if a.active else f"paused: {a.paused_reason or ''}"
        cells = [a.name, names.get(a.owner[:15], a.owner), describe(spec), spec.get("scope", "?"), delivery, status]
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    body = "\n".join(rows) or '<tr><td colspan="6">No user alerts yet: people make them with /sa-alert in Slack.</td></tr>'
    note = f"<p><strong>{escape(error)}</strong></p>" if error else ""
    return f"""<!doctype html><meta charset="utf-8"><title>User alerts</title>
<body style="font:15px system-ui;margin:2em">
<h1>User alerts</h1>
<p>{len(alerts)} alerts made in Slack (<code>/sa-alert</code>), evaluated with the workflows.</p>{note}
<table style="border-collapse:collapse" border="1" cellpadding="6">
<tr><th>Name</th><th>Owner</th><th>Trigger</th><th>Scope</th><th>Delivery</th><th>Status</th></tr>
{body}
</table>"""
