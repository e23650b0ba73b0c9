"""The steps DAG tasks run, without a scheduler."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from builders import opportunity, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.pipeline.evaluation import EvaluationRun, evaluate_latest
from sa_hygiene.source.jsonl import read_jsonl
from sa_hygiene.source.store import SnapshotStore

pytestmark = pytest.mark.unit
SA = user(id="0055e0000000SA1AAA")


def test_changes_are_counted_from_the_snapshot_latest_when_the_window_began(tmp_path):
    """With several snapshots a day, the 08:00 post still reports the day's changes, not the last hour's."""
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"store: {{url: {tmp_path / 'store'}}}\n")
    cfg = load_config(cfg_path)
    store = SnapshotStore(cfg.store.url)
    opp = opportunity(id="0065e0000000CHGAAA", owner_id=SA["id"], stage="3-Technical Evaluation")
    day0 = datetime(2026, 11, 23, 13, tzinfo=UTC)
    # 04:00 yesterday no start date; the start date set at 09:00 today; unchanged again at 12:00.
    for hours, start in ((-9, ""), (20, "2026-11-24"), (23, "2026-11-24")):
        folder = write_snapshot(tmp_path / f"s{hours}", {"User": [SA], "Opportunity": [dict(opp, te_start=start)]})
        store.commit_folder(folder, day0 + timedelta(hours=hours))
    until = day0 + timedelta(days=1)
    info = evaluate_latest(cfg, date(2026, 11, 24), day0, until, out=str(tmp_path / "run"), slots={"channel_post"}, now=until)
    assert [a["workflow"] for a in read_jsonl(info.alerts)] == ["wf-03"]
    assert info.previous.endswith("20261123T040000Z") and info.notice is None
    # What the delivering task reads back: Airflow keeps the evaluating task's return value as JSON.
    xcom = json.loads(json.dumps(info.to_xcom()))
    assert EvaluationRun.from_xcom(xcom) == info
    assert (xcom["as_of"], xcom["alerts"], xcom["since"]) == ("2026-11-24", info.alerts, "2026-11-23T13:00:00Z")
