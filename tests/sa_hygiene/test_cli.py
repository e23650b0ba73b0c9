import json

import pyarrow as pa
import pytest
from builders import opportunity, task, user, write_snapshot
from commands import assert_refused, run

pytestmark = pytest.mark.unit


def test_evaluate_writes_alerts_and_never_imports_airflow(tmp_path):
    sa = user(id="0055e0000000SA9AAA")
    opp = opportunity(id="0065e0000000OP9AAA", owner_id=sa["id"], sa=sa["id"], stage="4-Proposal", te_start="2026-11-01")
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Opportunity": [opp]})
    out, quarantine = tmp_path / "alerts.jsonl", tmp_path / "q.jsonl"
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--out", str(out),
            "--quarantine", str(quarantine), check_airflow=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"workflow": "wf-06", "object": "Opportunity", "record_id": opp["id"],
            "recipient": {"type": "user", "id": sa["id"]}, "reasons": []}.items() <= next(
        line for line in lines if line["workflow"] == "wf-06").items()  # fmt: skip
    assert quarantine.read_text() == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--snapshot", "{missing}", "--as-of", "2026-11-24"], "no such snapshot directory"),
        (["--snapshot", "{snap}", "--as-of", "24/11/2026"], "is not a YYYY-MM-DD date"),
        (["--snapshot", "{snap}", "--as-of", "2026-11-24", "--config", "{bad_config}"], "thresholds.stall_days"),
        (["--snapshot", "{no_stage}", "--as-of", "2026-11-24"], "missing required column(s): StageName"),
        (["--snapshot", "{snap}", "--as-of", "2026-11-24", "--config", "{late_config}"],
         "workflows.wf-06.scope: unknown field 'owner_name' of frame 'opportunities'"),
    ],
)
def test_unusable_input_exits_2_with_a_message_not_a_traceback(tmp_path, args, message):
    paths = {
        "missing": tmp_path / "missing",
        "snap": write_snapshot(tmp_path / "snap", {}),
        "no_stage": write_snapshot(tmp_path / "no_stage", {}, drop={"Opportunity": ["StageName"]}),
        "bad_config": tmp_path / "bad.yaml",
    }
    paths["bad_config"].write_text("thresholds:\n  stall_days: fourteen\n")
    paths["late_config"] = tmp_path / "late.yaml"
    paths["late_config"].write_text("workflows:\n  wf-06:\n    scope: owner_name == 'Sam'\n")
    r = run("evaluate", *[a.format(**paths) for a in args])
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_demo_org_command(tmp_path):
    r = run("demo-org", "--out", str(tmp_path), "--as-of", "2026-11-24", "--scale", "0.1", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert "Opportunity" in r.stdout
    assert (tmp_path / "current" / "Task.parquet").exists() and (tmp_path / "previous" / "Task.parquet").exists()


def test_extract_is_a_command_and_refuses_a_bad_configuration(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("salesforce: {bulk_threshold: many}\n")
    r = run("extract", "--conn-id", "salesforce_default", "--store", str(tmp_path / "store"), "--config", str(bad))
    assert r.returncode == 2
    assert "salesforce.bulk_threshold" in r.stderr and "Traceback" not in r.stderr


def test_digest_delivers_once_to_the_outbox_and_a_second_run_adds_nothing(tmp_path):
    sa = user(id="0055e0000000SA9AAA", email="sam@gitlab.com")
    opp = opportunity(id="0065e0000000OP9AAA", owner_id=sa["id"], sa=sa["id"], stage="4-Proposal", te_start="2026-11-01")
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Opportunity": [opp]})
    alerts = tmp_path / "alerts.jsonl"
    assert run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--out", str(alerts)).returncode == 0
    args = ["digest", "--snapshot", str(snap), "--alerts", str(alerts), "--as-of", "2026-11-24",
            "--outbox", str(tmp_path / "outbox"), "--ledger", f"sqlite:///{tmp_path / 'ledger.sqlite'}"]  # fmt: skip
    first, second = run(*args), run(*args)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.startswith("1 digests: 1 sent") and second.stdout.startswith("1 digests: 0 sent, 1 already sent")
    calls = [json.loads(line) for line in (tmp_path / "outbox" / "digest-2026-11-24" / "calls.jsonl").open()]
    posts = [c for c in calls if c["method"] == "chat.postMessage"]
    assert len(posts) == 1 and posts[0]["recipient"] == {"type": "user", "id": sa["id"]}
    assert posts[0]["args"]["metadata"]["event_payload"] == {"key": f"sa_digest|user:{sa['id']}|2026-11-24", "part": 0}


def test_evaluate_with_state_ages_alerts_and_writes_the_resolved_episodes(tmp_path):
    sa = user(id="0055e0000000SA9AAA")
    open_te = opportunity(id="0065e0000000OP9AAA", owner_id=sa["id"], sa=sa["id"], stage="4-Proposal", te_start="2026-11-01")
    before = write_snapshot(tmp_path / "before", {"User": [sa], "Opportunity": [open_te]})
    fixed = write_snapshot(tmp_path / "fixed", {"User": [sa], "Opportunity": [{**open_te, "te_end": "2026-11-20"}]})
    url = f"sqlite:///{tmp_path}/state.sqlite"

    def evaluate(snap, day):
        out, resolved = tmp_path / f"a-{day}.jsonl", tmp_path / f"r-{day}.jsonl"
        r = run("evaluate", "--snapshot", str(snap), "--as-of", day, "--state", url, "--out", str(out),
                "--resolved", str(resolved))  # fmt: skip
        assert r.returncode == 0, r.stderr
        alerts = [json.loads(line) for line in out.read_text().splitlines()]
        return {a["workflow"]: a for a in alerts}, [json.loads(line) for line in resolved.read_text().splitlines()]

    first = evaluate(before, "2026-11-24")[0]["wf-06"]
    assert (first["first_seen"], first["age_days"]) == ("2026-11-24", 0)
    alerts, resolved = evaluate(before, "2026-11-26")
    assert (alerts["wf-06"]["first_seen"], alerts["wf-06"]["age_days"], resolved) == ("2026-11-24", 2, [])
    gone = {"workflow": "wf-06", "object": "Opportunity", "record_id": open_te["id"],
            "recipient": {"type": "user", "id": sa["id"]}, "first_seen": "2026-11-24", "resolved_on": "2026-11-27", "how": "fixed"}  # fmt: skip
    alerts, resolved = evaluate(fixed, "2026-11-27")
    assert "wf-06" not in alerts and gone in resolved
    assert evaluate(fixed, "2026-11-27")[1] == resolved  # a re-run of the day: the same file


def test_snooze_and_db_upgrade_commands(tmp_path):
    url = f"sqlite:///{tmp_path}/state.sqlite"
    from datetime import date, timedelta

    later = (date.today() + timedelta(days=7)).isoformat()
    for record, until in (("<!channel>", later), ("", later), ("0" * 100_000, later), ("0065e0000000OP9AAA", "2020-01-01")):
        r = run("snooze", "--workflow", "wf-06", "--record", record, "--until", until, "--reason", "x", "--state", url)
        assert (r.returncode, r.stderr.count("\n"), "Traceback" in r.stderr) == (2, 1, False), r.stderr
    r = run("snooze", "--workflow", "wf-06", "--record", "0065e0000000OP9AAA", "--until", later,
            "--reason", "customer on holiday", "--by", "ann", "--state", url)  # fmt: skip
    assert r.returncode == 0, r.stderr
    from sa_hygiene.state.alerts import AlertState

    with AlertState(url) as state:
        assert [(s["record_key"], s["snoozed_by"]) for s in state.all_snoozes()] == [("0065e0000000OP9", "ann")]
    r = run("snooze", "--workflow", "wf-02", "--record", "0065e0000000OP9AAA", "--until", "2026-12-01",
            "--reason", "x", "--state", url)  # fmt: skip
    assert (r.returncode, "is news" in r.stderr) == (2, True)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"slack:\n  ledger_url: sqlite:///{tmp_path}/db/ledger.sqlite\n")
    r = run("db-upgrade", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    import sqlite3

    tables = {t for (t,) in sqlite3.connect(tmp_path / "db/ledger.sqlite").execute("select name from sqlite_master")}
    assert {"alert_episodes", "alert_snoozes", "sa_hygiene_schema", "sa_user_alerts"} <= tables
    for tampered in ("'abc'", "-5", "2.5"):
        with sqlite3.connect(tmp_path / "db/ledger.sqlite") as db:
            db.execute(f"update sa_hygiene_schema set version = {tampered}")
        r = run("db-upgrade", "--config", str(cfg))
        assert r.returncode != 0 and "edited by hand" in r.stderr and "Traceback" not in r.stderr, r.stderr


# --------------------------------------------------------------------------- expectations GX cannot compute

REGEX_WORKFLOW = """\
workflows:
  wf-99:
    title: Activities without a link
    object: Task
    frame: activities
    scope: created_in_review_period
    expect:
      - {{expectation: match_regex, column: description, regex: '{regex}'}}
    recipient: {{dm: owner}}
    slot: sa_digest
"""


@pytest.mark.parametrize(
    "regex, rc, alerts",
    [
        ("https?://", 0, 1),
        ("https?://(", 2, None),
    ],
)
def test_an_expectation_gx_cannot_compute_is_an_error_naming_it_not_zero_alerts(tmp_path, regex, rc, alerts):
    sa = user(id="0055e0000000SA9AAA")
    activity = task(owner_id=sa["id"], activity_types="Demo", description="no link here",
                    created="2026-11-20T12:00:00Z")  # fmt: skip
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Task": [activity]})
    config = tmp_path / "project.yaml"
    config.write_text(REGEX_WORKFLOW.format(regex=regex))
    out = tmp_path / "alerts.jsonl"
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--config", str(config), "--out", str(out))
    assert r.returncode == rc, r.stderr
    assert "Traceback" not in r.stderr
    if alerts is None:
        assert "wf-99" in r.stderr and "match_regex" in r.stderr and "https?://(" in r.stderr
    else:
        got = [json.loads(line) for line in out.read_text().splitlines()]
        assert [a["record_id"] for a in got if a["workflow"] == "wf-99"] == [activity["id"]]


# --------------------------------------------------------------------------- unusable input: one line, exit 2

ALERT = {"workflow": "wf-06", "object": "Opportunity", "record_id": "0065e0000000OP9AAA",
         "recipient": {"type": "user", "id": "0055e0000000SA9AAA"}, "reasons": []}  # fmt: skip


@pytest.mark.parametrize(
    "alerts, ledger, outbox, words",
    [
        (None, "ok", "ok", ["alerts.jsonl: cannot read the alerts file"]),
        ("{not json\n", "ok", "ok", ["alerts.jsonl:1: not JSON"]),
        (json.dumps(ALERT) + "\n[1, 2]\n", "ok", "ok", ["alerts.jsonl:2: not a JSON object"]),
        (json.dumps({**ALERT, "workflow": "wf-77"}) + "\n", "ok", "ok", ["alerts.jsonl:1: unknown workflow 'wf-77'"]),
        (json.dumps({k: v for k, v in ALERT.items() if k != "recipient"}) + "\n", "ok", "ok", ["alerts.jsonl:1: no recipient"]),
        (json.dumps({**ALERT, "recipient": {"type": "user"}}) + "\n", "ok", "ok", ["alerts.jsonl:1: no recipient"]),
        (json.dumps(ALERT) + "\n", "postgresql+psycopg://u@[::1/x", "ok", ["not a database URL"]),
        (json.dumps(ALERT) + "\n", "not a url", "ok", ["not a database URL"]),
        (json.dumps(ALERT) + "\n", "postgresql+psycopg://u@127.0.0.1:1/x", "ok", ["the delivery ledger", "connection"]),
        (json.dumps(ALERT) + "\n", "ok", "file", ["the outbox cannot be a folder: a file"]),
    ],
)  # fmt: skip
def test_digest_refuses_unusable_input_in_one_line(tmp_path, alerts, ledger, outbox, words):
    sa = user(id="0055e0000000SA9AAA", email="sam@gitlab.com")
    opp = opportunity(id="0065e0000000OP9AAA", owner_id=sa["id"], sa=sa["id"], stage="4-Proposal", te_start="2026-11-01")
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Opportunity": [opp]})
    if alerts is not None:
        (tmp_path / "alerts.jsonl").write_text(alerts)
    box = tmp_path / "outbox"
    if outbox == "file":
        box.write_text("not a folder")
    ledger = f"sqlite:///{tmp_path / 'ledger.sqlite'}" if ledger == "ok" else ledger
    r = run("digest", "--snapshot", str(snap), "--alerts", str(tmp_path / "alerts.jsonl"), "--as-of", "2026-11-24",
            "--outbox", str(box), "--ledger", ledger)  # fmt: skip
    assert_refused(r, *words)


def test_a_hand_written_alert_of_the_contract_is_delivered(tmp_path):
    # Only the contract's keys: object and slot come from the workflow.
    sa = user(id="0055e0000000SA9AAA", email="sam@gitlab.com")
    opp = opportunity(id="0065e0000000OP9AAA", owner_id=sa["id"], sa=sa["id"], stage="4-Proposal", te_start="2026-11-01")
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Opportunity": [opp]})
    alert = {k: v for k, v in ALERT.items() if k != "object"}
    (tmp_path / "alerts.jsonl").write_text(json.dumps(alert) + "\n")
    r = run("digest", "--snapshot", str(snap), "--alerts", str(tmp_path / "alerts.jsonl"), "--as-of", "2026-11-24",
            "--outbox", str(tmp_path / "outbox"), "--ledger", f"sqlite:///{tmp_path / 'ledger.sqlite'}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 digests: 1 sent")


@pytest.mark.parametrize("target", ["a_file/alerts.jsonl", "a_folder"])
def test_evaluate_out_to_an_unwritable_path(tmp_path, target):
    snap = write_snapshot(tmp_path / "s", {})
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--out", str(tmp_path / target))
    assert_refused(r, f"{tmp_path / target}: cannot write")


def parquet_snapshot(tmp_path, column, values):
    """A Parquet snapshot of three opportunities whose ``column`` is replaced by ``values`` (an Arrow array)."""
    import pyarrow.parquet as pq

    sa = user(id="0055e0000000SA9AAA")
    opps = [opportunity(id=f"0065e0000000OP{i}AAA", owner_id=sa["id"], sa=sa["id"]) for i in range(3)]
    snap = write_snapshot(tmp_path / "s", {"User": [sa], "Opportunity": opps}, fmt="parquet")
    table = pq.read_table(snap / "Opportunity.parquet")
    pq.write_table(table.set_column(table.column_names.index(column), column, values), snap / "Opportunity.parquet")
    return snap


@pytest.mark.parametrize(
    "column, values, reason",
    [
        ("Name", pa.array([b"Acme", b"\xff\xfe not text", None], pa.binary()), ("bad_text", "Name is not UTF-8 text")),
        ("CloseDate", pa.array([20000, 2_000_000_000, None], pa.date32()), ("bad_date", "CloseDate cannot be read as a date")),
        ("Incremental_ACV__c", pa.array([{"a": 1}, {"a": 2}, None], pa.struct([("a", pa.int64())])),
         "column Incremental_ACV__c holds struct<a: int64> values, not number values"),
    ],
)  # fmt: skip
def test_parquet_columns_of_an_unexpected_physical_type(tmp_path, column, values, reason):
    snap = parquet_snapshot(tmp_path, column, values)
    quarantine = tmp_path / "q.jsonl"
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", "--out", str(tmp_path / "a.jsonl"),
            "--quarantine", str(quarantine))  # fmt: skip
    if isinstance(reason, str):
        assert_refused(r, "Opportunity.parquet", reason)
        return
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert [(q["record_id"], q["reason"], q["detail"]) for q in rows] == [("0065e0000000OP1AAA", *reason)]


@pytest.mark.parametrize(
    "window",
    [
        ["--since", "2026-11-24T00:00:00Z", "--until", "2026-11-23T00:00:00Z"],
        ["--since", "2026-11-23T00:00:00Z", "--until", "2026-11-23T00:00:00Z"],
        ["--since", "2026-11-25T00:00:00Z"],  # after the default until (as-of, 00:00 UTC)
    ],
)
def test_an_empty_or_inverted_window_is_refused(tmp_path, window):
    snap = write_snapshot(tmp_path / "s", {})
    r = run("evaluate", "--snapshot", str(snap), "--as-of", "2026-11-24", *window)
    assert_refused(r, "is not before until")
