"""Finding records for the Slack app, from the latest snapshot with its changes, never from
Salesforce: a search in a form (``block_suggestion``) or a slash command must be answered within
Slack's three seconds, and the snapshot is in memory.

Open opportunities and accounts match when every word typed is in their name (or, for an
opportunity, its account's name), ignoring case; the contacts of an account are offered beside a
meeting's attendees.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sa_hygiene.contract.schema import is_id_of

MAX_RESULTS = 50  # per kind; Slack shows at most 100 options in a menu


@dataclass(frozen=True)
class Found:
    """A record a user may pick: ``kind`` is ``Opportunity`` or ``Account``."""

    kind: str
    id: str
    name: str
    account_id: str | None = None
    account_name: str | None = None
    stage: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "Account":
            return f"{self.name} (account)"
        return f"{self.name} · {self.stage}" if self.stage else self.name


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _words(query: str | None) -> list[str]:
    return [w for w in (query or "").lower().split() if w][:8]


def _matching(names: pd.Series, words: list[str]) -> pd.Series:
    hit = pd.Series(True, index=names.index)
    lower = names.fillna("").astype(str).str.lower()
    for w in words:
        hit &= lower.str.contains(w, regex=False)
    return hit


def search(snapshot, query: str | None, limit: int = MAX_RESULTS) -> list[Found]:
    """Open opportunities, then accounts, whose names hold every word of ``query`` (all of them,
    by name, when it is blank), at most ``limit`` of each."""
    words = _words(query)
    accounts = snapshot["Account"]
    account_names = dict(zip(accounts["key"], accounts["name"], strict=False))
    opps = snapshot["Opportunity"]
    opps = opps[~opps["is_closed"].fillna(False).astype(bool)]
    acc_of = opps["account_id"].fillna("").astype(str).str.slice(0, 15).map(account_names)
    hit = _matching(opps["name"].fillna("") + " " + acc_of.fillna(""), words)
    found = [Found("Opportunity", r["id"], str(r.get("name") or r["id"]), _text(r.get("account_id")),
                   _text(account_names.get(str(r.get("account_id") or "")[:15])), _text(r.get("stage")))
             for r in opps[hit].sort_values("name").head(limit).to_dict("records")]  # fmt: skip
    acc = accounts[_matching(accounts["name"], words)]
    found += [Found("Account", r["id"], str(r.get("name") or r["id"]), r["id"], _text(r.get("name")))
              for r in acc.sort_values("name").head(limit).to_dict("records")]  # fmt: skip
    return found


def record(snapshot, record_id: str | None) -> Found | None:
    """The opportunity or account ``record_id`` names (closed opportunities too), or None."""
    if not isinstance(record_id, str) or not record_id:
        return None
    key = record_id[:15]
    accounts = snapshot["Account"]
    if is_id_of("Account", record_id):
        hit = accounts[accounts["key"] == key]
        if len(hit):
            r = hit.iloc[0]
            return Found("Account", r["id"], str(r.get("name") or r["id"]), r["id"], _text(r.get("name")))
        return None
    opps = snapshot["Opportunity"]
    hit = opps[opps["key"] == key]
    if not len(hit):
        return None
    r = hit.iloc[0]
    account_id = _text(r.get("account_id"))
    acc = accounts[accounts["key"] == (account_id or "")[:15]]
    return Found("Opportunity", r["id"], str(r.get("name") or r["id"]), account_id,
                 _text(acc.iloc[0]["name"]) if len(acc) else None, _text(r.get("stage")))  # fmt: skip


def account_contacts(snapshot, account_id: str | None, limit: int = MAX_RESULTS) -> list[tuple[str, str]]:
    """(Id, "Name <e-mail>") of the account's contacts, by name."""
    if not account_id:
        return []
    c = snapshot["Contact"]
    mine = c[c["account_id"].fillna("").astype(str).str.slice(0, 15) == account_id[:15]]
    return [(r["id"], f"{r.get('name') or r['id']}" + (f" <{r['email']}>" if _text(r.get("email")) else ""))
            for r in mine.sort_values("name").head(limit).to_dict("records")]  # fmt: skip
