"""An independent, row-by-row reading of WORKFLOWS.md and CONTRACT.md § 3, for property tests.

Deliberately naive and written from the pages, not from the engine: plain Python over
the raw string records the tests write, its own parsing, the contract's values typed
in again rather than read from the configuration. It only handles valid rows (the
property tests generate no bad ones); the engine's quarantine is tested elsewhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

COMPANY = {"gitlab.com"}
GENERIC = {"gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "icloud.com",
           "aol.com", "proton.me", "protonmail.com"}  # fmt: skip
TAXONOMY = {
    "Customer No Show", "Customer Strategy Plan Review", "Demo", "Discovery Session", "Other",
    "Post-sales technical account management", "PoV related activity", "Presentation / pitch", "Ride Along",
    "Guided Trial", "Security Questionnaire / RFP", "Technical Deep Dive", "Technical Support",
    "Positioned Professional Services", "Professional Service Support", "SA Assistance - Subject Matter",
    "SA Assistance - Manager", "SA Assistance - Strategic Field", "Executive Solution Plan", "Partner Opportunity",
    "Partner Assisted Demand Gen", "Partner VSA Enablement", "Partner Technical Evangelism",
    "Internal Enablement and SME Assistance", "Partner Solutioning", "Partner Services Attach", "Partner Enablement",
    "Partner Cadence calls", "VSA Pitch", "VSA Execution",
}  # fmt: skip


def blank(v) -> bool:
    return v is None or str(v).strip() == ""


def val(v):
    return None if blank(v) else str(v).strip()


def key(v):
    return None if blank(v) else str(v).strip()[:15]


def d(v):
    return None if blank(v) else date.fromisoformat(str(v).strip())


def dt(v):
    return None if blank(v) else datetime.fromisoformat(str(v).strip().replace("Z", "+00:00")).astimezone(UTC)


def flag(v) -> bool:
    return not blank(v) and str(v).strip().lower() in ("true", "1", "yes")


def multi(v) -> list[str]:
    return [] if blank(v) else [x.strip() for x in str(v).split(";") if x.strip()]


def num(v) -> float:
    return 0.0 if blank(v) else float(v)


def rank(o):
    """(rank or None, lost)."""
    stage = val(o["stage"]) or ""
    closed, won = flag(o["is_closed"]), flag(o["is_won"])
    if stage in ("8-Closed Lost", "9-Unqualified", "10-Duplicate") or (closed and not won):
        return None, True
    if stage == "Closed Won":
        return 8, False
    if len(stage) >= 2 and stage[0] in "01234567" and stage[1] == "-":
        return int(stage[0]), False
    raise ValueError(f"oracle: unknown stage {stage!r}")


class Org:
    def __init__(self, tables):
        self.users = {key(u["id"]): u for u in tables.get("User", [])}

    def user_id(self, k):
        return self.users[k]["id"].strip()

    def active(self, k) -> bool:
        return k in self.users and flag(self.users[k]["is_active"])

    def is_sa(self, k) -> bool:
        return self.active(k) and val(self.users[k]["role_type"]) == "SA"

    def region(self, k):
        u = self.users.get(k)
        if u is None:
            return None
        seg, geo, reg = val(u["segment"]), val(u["geo"]), val(u["region"])
        if seg == "Channel":
            return "channels-and-alliances-sa"
        if seg == "PubSec":
            return "pubsec-sa"
        if seg in ("Mid-Market", "SMB"):
            return "commercial-sa"
        if geo == "EMEA":
            return "emea-sa"
        if geo == "APJ":
            return "apj-cs"
        if geo == "AMER" and reg == "East":
            return "east-sa"
        if geo == "AMER" and reg == "West":
            return "west-sa"
        return None

    def channel(self, k):
        r = self.region(k)
        return ("channel", "#sa-activities-" + r if r else "#sa-hygiene-ops")

    def dm(self, k, fallback):
        if k is not None and self.active(k):
            return ("user", self.user_id(k))
        if k is not None and k in self.users:
            m = key(self.users[k]["manager_id"])
            if m and self.active(m):
                return ("user", self.user_id(m))
        return fallback


def _sa_activity(t) -> bool:
    return bool(multi(t["activity_types"])) and blank(t["chorus_call_id"])


def _website_domain(w):
    w = (val(w) or "").lower()
    if "://" in w:
        w = w.split("://", 1)[1]
    for sep in "/?#:":
        w = w.split(sep, 1)[0]
    if w.startswith("www."):
        w = w[4:]
    return w or None


def oracle(cur, prev, as_of: date, since: datetime | None = None, until: datetime | None = None) -> set:
    since = since or datetime.combine(as_of - timedelta(days=1), datetime.min.time(), UTC)
    until = until or datetime.combine(as_of, datetime.min.time(), UTC)
    org = Org(cur)
    out = set()

    def add(wf, rec, to, reasons=(), sugg=None):
        out.add((wf, rec["id"].strip(), to, tuple(reasons), sugg))

    tasks = cur.get("Task", [])
    sa_tasks = [t for t in tasks if _sa_activity(t)]

    # Opportunity audits
    for o in cur.get("Opportunity", []):
        r, lost = rank(o)
        is_open = not flag(o["is_closed"]) and not lost
        sa, owner = key(o["sa"]), key(o["owner_id"])
        iacv = num(o["iacv"])
        start, end, s3 = d(o["te_start"]), d(o["te_end"]), d(o["stage3_date"])
        status, details = val(o["te_status"]), val(o["te_details"])
        owner_ch = org.channel(owner)
        to_sa = org.dm(sa, owner_ch) if sa else owner_ch
        region = org.channel(sa if sa else owner)
        # The tech-evaluation rules (wf-03, wf-04, wf-06, te-consistency) count lost opportunities.
        if (lost or (is_open and 4 <= r <= 7) or r == 8) and start and not end:
            add("wf-06", o, to_sa)
        stage3_week = is_open and r == 3 and s3 is not None and s3 <= as_of - timedelta(days=7) and iacv >= 20000 and not start
        if stage3_week and sa:
            add("wf-07", o, to_sa)
        if stage3_week and not sa:
            add("wf-12", o, region)
        if is_open and r >= 3 and flag(o["is_ps"]) and not sa:
            add("wf-10", o, region)
        if is_open and r >= 3 and iacv >= 10000 and not sa:
            add("wf-13", o, region)
        if is_open and 4 <= r <= 7 and start and (not end or not status):
            add("wf-15", o, to_sa)
        reasons = []
        if end and end > as_of:
            reasons.append("end_date_in_future")
        if status and status not in ("Win", "Loss", "Stalled"):
            reasons.append("invalid_close_status")
        if end and start and end < start:
            reasons.append("end_before_start")
        if end and not start:
            reasons.append("end_without_start")
        if status and not end:
            reasons.append("status_without_end")
        if end and not status:
            reasons.append("end_without_status")
        if status and not details:
            reasons.append("close_details_missing")
        if reasons:
            add("te-consistency", o, to_sa, reasons)
        if is_open and start and start <= as_of - timedelta(days=14) and not end:
            recent = any(
                key(t["what_id"]) == key(o["id"]) and d(t["activity_date"]) is not None
                and as_of - timedelta(days=14) < d(t["activity_date"]) <= as_of
                for t in sa_tasks
            )  # fmt: skip
            if not recent:
                add("te-stalled", o, to_sa)

    # Changes
    if prev is not None:
        before = {key(o["id"]): o for o in prev.get("Opportunity", [])}
        for o in cur.get("Opportunity", []):
            r, lost = rank(o)
            p = before.get(key(o["id"]))
            blank_row = {k: "" for k in o}
            p = p or blank_row
            if d(o["te_start"]) != d(p["te_start"]):
                add("wf-03", o, ("channel", "#sa-tech-eval-start"))
            if d(o["te_end"]) != d(p["te_end"]) or val(o["te_status"]) != val(p["te_status"]):
                add("wf-04", o, ("channel", "#sa-tech-eval-end"))
            prev_rank = None if p is blank_row else rank(p)[0]
            if not lost and r == 2 and prev_rank != 2 and num(o["iacv"]) > 20000:
                add("wf-08", o, ("channel", "#stage-move-02"))
            if not lost and not flag(o["is_closed"]) and r in (2, 3) and key(p["sa"]) and key(p["sa"]) != key(o["sa"]):
                add("wf-14", o, ("channel", "#sa-primary-sa-change"))

    # Activities
    review_from = datetime.combine(as_of - timedelta(days=7), datetime.min.time(), UTC)
    review_to = datetime.combine(as_of, datetime.min.time(), UTC)
    for t in tasks:
        owner = key(t["owner_id"])
        created = dt(t["created"])
        if not blank(t["chorus_call_id"]) and since <= created < until:
            add("wf-09", t, ("channel", "#sa-chorus-calls"))
        due = d(t["activity_date"])  # spec v3: due or overdue, up to 30 days
        if not flag(t["is_closed"]) and org.is_sa(owner) and due is not None and as_of - timedelta(days=30) <= due <= as_of:
            add("wf-11", t, org.dm(owner, org.channel(owner)))
        untyped_call = (val(t.get("task_subtype")) == "Call" and not multi(t["activity_types"])
                        and blank(t["chorus_call_id"]) and org.is_sa(owner))  # fmt: skip
        if not _sa_activity(t) and not untyped_call:
            continue
        if since <= created < until and not untyped_call:
            add("wf-02", t, org.channel(owner))
        if review_from <= created < review_to:
            types = multi(t["activity_types"])
            what, who = val(t["what_id"]) or "", val(t["who_id"])
            desc = val(t["description"]) or ""
            reasons = ["activity_type_missing"] if untyped_call else []
            if "Ride Along" in types:
                if not what.startswith("001"):
                    reasons.append("ride_along_not_account")
            elif not what.startswith("006"):
                reasons.append("related_to_not_opportunity")
            if not who:
                reasons.append("contact_missing")
            elif who.startswith("00Q"):
                reasons.append("contact_is_lead")
            if blank(t["subject"]):
                reasons.append("subject_missing")
            if not desc:
                reasons.append("description_missing")
            if any(x not in TAXONOMY for x in types):
                reasons.append("activity_type_unknown")
            if val(t["sentiment"]) not in ("Positive", "Neutral", "Negative"):
                reasons.append("sentiment_invalid")
            if any(x not in ("Individual Contributor", "Manager/Director", "Executive") for x in multi(t["persona_levels"])):
                reasons.append("persona_level_invalid")
            if "Customer Strategy Plan Review" in types and "http://" not in desc and "https://" not in desc:
                reasons.append("csp_link_missing")
            if "Other" in types and len(desc) < 80:
                reasons.append("other_too_vague")
            if reasons:
                # The order reasons are listed in is the engine's configured order.
                order = ["activity_type_missing", "related_to_not_opportunity", "ride_along_not_account", "contact_missing", "contact_is_lead",
                         "subject_missing", "description_missing", "activity_type_unknown", "sentiment_invalid",
                         "persona_level_invalid", "csp_link_missing", "other_too_vague"]  # fmt: skip
                add("act-fields", t, org.dm(owner, org.channel(owner)), sorted(reasons, key=order.index))

    # Proofs of Value (spec v3): active = Planned or In Progress; 8 weeks = 56 days; at most 3 at once.
    opp_of = {key(o["id"]): o for o in cur.get("Opportunity", [])}
    running: dict[str, int] = {}
    for p in cur.get("Proof_of_Value__c", []):
        status, owner, start = val(p["status"]), key(p["owner_id"]), d(p["start_date"])
        to = org.dm(owner, org.channel(owner))
        active, in_progress = status in ("Planned", "In Progress"), status == "In Progress"
        o = opp_of.get(key(p["opportunity_id"]))
        opp_open = o is not None and not flag(o["is_closed"]) and not rank(o)[1]
        if in_progress and start is not None and start <= as_of - timedelta(days=56) and blank(p["end_date"]):
            add("pov-overdue", p, to)
        if active and blank(p["success_criteria"]):
            add("pov-criteria", p, to)
        if active and not opp_open:
            add("pov-opportunity", p, to)
        if status == "Completed" and blank(p["result"]):
            add("pov-result", p, to)
        if in_progress and opp_open and blank(o["te_start"]):
            add("pov-tech-eval", p, to)
        if in_progress:
            running[owner] = running.get(owner, 0) + 1
    for owner, n in running.items():
        if n > 3:
            manager = key(org.users[owner]["manager_id"])
            add("pov-load", {"id": org.user_id(owner)}, org.dm(manager, org.channel(owner)))

    # wf-01
    contacts = [(val(c["email"]).lower(), key(c["id"])) for c in cur.get("Contact", []) if val(c["email"])]
    roles = [(key(r["contact_id"]), key(r["opportunity_id"])) for r in cur.get("OpportunityContactRole", [])]
    opps = {key(o["id"]): o for o in cur.get("Opportunity", [])}
    accounts = [(_website_domain(a["website"]), key(a["id"]), a["id"].strip()) for a in cur.get("Account", [])]
    for e in cur.get("Event", []):
        owner = key(e["owner_id"])
        end = dt(e["end"])
        if not (org.is_sa(owner) and since <= end < until):
            continue
        emails = [x.lower() for x in multi(e["attendee_emails"]) if "@" in x]
        # A customer on gmail.com is external; a generic domain only never names an account.
        external = [x for x in emails if x.rsplit("@", 1)[1] not in COMPANY]
        if not external:
            continue
        own = opps.get(key(e.get("what_id")))
        if own is not None and not flag(own["is_closed"]) and not rank(own)[1]:
            # (0) booked on an open opportunity: that one, whatever the attendees suggest.
            cands = [(0.0, key(own["id"]), own["id"].strip())]
        else:
            cands = []
        for email in external if not cands else ():
            for c_email, c_key in contacts:
                if c_email == email:
                    for rc, ro in roles:
                        o = opps.get(ro)
                        if rc == c_key and o is not None and not flag(o["is_closed"]) and not rank(o)[1]:
                            cands.append((-num(o["iacv"]), key(o["id"]), o["id"].strip()))
        suggestion = min(cands)[2] if cands else None
        if suggestion is None:
            acc = sorted((k, i) for dom, k, i in accounts for x in external
                         if dom and x.rsplit("@", 1)[1] == dom and dom not in GENERIC)  # fmt: skip
            if acc:
                # The account's open opportunity with the highest IACV (then lowest Id), else the account.
                mine = sorted((-num(o["iacv"]), k, o["id"].strip()) for k, o in opps.items()
                              if key(o.get("account_id")) == acc[0][0] and not flag(o["is_closed"]) and not rank(o)[1])  # fmt: skip
                suggestion = mine[0][2] if mine else acc[0][1]
        tz = val(org.users[owner]["timezone"]) or "UTC"
        local = dt(e["start"]).astimezone(ZoneInfo(tz)).date()
        logged = any(
            key(t["owner_id"]) == owner and d(t["activity_date"]) == local
            and (suggestion is None or key(t["what_id"]) == key(suggestion))
            for t in sa_tasks
        )  # fmt: skip
        if not logged:
            add("wf-01", e, org.dm(owner, org.channel(owner)), (), suggestion)
    return out
