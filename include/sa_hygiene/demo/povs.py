"""The demo org's Proofs of Value (spec v3): POVs in every status, with each fault the POV rules
look for, and a few bad rows the reader must quarantine.

Apart from ``org`` on purpose: it draws from a random stream of its own (the org's seed and
stream 40), so adding POVs leaves every other object's bytes as they were for a seed, and the
same seed gives the same POVs. The opportunities are the org's own (``DemoOrg.opportunities``).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

from sa_hygiene.contract.schema import PREFIX, default_field_map

STATUSES = ["Planned", "In Progress", "Completed", "Cancelled"]
STATUS_P = [0.15, 0.45, 0.3, 0.1]
CRITERIA = [
    "Pipelines for the three pilot services run on GitLab runners in under 10 minutes.",
    "SAST and dependency scanning replace the incumbent scanner on two repositories; findings triaged in the MR.",
    "Self-managed instance on their Kubernetes cluster passes the platform team's HA failover test.",
    "Value stream analytics shows lead time for the pilot team, agreed with the VP Engineering.",
]
TOPICS = ["CI/CD migration", "Security scanning", "Self-managed HA", "Value streams", "Duo code suggestions"]


def _iso(days: np.ndarray) -> list[str | None]:
    return [None if np.isnan(d) else (date(1970, 1, 1) + np.timedelta64(int(d), "D").astype(object)).isoformat()
            for d in days]  # fmt: skip


def demo_povs(as_of: date, seed: int, user_ids: np.ndarray, user_role: np.ndarray, user_active: np.ndarray,
              manager_of: dict[str, str | None], o: dict) -> pa.Table:  # fmt: skip
    """The current (and previous: POVs take no part in the change workflows) POV table.

    About one POV per active SA on open opportunities of theirs at stage 3 to 7, in every status;
    then one row per fault of WORKFLOWS.md "Proofs of Value" (day 56, no success criteria, no or a
    closed opportunity, no result, no tech-evaluation start, an SA with four running), so that
    each rule fires at any scale; then the bad rows (an unknown status, an opportunity Id the
    snapshot does not hold).
    """
    rng = np.random.default_rng([seed, 40])
    today = (as_of - date(1970, 1, 1)).days
    sas = user_ids[(user_role == "SA") & user_active]
    sa = np.asarray(o["sa"], dtype=object)
    # A set look-up: ``np.isin`` of object arrays compares every SA with every opportunity (at
    # scale 500, a million opportunities once per active SA: the org took longer than all else).
    known = set(sas.tolist())
    of_sa = np.fromiter((x in known for x in sa), dtype=bool, count=len(sa))
    candidates = np.flatnonzero((o["rank"] >= 3) & (o["rank"] <= 7) & ~o["closed"] & of_sa)
    n = max(len(sas), 12)
    pick = rng.choice(candidates, size=n, replace=len(candidates) < n)
    status = np.array(STATUSES, dtype=object)[rng.choice(4, size=n, p=STATUS_P)]
    nan = np.full(n, np.nan)
    start = np.where(status == "Planned", np.where(rng.random(n) < 0.5, today + rng.integers(1, 20, size=n), nan),
                     today - rng.integers(3, 80, size=n)).astype(float)  # fmt: skip
    start[status == "Completed"] -= 30
    done = np.isin(status, ["Completed", "Cancelled"])
    # Ended by yesterday: most completed ones this quarter, for the report's results.
    end = np.where(done, np.minimum(start + rng.integers(7, 56, size=n), today - 1), nan)
    result = np.full(n, None, dtype=object)
    completed = status == "Completed"
    result[completed] = np.array(["Successful", "Successful", "Unsuccessful"], dtype=object)[rng.integers(0, 3, int(completed.sum()))]
    # Most completed POVs' deals have closed since, won or lost: the report sets results beside outcomes.
    decided = np.flatnonzero(o["closed"] & of_sa)
    moved = completed & (rng.random(n) < 0.7)
    if len(decided):
        pick[moved] = rng.choice(decided, size=int(moved.sum()))
    criteria = np.array(CRITERIA, dtype=object)[rng.integers(0, len(CRITERIA), size=n)]
    criteria[rng.random(n) < 0.12] = None
    rows = {
        "opp": list(o["ids"][pick]), "owner": list(sa[pick]), "status": list(status), "start": list(start),
        "end": list(end), "result": list(result), "criteria": list(criteria),
    }  # fmt: skip

    def add(opp, owner, status, start, end=np.nan, result=None, criteria=CRITERIA[0]) -> None:
        for k, v in zip(rows, (opp, owner, status, start, end, result, criteria), strict=True):
            rows[k].append(v)

    # One of each fault, whatever the draw: on the opportunities of an SA who has a manager.
    first = candidates[0]
    owner = next((s for s in sas if manager_of.get(s)), sas[0])
    opp = o["ids"][first]
    closed = o["ids"][np.flatnonzero(o["closed"])[0]]
    no_start = o["ids"][np.flatnonzero((o["rank"] == 3) & ~o["closed"] & np.isnan(o["start"]))[0]]
    add(opp, owner, "In Progress", today - 56)  # pov-overdue: day 56 exactly
    add(opp, owner, "In Progress", today - 55, criteria=None)  # day 55: not yet; pov-criteria
    add(None, owner, "Planned", today + 5)  # pov-opportunity: none
    add(closed, owner, "In Progress", today - 20)  # pov-opportunity: a closed one
    add(opp, owner, "Completed", today - 90, today - 40)  # pov-result
    add(no_start, owner, "Cancelled", today - 30, today - 10)
    # pov-load: this SA now runs five (pov-tech-eval on the one without a start date).
    add(no_start, owner, "In Progress", today - 10)
    add(opp, owner, "In Progress", today - 3)
    total = len(rows["opp"])
    ids = [f"{PREFIX['Proof_of_Value__c']}4x00000{i:05d}AAA" for i in range(total)]
    names = [f"{TOPICS[i % len(TOPICS)]} POV {i + 1}" for i in range(total)]
    names[0] = "Acme <!here> POV & <https://evil.example|click>"  # Salesforce text, escaped everywhere
    account = dict(zip(o["ids"], o["account_ids"][o["acc"]], strict=True))
    api = default_field_map()["Proof_of_Value__c"]
    stamp = f"{as_of.isoformat()}T01:00:00Z"
    table = {
        api["id"]: ids, api["name"]: names, api["opportunity_id"]: rows["opp"],
        api["account_id"]: [account.get(x) for x in rows["opp"]], api["owner_id"]: rows["owner"],
        api["status"]: rows["status"], api["start_date"]: _iso(np.asarray(rows["start"], float)),
        api["end_date"]: _iso(np.asarray(rows["end"], float)), api["result"]: rows["result"],
        api["success_criteria"]: rows["criteria"], api["last_modified"]: [stamp] * total,
        api["system_modstamp"]: [stamp] * total,
    }  # fmt: skip
    out = pa.table({k: pa.array(v, pa.string()) for k, v in table.items()})
    bad = out.slice(0, 2).to_pylist()
    bad[0].update({api["id"]: f"{PREFIX['Proof_of_Value__c']}4x0000BAD001AAA", api["status"]: "On Hold"})
    bad[1].update({api["id"]: f"{PREFIX['Proof_of_Value__c']}4x0000BAD002AAA", api["opportunity_id"]: "0064x000NOPE001AAA"})
    return pa.concat_tables([out, pa.Table.from_pylist(bad, schema=out.schema)])
