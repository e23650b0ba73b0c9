"""A hygiene report of the demo org (two days in a store), for the browser and plugin tests."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

AS_OF = date(2026, 11, 24)


def write_demo_report(root: Path, scale: float = 0.2) -> tuple[Path, dict]:
    """(configuration file, what write_report returned) of a report written under ``root``."""
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.demo.org import write_demo_org
    from sa_hygiene.pipeline.report import write_report
    from sa_hygiene.source.store import SnapshotStore

    write_demo_org(root / "org", AS_OF, scale=scale)
    cfg_path = root / "sa_hygiene.yaml"
    cfg_path.write_text(f"store: {{url: {json.dumps(str(root / 'store'))}}}\n"
                        f"slack: {{ledger_url: {json.dumps('sqlite:///' + str(root / 'ledger.sqlite'))}}}\n")  # fmt: skip
    cfg = load_config(cfg_path)
    store = SnapshotStore(cfg.store.url, keep=cfg.store.keep)
    taken = datetime.combine(AS_OF, time(4), UTC)
    store.commit_folder(root / "org" / "previous", taken - timedelta(days=1))
    store.commit_folder(root / "org" / "current", taken)
    return cfg_path, write_report(cfg)
