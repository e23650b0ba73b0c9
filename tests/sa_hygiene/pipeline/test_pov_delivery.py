"""Proofs of Value reach people (spec v3): the POV rules in the SA's 16:00 DM digest, pov-load in
their manager's 08:00 escalation DM, a user without a manager in their region's digest; POV names
from Salesforce escaped."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from builders import opportunity, pov, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.outbox import OutboxSink
from sa_hygiene.pipeline.alert_state import record_stored_evaluations, store_evaluation
from sa_hygiene.pipeline.digests import deliver_digests
from sa_hygiene.pipeline.escalations import deliver_escalations, escalations
from sa_hygiene.pipeline.evaluation import evaluate_latest
from sa_hygiene.source.store import SnapshotStore

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 24)
MGR = user(id="0055e0000000MG1AAA", name="Maya Manager", email="maya@gitlab.com", role_type="Manager")
SA = user(id="0055e0000000SA1AAA", name="Sam Architect", manager_id=MGR["id"])
LONE = user(id="0055e0000000SA2AAA", name="Lee Alone", email="lee@gitlab.com")
OPP = opportunity(id="0065e0000000OP1AAA", name="Acme - Ultimate", owner_id=SA["id"], sa=SA["id"],
                  stage="3-Technical Evaluation", te_start="2026-10-01")  # fmt: skip
LOUD = pov(id="a0P5e0000000PV1AAA", name="<!channel> *Acme* POV <http://evil|x>", owner_id=SA["id"],
           opportunity_id=OPP["id"], start_date="2026-09-29", success_criteria="")  # fmt: skip
RUNNING = [pov(id=f"a0P5e0000000PR{i}AAA", name=f"Run {i}", owner_id=SA["id"], opportunity_id=OPP["id"]) for i in range(3)]
LONE_POVS = [pov(id=f"a0P5e0000000PL{i}AAA", name=f"Lone {i}", owner_id=LONE["id"], opportunity_id=OPP["id"]) for i in range(4)]


def setup(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {{url: {tmp_path / 'store'}}}\nslack: {{outbox: {tmp_path / 'outbox'}, "
                    f"ledger_url: 'sqlite:///{tmp_path}/ledger.sqlite'}}\n")  # fmt: skip
    cfg = load_config(path)
    from sa_hygiene.engine.rules import evaluate_snapshots

    folder = write_snapshot(tmp_path / "snap", {"User": [MGR, SA, LONE], "Opportunity": [OPP],
                                                "Proof_of_Value__c": [LOUD, *RUNNING, *LONE_POVS]})  # fmt: skip
    ref = SnapshotStore(cfg.store.url).commit_folder(folder, datetime(2026, 11, 24, 4, tzinfo=UTC))
    result = evaluate_snapshots(ref, None, cfg, DAY)
    store_evaluation(cfg, ref.name, DAY, result.alert_records(), result.scope, result.quarantined_keys())
    record_stored_evaluations(cfg)
    return cfg


def text_of(post: dict) -> str:
    return json.dumps(post)


def test_pov_items_in_the_sa_digest_escaped(tmp_path):
    cfg = setup(tmp_path)
    info = evaluate_latest(cfg, DAY, out=str(tmp_path / "run"), slots={"sa_digest"}, now=datetime(2026, 11, 24, 21, tzinfo=UTC))
    out = deliver_digests(cfg, info, "dm", slots={"sa_digest"}, recipients={f"user:{SA['id']}"})
    assert out["sent"] == 1
    [post] = [p for p in OutboxSink.posts(Path(cfg.slack.outbox) / "dm") if SA["id"] in text_of(p)]
    text = text_of(post)
    for title in ("Proof of Value past 8 weeks", "Proof of Value without success criteria"):
        assert title in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text and "<http://evil" not in text
    assert "Acme - Ultimate" in text and "week 9" in text  # its opportunity; started 56 days ago
    assert "lightning/r/Proof_of_Value__c/a0P5e0000000PV1AAA/view" in text


def test_pov_load_in_the_manager_s_escalation_dm_and_the_region_s_digest_without_a_manager(tmp_path):
    cfg = setup(tmp_path)
    found = escalations(cfg, None, None, only=MGR["id"], as_of="2026-11-24")
    assert {(i["workflow"], i["record_id"], i["owner"]) for i in found.items} == {("pov-load", SA["id"], SA["id"])}
    sent = deliver_escalations(cfg, found, "esc")
    assert sent["sent"] == 1
    [post] = OutboxSink.posts(Path(cfg.slack.outbox) / "esc")
    text = text_of(post)
    assert "More than 3 Proofs of Value at once" in text and "4 POVs in progress" in text and "Run 2" in text
    # Lee has no manager: the region's 08:00 digest carries it.
    info = evaluate_latest(cfg, DAY, out=str(tmp_path / "run"), slots={"regional_digest", "sa_digest", "manager_escalation"},
                           now=datetime(2026, 11, 24, 13, tzinfo=UTC))  # fmt: skip
    deliver_digests(cfg, info, "regional", slots={"regional_digest"})
    posts = [text_of(p) for p in OutboxSink.posts(Path(cfg.slack.outbox) / "regional")]
    assert any("More than 3 Proofs of Value at once" in p and "Lee Alone" in p and "Lone 3" in p for p in posts)
