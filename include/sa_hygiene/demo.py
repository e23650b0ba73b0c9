"""``make demo``: build the demo org and run the pipeline on it, then say where everything is."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path


def run_demo(root: Path, as_of: date, scale: float = 1.0) -> int:
    from sa_hygiene.demo_org import write_demo_org
    from sa_hygiene.rules import evaluate_paths

    root = root.resolve()
    started = time.perf_counter()
    meta = write_demo_org(root / "org", as_of, scale=scale)
    print(f"Demo org for {as_of} (scale {scale:g}) in {root / 'org'}")
    for obj, n in meta["rows"].items():
        print(f"  {obj:<24} {n:>9,} rows")

    result = evaluate_paths(str(root / "org" / "current"), str(root / "org" / "previous"), as_of)
    out = root / "alerts.jsonl"
    with open(out, "w") as fh:
        for rec in result.alert_records():
            fh.write(json.dumps(rec) + "\n")
    print(f"\nAlerts per workflow ({len(result.alerts):,} in all, written to {out}):")
    for wf, n in result.counts().items():
        print(f"  {wf:<16} {n:>7,}")
    q = result.quarantine["reason"].value_counts()
    print(f"\nQuarantined rows ({len(result.quarantine)}): " + ", ".join(f"{k} {v}" for k, v in q.items()))
    print(f"\nDone in {time.perf_counter() - started:.1f}s.")
    return 0
