"""What the alert memory costs: recording a day's alerts, re-running the day, and reading ages.

Synthetic alerts in the proportions of the demo org (about 1,200 hygiene alerts at scale 1),
for the alert counts of scales 1, 50 and 500; each day keeps 90 % of the day before and adds
10 % new ones. On SQLite (a file) and, when it answers, the local PostgreSQL.

    .venv/bin/python bench/state.py [--scales 1 50 500]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from sa_hygiene.state.alerts import AlertState

PER_SCALE = 1200
WORKFLOWS = ["wf-06", "wf-07", "wf-11", "wf-15", "te-consistency", "te-stalled", "act-fields", "wf-13"]


def alerts_of(keys: list[int]) -> list[dict]:
    return [{"workflow": WORKFLOWS[k % len(WORKFLOWS)], "object": "Opportunity", "record_id": f"006{k:012d}AAA",
             "recipient": {"type": "user", "id": f"005{k % 5000:012d}AAA"}, "reasons": []} for k in keys]  # fmt: skip


def run(url: str, n: int) -> dict:
    rng = random.Random(7)
    day = date(2026, 11, 2)
    keys = list(range(n))
    out = {}
    with AlertState(url, news={"wf-02"}) as state:
        t = time.perf_counter()
        state.record(day, alerts_of(keys))
        out["first day"] = time.perf_counter() - t
        keys = rng.sample(keys, int(n * 0.9)) + list(range(n, n + n // 10))
        day += timedelta(days=1)
        alerts = alerts_of(keys)
        t = time.perf_counter()
        state.record(day, alerts)
        out["next day"] = time.perf_counter() - t
        t = time.perf_counter()
        state.record(day, alerts)
        out["re-run"] = time.perf_counter() - t
        t = time.perf_counter()
        state.annotate(day + timedelta(days=1), alerts)
        out["read ages"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", type=float, nargs="+", default=[1, 50, 500])
    args = ap.parse_args()
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("sqlite", lambda: f"sqlite:///{tmp}/{uuid.uuid4().hex}.sqlite", None))
        try:
            from services import postgres_database

            targets.append(("postgresql", None, postgres_database))
        except Exception:  # noqa: BLE001 - no PostgreSQL here: SQLite only
            pass
        print(f"{'database':<11} {'scale':>6} {'alerts':>8} {'first day':>10} {'next day':>9} {'re-run':>8} {'read ages':>10}")
        for name, make_url, pg in targets:
            for scale in args.scales:
                n = int(PER_SCALE * scale)
                if pg is None:
                    figures = run(make_url(), n)
                else:
                    with pg() as db:
                        figures = run(f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}", n)
                print(f"{name:<11} {scale:>6g} {n:>8,} " + " ".join(f"{figures[k]:>9.2f}s" for k in
                      ("first day", "next day", "re-run", "read ages")))  # fmt: skip


if __name__ == "__main__":
    main()
