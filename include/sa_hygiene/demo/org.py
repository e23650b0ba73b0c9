"""A realistic, deterministic demo org: a previous and a current snapshot.

The demo has to exercise every workflow and every routing path, so it is built from
proportions, not from hand-written records: regions with their time zones, SAs,
AEs and managers (some inactive, some without a manager), accounts whose websites
come in every format people type, contacts with upper-case and private e-mails,
opportunities across all stages with tech-evaluation fields (some wrong on
purpose), logged activities (some badly), Chorus calls, meetings with internal,
external and private attendees, the changes between two days, and a few bad rows
of each kind the reader must quarantine.

Generation is vectorised (numpy indices into small vocabularies, joined by Arrow)
and tasks and events are written in chunks, so a thousand times the default size
takes minutes and bounded memory. The same seed gives the same bytes.

It is one module of about 750 lines on purpose: each object's generator draws from the same
seeded stream in a fixed order, so splitting it across modules would hide the one order that
makes the org reproducible (and the benchmarks' scales comparable). Each object has one
function; ``write_demo_org`` reads as the order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sa_hygiene.contract.schema import PREFIX, default_field_map
from sa_hygiene.demo.povs import demo_povs

BASE = {"User": 150, "Account": 800, "Contact": 3000, "Opportunity": 2000, "Task": 20000, "Event": 4000}
# Below these sizes some workflow or routing path would have nothing to show.
FLOOR = {"User": 48, "Account": 20, "Contact": 60, "Opportunity": 80, "Task": 400, "Event": 80}
CHUNK = 1_000_000
REGIONS = [
    # key, segment choices, geo, region, time zones
    ("east-sa", ["Large"], "AMER", "East", ["America/New_York", "America/Toronto", "America/New_York"]),
    ("west-sa", ["Large"], "AMER", "West", ["America/Los_Angeles", "America/Denver", "America/Phoenix"]),
    ("emea-sa", ["Large"], "EMEA", "UKI", ["Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Amsterdam"]),
    ("apj-cs", ["Large"], "APJ", "ANZ", ["Australia/Sydney", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Tokyo", "Asia/Singapore"]),
    ("commercial-sa", ["Mid-Market", "SMB"], "AMER", "Central", ["America/Chicago", "America/New_York"]),
    ("pubsec-sa", ["PubSec"], "AMER", "PubSec", ["America/New_York"]),
    ("channels-and-alliances-sa", ["Channel"], "AMER", "East", ["America/New_York", "Europe/Amsterdam"]),
    # No rule routes these: LATAM and blank geography end up in the operations channel.
    ("(unrouted)", ["Large"], "LATAM", "Brazil", ["America/Sao_Paulo"]),
]
FIRST = """Aisha Ben Carla Dmitri Elena Farid Grace Hiro Ines Jonas Kemi Luca Mei Nikhil Olga Pedro Quinn
Rosa Sanjay Tara Umar Vera Wei Ximena Yusuf Zoe Amara Bruno Chloe Diego Emre Fatima Gabriel Hana Ivan Julia
Kofi Lena Marco Nadia Omar Priya Rafael Sofia Tomas Uma Viktor Wanjiru Yara Zane""".split()
LAST = """Okafor Schmidt Tanaka Rossi Novak Silva Kim Haddad Larsen Moreau Patel Nguyen Kowalski Fischer Garcia
Ivanova Mensah Costa Dubois Yilmaz Andersson Murphy Sato Ortiz Cohen Bianchi Hughes Reyes Kaur Lindqvist
Romero Walsh Ahmed Novotny Petrov Santos Bauer Eriksen Varga Mwangi""".split()
ADJ = """Blue Northern Bright Summit Harbor Granite Silver Pioneer Atlas Coastal Crimson Evergreen Frontier
Golden Horizon Iron Keystone Liberty Maple Meridian Noble Oak Pacific Quantum Redwood Sterling Titan Union
Vertex Willow Apex Beacon Cedar Delta Echo Falcon Global Highland Lakeside Metro""".split()
NOUN = """Logistics Health Bank Insurance Energy Telecom Foods Motors Airlines Media Retail Pharma Systems
Analytics Robotics Foundry Capital Mutual Networks Semiconductor Games Labs Software Freight Utilities
Biotech Hospitality Mining Textiles Publishing""".split()
SUFFIX = ["Inc", "Corp", "Group", "AG", "Ltd", "GmbH", "SA", "Co", "Holdings", "PLC"]
TLD = [".com", ".com", ".com", ".io", ".net", ".co.uk", ".de", ".com.au"]
PRODUCTS = ["Premium", "Ultimate", "Dedicated", "Duo Enterprise", "Duo Pro", "Self-Managed Ultimate"]
STAGES = ["0-Pending Acceptance", "1-Discovery", "2-Scoping", "3-Technical Evaluation", "4-Proposal",
          "5-Negotiating", "6-Awaiting Signature", "7-Closing", "Closed Won", "8-Closed Lost",
          "9-Unqualified", "10-Duplicate"]  # fmt: skip
STAGE_P = [0.05, 0.11, 0.13, 0.17, 0.08, 0.06, 0.04, 0.03, 0.13, 0.13, 0.05, 0.02]
FUNCTIONS = ["Development", "Security", "Operations", "IT", "Procurement", "Executive Leadership", "QA"]
PERSONA = ["Individual Contributor", "Manager/Director", "Executive"]
SENTIMENT = ["Positive", "Positive", "Positive", "Neutral", "Neutral", "Negative"]
GENERIC = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me"]
UNKNOWN_TYPES = ["Webinar", "Lunch & Learn", "Hackathon"]
SA_TYPES = """Demo|Discovery Session|Technical Deep Dive|PoV related activity|Presentation / pitch|Guided Trial|
Security Questionnaire / RFP|Technical Support|Post-sales technical account management|Positioned Professional Services|
Customer Strategy Plan Review|Other|Ride Along|SA Assistance - Subject Matter|Customer No Show|Executive Solution Plan|
Partner Solutioning|Partner Enablement|VSA Pitch|VSA Execution""".replace("\n", "").split("|")
SA_TYPE_P = np.array([16, 12, 12, 9, 9, 6, 4, 5, 4, 3, 3, 3, 3, 2, 2, 1, 2, 2, 1, 1], float)
# (before the account name, after it) of an activity description: two to three sentences.
DESCRIPTIONS = [
    ("We provided a SCM and CI/CD demo to the head of application development at ",
     ", which was well received. Their teams build microservices on Spring Boot and struggle with deployment "
     "consistency. Next step: a review of their current path to production."),
    ("Discovery session with the platform engineering leads of ",
     ". They run Jenkins on premises with 400 pipelines and want to consolidate tooling. We agreed to scope a "
     "proof of value focused on pipeline migration."),
    ("Technical deep dive on security scanning with the AppSec team of ",
     ". They compared our SAST and dependency scanning with their current vendor; sentiment positive. Action: "
     "share the compliance framework docs."),
    ("Weekly PoV check-in with ",
     ". Two of the five success criteria are met; runners on Kubernetes are still failing on their proxy. Opened "
     "a support ticket and booked a working session for Thursday."),
    ("Presented the GitLab platform vision to the CTO staff of ",
     ". Strong interest in value stream analytics and AI features; procurement asked for a pricing proposal by the end "
     "of the month."),
    ("Answered the security questionnaire for ",
     " together with our security team. 212 questions, 4 open items on data residency that need legal review."),
    ("Customer strategy plan review with ",
     ". Walked through adoption goals for next year and agreed the expansion plan. Notes: "
     "https://docs.example.com/csp-review"),
    ("Quick sync with ", ". Short call."),
    ("Helped the AE with a pricing question for ", "."),
    ("Guided trial kickoff with the developer experience team at ",
     ". Set up a trial group, imported three repositories and ran the first pipeline together. Follow up next week "
     "to review results with their manager."),
]
DESCRIPTION_P = np.array([14, 14, 12, 12, 8, 6, 5, 4, 3, 8], float)
CSP_LINKLESS = (" strategy plan review, notes to follow by e-mail to the account team and the champion.", "")
OTHER_LONG = ("Internal account planning session for ",
              " with the AE and the CSM: mapped stakeholders, agreed the technical win plan and the next three meetings.")


def sf_ids(prefix: str, n: int, offset: int = 0, short_every: int = 0) -> np.ndarray:
    """Salesforce-style 18-character Ids (with a valid case checksum) for a key prefix."""
    idx = np.arange(offset, offset + n, dtype=np.int64)
    alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    digits = np.empty((n, 6), dtype=np.uint8)
    rest = idx.copy()
    for pos in range(5, -1, -1):
        digits[:, pos] = alphabet[rest % 62]
        rest //= 62
    head = np.frombuffer((prefix + "4x0000").encode(), dtype=np.uint8)
    body = np.concatenate([np.broadcast_to(head, (n, 9)), digits], axis=1)
    upper = (body >= ord("A")) & (body <= ord("Z"))
    weights = 1 << np.arange(5)
    check_alpha = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", dtype=np.uint8)
    check = np.stack([check_alpha[(upper[:, 5 * j : 5 * j + 5] * weights).sum(axis=1)] for j in range(3)], axis=1)
    full = np.concatenate([body, check], axis=1)
    out = full.view(f"S{18}").ravel().astype(str)
    if short_every:
        out = out.astype(object)
        out[::short_every] = [s[:15] for s in out[::short_every]]
        out = out.astype(str)
    return out


def _pick(rng: np.random.Generator, values, n: int, p=None) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    if p is not None:
        p = np.asarray(p, float) / np.sum(p)
    return values[rng.choice(len(values), size=n, p=p)]


def _join(*parts) -> pa.Array:
    """Element-wise string concatenation of arrays and scalars, in Arrow."""
    arrays = [pa.array(p, pa.string()) if isinstance(p, np.ndarray) else p for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def _iso_date(days: np.ndarray) -> pa.Array:
    """Dates (days since epoch, NaN = blank) as ISO strings, the way the Salesforce API writes them."""
    mask = np.isnan(days) if days.dtype.kind == "f" else np.zeros(len(days), bool)
    return pc.cast(pa.array(np.where(mask, 0, days).astype("int32"), pa.date32(), mask=mask), pa.string())


def _iso_datetime(seconds: np.ndarray) -> pa.Array:
    """Instants as the API writes them, ``2026-11-23T15:04:05.000+0000`` (a cast is 3x faster than strftime)."""
    mask = np.isnan(seconds) if seconds.dtype.kind == "f" else np.zeros(len(seconds), bool)
    values = pa.array(np.where(mask, 0, seconds).astype("int64"), pa.timestamp("s"), mask=mask)
    return pc.binary_join_element_wise(pc.replace_substring(pc.cast(values, pa.string()), " ", "T"), ".000+0000", "")


def _days(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _table(obj: str, columns: dict) -> pa.Table:
    api = default_field_map()[obj]
    return pa.table({api.get(k, k): (v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)) for k, v in columns.items()})


@dataclass
class _Users:
    ids: np.ndarray
    region: np.ndarray  # index into REGIONS
    role: np.ndarray
    active: np.ndarray
    email: np.ndarray
    tz: np.ndarray


class DemoOrg:
    """Builds the tables of one org; ``write`` puts a previous and a current snapshot on disk."""

    def __init__(self, as_of: date, scale: float = 1.0, seed: int = 7):
        self.as_of = as_of
        self.scale = scale
        self.seed = seed
        self.n = {k: max(int(round(v * scale)), FLOOR[k]) for k, v in BASE.items()}
        self.current_at = datetime.combine(as_of, time(5, 0), UTC)
        self.previous_at = self.current_at - timedelta(days=1)
        self.window = (datetime.combine(as_of - timedelta(days=1), time(0), UTC), datetime.combine(as_of, time(0), UTC))

    def rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *stream])

    # ------------------------------------------------------------------ users
    def users(self) -> tuple[pa.Table, _Users]:
        rng = self.rng(1)
        n = self.n["User"]
        ids = sf_ids(PREFIX["User"], n)
        region = rng.choice(len(REGIONS), size=n, p=[0.2, 0.16, 0.16, 0.13, 0.14, 0.08, 0.08, 0.05])
        role = _pick(rng, ["SA", "AE", "Manager", "SA Manager", "CSM"], n, [0.3, 0.42, 0.1, 0.06, 0.12])
        # Every region gets at least one SA, AE and manager, whatever the scale.
        for r in range(len(REGIONS)):
            base = r * 4
            region[base : base + 4] = r
            role[base : base + 4] = ["SA", "AE", "Manager", "SA"]
        active = rng.random(n) > 0.06
        active[: len(REGIONS) * 4] = True
        active[3] = False  # an inactive SA whose manager is active
        first, last = _pick(rng, FIRST, n), _pick(rng, LAST, n)
        names = np.char.add(np.char.add(first.astype(str), " "), last.astype(str))
        local = np.char.lower(np.char.add(np.char.add(first.astype(str), "."), last.astype(str)))
        email = np.char.add(np.char.add(local, np.arange(n).astype(str)), "@gitlab.com")
        tz = np.array([rng.choice(REGIONS[r][4]) for r in region], dtype=object)
        segment = np.array([rng.choice(REGIONS[r][1]) for r in region], dtype=object)
        geo = np.array([REGIONS[r][2] for r in region], dtype=object)
        reg = np.array([REGIONS[r][3] for r in region], dtype=object)
        geo[(region == 7) & (rng.random(n) < 0.3)] = None  # blank geography: unrouted too
        # Managers: a manager of the same region; ~8% of people have none, some managers are inactive.
        manager = np.full(n, None, dtype=object)
        for r in range(len(REGIONS)):
            in_region = np.flatnonzero(region == r)
            bosses = in_region[np.isin(role[in_region], ["Manager", "SA Manager"])]
            if len(bosses):
                manager[in_region] = ids[rng.choice(bosses, size=len(in_region))]
        manager[np.isin(role, ["Manager", "SA Manager"])] = None
        manager[rng.random(n) < 0.08] = None
        manager[3] = ids[2]  # the inactive SA's manager (region 0's Manager) is active
        table = _table("User", {
            "id": ids, "name": names, "email": email, "is_active": active, "manager_id": manager,
            "timezone": tz, "segment": segment, "geo": geo, "region": reg, "role_type": role,
        })  # fmt: skip
        return table, _Users(ids, region, role, active, email, tz)

    # ------------------------------------------------------------------ accounts and contacts
    def accounts(self) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        rng = self.rng(2)
        n = self.n["Account"]
        ids = sf_ids(PREFIX["Account"], n)
        adj, noun, suf = _pick(rng, ADJ, n), _pick(rng, NOUN, n), _pick(rng, SUFFIX, n)
        names = np.char.add(np.char.add(np.char.add(adj.astype(str), " "), np.char.add(noun.astype(str), " ")), suf.astype(str))
        slug = np.char.lower(np.char.add(adj.astype(str), noun.astype(str)))
        domain = np.char.add(np.char.add(slug, np.arange(n).astype(str)), _pick(rng, TLD, n).astype(str))
        # The exact-domain rule: epsi.com must never match pepsi.com.
        names[0], domain[0] = "Pepsi Beverages Co", "pepsi.com"
        names[1], domain[1] = "EPSI Systems Ltd", "epsi.com"
        fmt = rng.choice(7, size=n, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.05])
        website = np.empty(n, dtype=object)
        for k, (pre, post) in enumerate([("https://www.", ""), ("", ""), ("http://", "/"), ("www.", ""),
                                         ("https://", "/en/home?ref=sfdc"), ("HTTPS://WWW.", "")]):  # fmt: skip
            sel = fmt == k
            website[sel] = [pre + (d.upper() if k == 5 else d) + post for d in domain[sel]]
        website[fmt == 6] = None
        website[0], website[1] = "https://www.pepsi.com/", "epsi.com"
        owner = np.full(n, None, dtype=object)
        return _table("Account", {"id": ids, "name": names, "website": website, "owner_id": owner}), ids, domain

    def contacts(self, account_ids: np.ndarray, domain: np.ndarray) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        rng = self.rng(3)
        n = self.n["Contact"]
        ids = sf_ids(PREFIX["Contact"], n)
        acc = np.sort(rng.integers(0, len(account_ids), size=n))
        first, last = _pick(rng, FIRST, n).astype(str), _pick(rng, LAST, n).astype(str)
        local = np.char.lower(np.char.add(np.char.add(first, "."), last))
        email = np.char.add(np.char.add(local, "@"), domain[acc]).astype(object)
        upper = rng.random(n) < 0.1
        email[upper] = np.char.upper(email[upper].astype(str))
        private = rng.random(n) < 0.08
        email[private] = np.char.add(np.char.add(local[private], "@"), _pick(rng, GENERIC, int(private.sum())).astype(str))
        email[rng.random(n) < 0.03] = None
        names = np.char.add(np.char.add(first, " "), last)
        table = _table("Contact", {"id": ids, "account_id": account_ids[acc], "name": names, "email": email})
        return table, acc, email

    # ------------------------------------------------------------------ opportunities
    def opportunities(self, users: _Users, account_ids, account_names) -> dict:
        rng = self.rng(4)
        n = self.n["Opportunity"]
        today = _days(self.as_of)
        ids = sf_ids(PREFIX["Opportunity"], n)
        acc = rng.integers(0, len(account_ids), size=n)
        stage_idx = rng.choice(len(STAGES), size=n, p=STAGE_P)
        stage = np.array(STAGES, dtype=object)[stage_idx]
        rank = np.where(stage_idx <= 8, stage_idx, -1)  # -1: lost
        won, lost = stage_idx == 8, stage_idx >= 9
        closed = won | lost

        aes = np.flatnonzero((users.role == "AE") & users.active)
        owner_i = rng.choice(aes, size=n)
        anyone = rng.random(n) < 0.02  # some owners have left: inactive AEs
        owner_i[anyone] = rng.choice(np.flatnonzero(users.role == "AE"), size=int(anyone.sum()))
        owner_region = users.region[owner_i]
        # Primary SA from the owner's region for most opportunities at stage 2 and beyond.
        sa = np.full(n, None, dtype=object)
        for r in range(len(REGIONS)):
            sas = np.flatnonzero((users.role == "SA") & (users.region == r))
            sel = owner_region == r
            if len(sas):
                sa[sel] = users.ids[rng.choice(sas, size=int(sel.sum()))]
        has_sa = (rank >= 2) & (rng.random(n) < 0.78) | (won & (rng.random(n) < 0.9))
        sa[~has_sa] = None

        iacv = np.round(rng.lognormal(np.log(18000), 1.1, size=n), 2)
        iacv[rng.random(n) < 0.04] = np.nan
        boundary = rng.choice(n, size=min(n, 12), replace=False)
        iacv[boundary] = [20000, 19999.99, 10000, 9999.99, 20000.01, 20000, 19999.99, 10000, 20000, 20000.01, 10000, 20000][: len(boundary)]

        nan = np.full(n, np.nan)
        stage3 = np.where((rank >= 3) | won, today - rng.integers(0, 150, size=n), nan)
        stage3[(rank == 3) & (rng.random(n) < 0.2)] = np.nan
        exact = np.flatnonzero(rank == 3)[:6]
        stage3[exact] = today - np.array([7, 6, 7, 6, 8, 14])[: len(exact)]
        start = np.where(((rank == 3) & (rng.random(n) < 0.5)) | (((rank >= 4) | won) & (rng.random(n) < 0.8)),
                         np.minimum(np.nan_to_num(stage3, nan=today - 30) + rng.integers(0, 12, size=n), today), nan)
        end = np.where(~np.isnan(start) & ((won & (rng.random(n) < 0.85)) | ((rank >= 4) & (rng.random(n) < 0.55))),
                       np.minimum(start + rng.integers(5, 70, size=n), today - 1), nan)
        status = np.full(n, None, dtype=object)
        has_end = ~np.isnan(end)
        status[has_end] = _pick(rng, ["Win", "Win", "Win", "Loss", "Stalled"], int(has_end.sum()))
        status[has_end & won] = "Win"
        status[has_end & (rng.random(n) < 0.08)] = None  # end without status
        details = np.full(n, None, dtype=object)
        has_status = status != None  # noqa: E711
        details[has_status] = _pick(rng, [
            "Customer validated pipeline migration and security scanning against their success criteria.",
            "PoV ended without a decision; champion left the company.",
            "Lost to the incumbent on price; technical criteria were all met.",
            "Technical win confirmed by the platform team lead in writing.",
        ], int(has_status.sum()))  # fmt: skip
        details[has_status & (rng.random(n) < 0.1)] = None
        # Wrong on purpose, a little of each: what te-consistency exists to catch.
        wrong = rng.random(n)
        end[(wrong < 0.015) & has_end] = today + 10  # forecast end date
        end[(wrong > 0.985) & has_end] = start[(wrong > 0.985) & has_end] - 3  # end before start
        status[(wrong > 0.5) & (wrong < 0.51) & has_status] = "Won"
        sws = (wrong > 0.6) & (wrong < 0.61) & ~has_end & ~np.isnan(start)
        status[sws] = "Stalled"  # status without end
        ews = (wrong > 0.7) & (wrong < 0.705) & has_end
        start[ews] = np.nan  # end without start
        # Lost deals had evaluations too, some left half-recorded (wf-06, te-consistency apply to them).
        # A stream of its own, so that every value drawn above stays the same for a seed.
        lost_rng = self.rng(4, 1)
        evaluated = lost & (lost_rng.random(n) < 0.35)
        start[evaluated] = today - lost_rng.integers(30, 200, size=int(evaluated.sum()))
        ended = evaluated & (lost_rng.random(n) < 0.6)
        end[ended] = np.minimum(start[ended] + lost_rng.integers(5, 60, size=int(ended.sum())), today - 1)
        status[ended] = _pick(lost_rng, ["Loss", "Loss", "Stalled", "Win", None], int(ended.sum()))
        details[ended & (status != None)] = "Customer chose to stay on the incumbent."  # noqa: E711

        is_ps = rng.random(n) < 0.08
        close = today + rng.integers(-200, 180, size=n)
        product = _pick(rng, PRODUCTS, n).astype(str)
        seats = (rng.integers(1, 40, size=n) * 25).astype(str)
        names = _join(account_names[acc], " - ", product, " - ", seats, " seats")
        names = names.to_numpy(zero_copy_only=False).astype(object)
        names[0] = "Acme <!channel> Expansion & <https://evil.example|click here>"
        return dict(ids=ids, acc=acc, account_ids=account_ids, stage=stage, rank=rank, won=won, lost=lost,
                    closed=closed, owner=users.ids[owner_i], sa=sa, iacv=iacv, stage3=stage3, start=start,
                    end=end, status=status, details=details, is_ps=is_ps, close=close, names=names)  # fmt: skip

    def opportunity_tables(self, o: dict, users: _Users) -> tuple[pa.Table, pa.Table]:
        """(current, previous): the previous day differs where the change workflows should fire."""
        rng = self.rng(5)
        n = len(o["ids"])
        now = self.current_at.timestamp()
        stamp = now - rng.integers(86400, 86400 * 120, size=n)
        cur = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in o.items()}
        prev = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in o.items()}
        today = _days(self.as_of)
        changed = np.zeros(n, bool)
        r = rng.random(n)
        # wf-03: start date set, moved or cleared since yesterday.
        sel = ~np.isnan(o["start"]) & (r < 0.03)
        prev["start"][sel] = np.where(rng.random(int(sel.sum())) < 0.5, np.nan, o["start"][sel] - 5)
        cleared = np.isnan(o["start"]) & (o["rank"] >= 3) & (r < 0.01)
        prev["start"][cleared] = today - 20
        changed |= sel | cleared
        # wf-04: end date or close status changed.
        sel = ~np.isnan(o["end"]) & (r > 0.96)
        prev["end"][sel] = np.nan
        prev["status"][sel] = None
        changed |= sel
        # wf-08: moved to stage 2 (from 1 or from 3).
        sel = (o["rank"] == 2) & (r > 0.5) & (r < 0.62)
        prev["stage"][sel] = np.where(rng.random(int(sel.sum())) < 0.8, "1-Discovery", "3-Technical Evaluation")
        changed |= sel
        # wf-14: Primary SA reassigned, cleared, or assigned for the first time (which is no change).
        sas = users.ids[(users.role == "SA") & users.active]
        early = (o["rank"] == 2) | (o["rank"] == 3)
        sel = early & (o["sa"] != None) & (r > 0.3) & (r < 0.36)  # noqa: E711
        prev["sa"][sel] = rng.choice(sas, size=int(sel.sum()))
        cleared_sa = early & (o["sa"] == None) & (r > 0.3) & (r < 0.34)  # noqa: E711
        prev["sa"][cleared_sa] = rng.choice(sas, size=int(cleared_sa.sum()))
        first = early & (o["sa"] != None) & (r > 0.4) & (r < 0.43)  # noqa: E711
        prev["sa"][first] = None
        changed |= sel | cleared_sa | first
        stamp[changed] = now - rng.integers(60, 86000, size=int(changed.sum()))
        new = rng.random(n) < 0.01  # created since yesterday
        stamp[new] = now - rng.integers(60, 86000, size=int(new.sum()))

        def table(d: dict, keep: np.ndarray) -> pa.Table:
            return _table("Opportunity", {
                "id": d["ids"][keep], "name": d["names"][keep], "account_id": d["account_ids"][d["acc"][keep]],
                "owner_id": d["owner"][keep], "stage": d["stage"][keep], "is_closed": d["closed"][keep],
                "is_won": d["won"][keep], "close_date": _iso_date(d["close"][keep]), "iacv": d["iacv"][keep],
                "sa": d["sa"][keep], "stage3_date": _iso_date(d["stage3"][keep]), "te_start": _iso_date(d["start"][keep]),
                "te_end": _iso_date(d["end"][keep]), "te_status": d["status"][keep], "te_details": d["details"][keep],
                "is_ps": d["is_ps"][keep], "last_modified": _iso_datetime(stamp[keep]),
                "system_modstamp": _iso_datetime(stamp[keep]),
            })  # fmt: skip

        current = table(cur, np.ones(n, bool))
        previous = table(prev, ~new)
        return _with_bad_opportunities(current, users, now), previous

    def contact_roles(self, o: dict, contact_acc: np.ndarray, contact_ids: np.ndarray) -> pa.Table:
        rng = self.rng(6)
        n = len(o["ids"])
        starts = np.searchsorted(contact_acc, np.arange(len(o["account_ids"])))
        counts = np.bincount(contact_acc, minlength=len(o["account_ids"]))
        opp_i, contact_i = [], []
        for extra in (0, 1):
            sel = (counts[o["acc"]] > 0) & (rng.random(n) < (0.75 if extra == 0 else 0.35))
            pick = starts[o["acc"][sel]] + rng.integers(0, 1 << 30, size=int(sel.sum())) % counts[o["acc"][sel]]
            opp_i.append(np.flatnonzero(sel))
            contact_i.append(pick)
        opp_i, contact_i = np.concatenate(opp_i), np.concatenate(contact_i)
        ids = sf_ids("00K", len(opp_i))
        return _table("OpportunityContactRole", {"id": ids, "opportunity_id": o["ids"][opp_i], "contact_id": contact_ids[contact_i]})

    # ------------------------------------------------------------------ tasks
    def task_chunks(self, users: _Users, o: dict, contact_ids: np.ndarray, account_ids: np.ndarray, account_names: np.ndarray):
        """Yield (current chunk, previous chunk) tables of tasks, CHUNK rows at a time."""
        total = self.n["Task"]
        sa_i = np.flatnonzero(users.role == "SA")
        ae_i = np.flatnonzero(users.role == "AE")
        open_opps = np.flatnonzero(~o["closed"])
        lead_ids = sf_ids(PREFIX["Lead"], 50)
        now = self.current_at.timestamp()
        for chunk, offset in enumerate(range(0, total, CHUNK)):
            n = min(CHUNK, total - offset)
            rng = self.rng(7, chunk)
            kind = rng.choice(3, size=n, p=[0.62, 0.28, 0.10])  # SA activity, other task, Chorus call
            sa_act, chorus = kind == 0, kind == 2
            owner = np.where(sa_act, rng.choice(sa_i, size=n), rng.choice(ae_i, size=n))
            owner = np.where(chorus & (rng.random(n) < 0.5), rng.choice(sa_i, size=n), owner)
            # A year of activity, a little denser lately: about 1.5 logged activities per SA and day.
            recent = rng.random(n) < 0.1
            age = np.where(recent, np.minimum(rng.exponential(30, size=n), 364), rng.uniform(0, 365, size=n)) * 86400
            created = np.floor(now - 3600 * 5 - age + rng.uniform(0, 3600 * 5, size=n))
            created_day = (created // 86400).astype(np.int64)
            activity = created_day.astype(float)
            is_closed = np.where(sa_act, rng.random(n) < 0.97, rng.random(n) < 0.6)
            later = ~is_closed
            activity[later] = created_day[later] + rng.integers(0, 10, size=int(later.sum()))
            due_today = later & (rng.random(n) < 0.06)
            activity[due_today] = _days(self.as_of)
            activity[rng.random(n) < 0.004] = np.nan

            # Related To: mostly an open opportunity; Ride Alongs on accounts; some wrong on purpose.
            types = _pick(rng, SA_TYPES, n, SA_TYPE_P).astype(object)
            headline = types.astype(str)
            second = rng.random(n) < 0.22
            types[second] = np.char.add(np.char.add(types[second].astype(str), ";"), _pick(rng, SA_TYPES[:8], int(second.sum())).astype(str))
            unknown = rng.random(n) < 0.012
            types[unknown] = _pick(rng, UNKNOWN_TYPES, int(unknown.sum()))
            ride = np.char.find(types.astype(str), "Ride Along") >= 0
            what = o["ids"][rng.choice(open_opps if len(open_opps) else np.arange(len(o["ids"])), size=n)].astype(object)
            on_account = (ride & (rng.random(n) < 0.85)) | (~ride & (rng.random(n) < 0.03))
            what[on_account] = account_ids[rng.integers(0, len(account_ids), size=int(on_account.sum()))]
            what[rng.random(n) < 0.025] = None
            short = rng.random(n) < 0.05
            what[short & (what != None)] = [w[:15] for w in what[short & (what != None)]]  # noqa: E711
            who = contact_ids[rng.integers(0, len(contact_ids), size=n)].astype(object)
            lead = rng.random(n) < 0.06
            who[lead] = lead_ids[rng.integers(0, len(lead_ids), size=int(lead.sum()))]
            who[rng.random(n) < 0.06] = None

            d = rng.choice(len(DESCRIPTIONS), size=n, p=DESCRIPTION_P / DESCRIPTION_P.sum())
            pre = np.array([p for p, _ in DESCRIPTIONS], dtype=object)[d]
            post = np.array([s for _, s in DESCRIPTIONS], dtype=object)[d]
            csp = np.char.find(types.astype(str), "Customer Strategy Plan Review") >= 0
            other = np.char.find(types.astype(str), "Other") >= 0
            linkless = csp & (rng.random(n) < 0.3)
            pre[linkless], post[linkless] = "Customer", CSP_LINKLESS[0]
            long_other = other & (rng.random(n) < 0.6)
            pre[long_other], post[long_other] = OTHER_LONG
            acc_name = account_names[rng.integers(0, len(account_names), size=n)]
            description = _join(pre, np.where(linkless, "", acc_name), post)
            description = pc.if_else(pa.array(rng.random(n) < 0.02), pa.scalar(None, pa.string()), description)
            subject = _join(headline, " - ", acc_name)
            subject = pc.if_else(pa.array(rng.random(n) < 0.01), pa.scalar(" ", pa.string()), subject)
            if offset == 0:
                description = pc.if_else(pa.array(np.arange(n) == 0), pa.scalar(
                    "Demo went great <!here> <@U024BE7LH> see <https://evil.example|the notes> & the deck", pa.string()), description)

            sentiment = _pick(rng, SENTIMENT, n).astype(object)
            sentiment[rng.random(n) < 0.07] = None
            sentiment[rng.random(n) < 0.015] = "Very Positive"
            persona = _pick(rng, PERSONA, n).astype(object)
            two = rng.random(n) < 0.25
            persona[two] = np.char.add(np.char.add(persona[two].astype(str), ";"), _pick(rng, PERSONA, int(two.sum())).astype(str))
            persona[rng.random(n) < 0.35] = None
            persona[rng.random(n) < 0.012] = "VP"
            functions = _pick(rng, FUNCTIONS, n).astype(object)
            functions[rng.random(n) < 0.4] = None
            products = _pick(rng, ["Premium", "Ultimate", "Ultimate;Duo Pro", "Duo Enterprise", None], n)

            blank_type = ~sa_act
            types[blank_type] = None
            types[chorus & (rng.random(n) < 0.2)] = "Demo"  # a Chorus call is never an SA activity
            sentiment[blank_type & ~chorus] = None
            chorus_id = np.full(n, None, dtype=object)
            chorus_id[chorus] = np.char.add("ch-", rng.integers(10**9, 10**10, size=int(chorus.sum())).astype(str))
            subject = pc.if_else(pa.array(chorus), _join("Chorus call: ", acc_name), subject)
            subject = pc.if_else(pa.array(kind == 1), _join(_pick(rng, ["Follow up", "Send proposal", "Call back", "Prepare QBR"], n), " - ", acc_name), subject)

            ids = sf_ids(PREFIX["Task"], n, offset=offset)
            stamp = created + rng.uniform(0, 600, size=n)
            cols = {
                "id": ids, "owner_id": users.ids[owner], "what_id": what, "who_id": who, "account_id": None,
                "subject": subject, "description": description, "activity_date": _iso_date(activity),
                "status": np.where(is_closed, "Completed", "Open"), "is_closed": is_closed,
                "created": _iso_datetime(created), "activity_types": types, "products": products,
                "persona_levels": persona, "persona_functions": functions, "sentiment": sentiment,
                "chorus_call_id": chorus_id, "last_modified": _iso_datetime(stamp), "system_modstamp": _iso_datetime(stamp),
            }  # fmt: skip
            cols["account_id"] = np.full(n, None, dtype=object)
            # TaskSubtype: SAs log many activities with "Log a Call"; a few such calls carry no
            # activity type (act-fields: activity_type_missing). A stream of its own keeps the
            # values above the same for a seed.
            sub_rng = self.rng(7, chunk, 1)
            subtype = np.where(chorus, "Call", np.where(sub_rng.random(n) < 0.35, "Call", "Task")).astype(object)
            subtype[sa_act & (sub_rng.random(n) < 0.1)] = "Email"
            untyped = (kind == 1) & (sub_rng.random(n) < 0.05)
            cols["owner_id"] = np.where(untyped, users.ids[sub_rng.choice(sa_i, size=n)], cols["owner_id"])
            subtype[untyped] = "Call"
            cols["task_subtype"] = subtype
            current = _table("Task", cols)
            previous = current.filter(pa.array(created < self.previous_at.timestamp()))
            yield current, previous

    # ------------------------------------------------------------------ events
    def events(self, users: _Users, o: dict, contacts: tuple, roles: pa.Table, domains: np.ndarray) -> tuple[pa.Table, pa.Table, pa.Table]:
        """(current, previous, extra logged tasks) for meetings; some meetings are already logged."""
        rng = self.rng(8)
        n = self.n["Event"]
        _, contact_acc, contact_email = contacts
        sa_i = np.flatnonzero((users.role == "SA") & users.active)
        ae_i = np.flatnonzero(users.role == "AE")
        owner = np.where(rng.random(n) < 0.6, rng.choice(sa_i, size=n), rng.choice(ae_i, size=n))
        now = self.current_at.timestamp()
        w0, w1 = self.window[0].timestamp(), self.window[1].timestamp()
        start = now - rng.uniform(0, 60 * 86400, size=n)
        in_window = rng.random(n) < 0.03  # two or three meetings a day per SA
        start[in_window] = rng.uniform(w0 - 1800, w1 - 1800, size=int(in_window.sum()))
        start = np.floor(start / 900) * 900
        end = start + _pick(rng, [1800, 2700, 3600], n).astype(float)

        role_opp = np.asarray(roles.column("OpportunityId").to_pylist(), dtype=object)
        role_contact = np.asarray(roles.column("ContactId").to_pylist(), dtype=object)
        contact_ids = np.asarray(contacts[0].column("Id").to_pylist(), dtype=object)
        email_of = dict(zip(contact_ids, contact_email, strict=True))
        role_email = np.array([email_of.get(c) for c in role_contact], dtype=object)
        usable = role_email != None  # noqa: E711
        role_opp, role_email = role_opp[usable], role_email[usable]

        kind = rng.choice(5, size=n, p=[0.35, 0.2, 0.15, 0.15, 0.15])  # role contact, contact, domain, private, internal
        external = np.empty(n, dtype=object)
        pick_role = rng.integers(0, max(len(role_email), 1), size=n)
        external[kind == 0] = role_email[pick_role[kind == 0]] if len(role_email) else None
        pick_c = rng.integers(0, len(contact_email), size=n)
        external[kind == 1] = contact_email[pick_c[kind == 1]]
        pick_d = rng.integers(0, len(domains), size=n)
        external[kind == 2] = np.char.add("it.team@", domains[pick_d[kind == 2]].astype(str))
        external[kind == 3] = np.char.add("someone@", _pick(rng, GENERIC, int((kind == 3).sum())).astype(str))
        external[kind == 4] = users.email[rng.integers(0, len(users.email), size=int((kind == 4).sum()))]
        upper = rng.random(n) < 0.15
        external[upper & (external != None)] = [e.upper() for e in external[upper & (external != None)]]  # noqa: E711
        attendees = [";".join(x for x in (users.email[owner[i]], external[i]) if x) for i in range(n)]
        attendees = np.array(attendees, dtype=object)
        what = np.full(n, None, dtype=object)
        what[kind == 0] = role_opp[pick_role[kind == 0]] if len(role_opp) else None

        ids = sf_ids(PREFIX["Event"], n)
        subject = _join("GitLab <> ", _pick(rng, ["intro", "demo", "PoV sync", "architecture review", "QBR"], n).astype(str))
        current = _table("Event", {
            "id": ids, "owner_id": users.ids[owner], "subject": subject, "start": _iso_datetime(start),
            "end": _iso_datetime(end), "what_id": what, "attendee_emails": attendees,
            "system_modstamp": _iso_datetime(np.minimum(start - 86400 * 3, now - 60)),
        })  # fmt: skip
        previous = current.filter(pa.array(np.minimum(start - 86400 * 3, now - 60) < self.previous_at.timestamp()))

        # Some SAs already logged yesterday's meeting on the opportunity of their contact.
        logged = in_window & (kind == 0) & np.isin(owner, sa_i) & (rng.random(n) < 0.5) & (what != None)  # noqa: E711
        created = end[logged] + 1800
        logged_tasks = _meeting_logs(sf_ids(PREFIX["Task"], int(logged.sum()), offset=self.n["Task"] + 10), users,
                                     owner[logged], what[logged], subject.filter(pa.array(logged)), start[logged], created)  # fmt: skip
        return current, previous, logged_tasks

    def day_changes(self, users: _Users, contacts: tuple, roles: pa.Table) -> tuple[pa.Table, pa.Table]:
        """(Event, Task) rows the changes feed brings during ``as_of``: customer meetings booked
        after the snapshot for later that day, and, for about half of them, the SA's activity
        logged 10 to 50 minutes after the meeting ended. Every row carries its SystemModstamp,
        so the demo can hand the reminders what a 15-minute feed would have pulled by then."""
        rng = self.rng(11)
        sa_i = np.flatnonzero((users.role == "SA") & users.active)
        n = max(8, int(round(0.3 * len(sa_i))))
        owner = rng.choice(sa_i, size=n)
        day0 = datetime.combine(self.as_of, time(0), UTC).timestamp()
        booked = np.floor((day0 + rng.uniform(5.5 * 3600, 11 * 3600, size=n)) / 60) * 60
        start = np.floor((booked + rng.uniform(3600, 9 * 3600, size=n)) / 900) * 900
        end = start + _pick(rng, [1800, 2700, 3600], n).astype(float)
        contact_ids = np.asarray(contacts[0].column("Id").to_pylist(), dtype=object)
        email_of = dict(zip(contact_ids, contacts[2], strict=True))
        role_opp = np.asarray(roles.column("OpportunityId").to_pylist(), dtype=object)
        role_email = np.array([email_of.get(c) for c in roles.column("ContactId").to_pylist()], dtype=object)
        usable = np.flatnonzero(role_email != None)  # noqa: E711
        pick = usable[rng.integers(0, len(usable), size=n)]
        ids = sf_ids(PREFIX["Event"], n, offset=self.n["Event"] + 10)
        subject = _join("GitLab <> ", _pick(rng, ["intro", "demo", "PoV sync", "architecture review"], n).astype(str))
        events = _table("Event", {
            "id": ids, "owner_id": users.ids[owner], "subject": subject, "start": _iso_datetime(start),
            "end": _iso_datetime(end), "what_id": role_opp[pick],
            "attendee_emails": np.array([f"{users.email[o]};{e}" for o, e in zip(owner, role_email[pick], strict=True)], dtype=object),
            "system_modstamp": _iso_datetime(booked),
        })  # fmt: skip
        logged = rng.random(n) < 0.5
        m = int(logged.sum())
        created = end[logged] + rng.uniform(600, 3000, size=m)
        tasks = _meeting_logs(sf_ids(PREFIX["Task"], m, offset=self.n["Task"] + 5000), users, owner[logged],
                              role_opp[pick][logged], subject.filter(pa.array(logged)), start[logged], created)  # fmt: skip
        return events, tasks

    # ------------------------------------------------------------------ writing
    def write(self, out: str | Path) -> dict:
        out = Path(out)
        cur_dir, prev_dir = out / "current", out / "previous"
        for d in (cur_dir, prev_dir):
            d.mkdir(parents=True, exist_ok=True)
            for old in d.glob("*.parquet"):
                old.unlink()
        counts: dict[str, int] = {}

        def put(obj: str, current: pa.Table, previous: pa.Table) -> None:
            pq.write_table(current, cur_dir / f"{obj}.parquet", compression="zstd")
            pq.write_table(previous, prev_dir / f"{obj}.parquet", compression="zstd")
            counts[obj] = current.num_rows

        user_table, users = self.users()
        put("User", user_table, user_table)
        acc_table, account_ids, domains = self.accounts()
        put("Account", acc_table, acc_table)
        contacts = self.contacts(account_ids, domains)
        put("Contact", contacts[0], contacts[0])
        account_names = np.asarray(acc_table.column("Name").to_pylist(), dtype=object)
        o = self.opportunities(users, account_ids, account_names)
        opp_cur, opp_prev = self.opportunity_tables(o, users)
        put("Opportunity", opp_cur, opp_prev)
        # Proofs of Value (spec v3): a stream of their own, so nothing above changes for a seed.
        managers = dict(zip(user_table["Id"].to_pylist(), user_table["ManagerId"].to_pylist(), strict=True))
        povs = demo_povs(self.as_of, self.seed, users.ids, users.role, users.active, managers, o)
        put("Proof_of_Value__c", povs, povs)
        roles = self.contact_roles(o, contacts[1], np.asarray(contacts[0].column("Id").to_pylist(), dtype=object))
        put("OpportunityContactRole", roles, roles)
        ev_cur, ev_prev, logged = self.events(users, o, contacts, roles, domains)
        put("Event", _with_bad_rows("Event", ev_cur), ev_prev)
        stream = out / "changes"
        stream.mkdir(parents=True, exist_ok=True)
        day_events, day_tasks = self.day_changes(users, contacts, roles)
        pq.write_table(day_events, stream / "Event.parquet")

        writers = {}
        counts["Task"] = 0
        try:
            for current, previous in self.task_chunks(
                users, o, np.asarray(contacts[0].column("Id").to_pylist()), account_ids, account_names
            ):
                if not writers:
                    pq.write_table(day_tasks.cast(current.schema), stream / "Task.parquet")
                    current = pa.concat_tables([current, logged.cast(current.schema)])
                    current = _with_bad_rows("Task", current)
                    writers = {d: pq.ParquetWriter(d / "Task.parquet", current.schema, compression="zstd") for d in (cur_dir, prev_dir)}
                writers[cur_dir].write_table(current)
                writers[prev_dir].write_table(previous.cast(current.schema))
                counts["Task"] += current.num_rows
        finally:
            for w in writers.values():
                w.close()
        meta = {
            "as_of": self.as_of.isoformat(),
            "scale": self.scale,
            "seed": self.seed,
            "current_taken_at": self.current_at.isoformat(),
            "previous_taken_at": self.previous_at.isoformat(),
            "rows": counts,
            "changes": {"Event": day_events.num_rows, "Task": day_tasks.num_rows},
        }
        (out / "demo.json").write_text(json.dumps(meta, indent=1))
        return meta


def _meeting_logs(ids, users: _Users, owner, what, subject: pa.Array, start, created) -> pa.Table:
    """Well-logged SA activities for meetings (the demo's SAs who did the right thing): on the
    meeting's opportunity, dated the meeting's local day, created at ``created``."""
    m = len(ids)
    local_day = [datetime.fromtimestamp(s, UTC).astimezone(_zone(z)).date().isoformat()
                 for s, z in zip(start, users.tz[owner], strict=True)]  # fmt: skip
    return _table("Task", {
        "id": ids, "owner_id": users.ids[owner], "what_id": what,
        "who_id": np.full(m, None, dtype=object), "account_id": np.full(m, None, dtype=object),
        "subject": subject, "description": np.full(m, DESCRIPTIONS[0][0] + "the customer" + DESCRIPTIONS[0][1]),
        "activity_date": pa.array(local_day, pa.string()), "status": np.full(m, "Completed"),
        "is_closed": np.ones(m, bool), "created": _iso_datetime(created), "activity_types": np.full(m, "Demo"),
        "products": np.full(m, None, dtype=object), "persona_levels": np.full(m, "Manager/Director"),
        "persona_functions": np.full(m, "Development"), "sentiment": np.full(m, "Positive"),
        "chorus_call_id": np.full(m, None, dtype=object), "last_modified": _iso_datetime(created),
        "system_modstamp": _iso_datetime(created), "task_subtype": np.full(m, "Call"),
    })  # fmt: skip


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _with_bad_opportunities(t: pa.Table, users: _Users, now: float) -> pa.Table:
    """A few opportunities of each kind the reader must quarantine (CONTRACT.md § 1)."""
    rows = t.slice(0, 8).to_pylist()
    bad = []
    for i, (field, value) in enumerate([
        ("Id", None), ("Id", "006-NOT-AN-ID"), ("StageName", "Negotiation"), ("Incremental_ACV__c", -5000.0),
        ("CloseDate", "2026-02-30"), ("SA_Validated_Tech_Evaluation_Start_Date__c", "next week"),
        ("Solution_Architect__c", "0054x00000ZZZZZAAA"), ("OwnerId", "0054x00000YYYYYAAA"),
    ]):  # fmt: skip
        row = dict(rows[i], IsClosed=False, IsWon=False)  # open: a closed-lost row with any stage is just lost
        row[field] = value
        if field not in ("Id",):
            row["Id"] = f"0064x0000BAD{i:03d}"
        bad.append(row)
    # A stale duplicate of a real record: the reader keeps the newer row.
    dup = dict(rows[3])
    dup["StageName"] = "1-Discovery"
    dup["SystemModstamp"] = "2020-01-01T00:00:00.000+0000"
    bad.append(dup)
    return pa.concat_tables([t, pa.Table.from_pylist(bad, schema=t.schema)])


def _with_bad_rows(obj: str, t: pa.Table) -> pa.Table:
    rows = t.slice(0, 3).to_pylist()
    first, second, third = (dict(r) for r in rows)
    if obj == "Task":
        first["Id"] = "00T4x0000BAD0001"[:15]
        first["CreatedDate"] = "yesterday afternoon"
        second["Id"] = "00T4x0000BAD002"
        second["OwnerId"] = "0054x00000QQQQQ"
        third["SystemModstamp"] = "2019-06-01T00:00:00.000+0000"  # stale duplicate
    else:
        first["Id"] = "00U-bad"
        second["Id"] = "00U4x0000BAD002"
        second["EndDateTime"] = "soon"
        third["Id"] = "   "
    return pa.concat_tables([t, pa.Table.from_pylist([first, second, third], schema=t.schema)])


def write_demo_org(out: str | Path, as_of: date, scale: float = 1.0, seed: int = 7) -> dict:
    return DemoOrg(as_of, scale=scale, seed=seed).write(out)
