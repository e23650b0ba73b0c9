"""The delivery ledger, the same code on SQLite and on the local PostgreSQL."""

import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from sa_hygiene.state.ledger import (
    FAILED,
    NEW,
    PENDING,
    SENT,
    UNCONFIRMED,
    LeaseLost,
    Ledger,
    LedgerError,
    new_owner,
)

pytestmark = pytest.mark.integration

KEY = "sa_digest|user:0051a00000XyZaBAAB|2026-11-24"
ANN = {"type": "user", "id": "0051a00000XyZaBAAB"}
ME, OTHER = "host-a/1/aaa", "host-b/2/bbb"


@pytest.fixture
def ledger_url(any_ledger_url):
    return any_ledger_url


def claimed(ledger, owner=ME, part=0, run_id="run-1"):
    claim = ledger.claim("slack", KEY, part, owner=owner, run_id=run_id)
    assert claim.outcome == "claimed"
    return claim.part


def test_a_part_is_claimed_goes_pending_then_sent_and_survives_a_new_connection(ledger, ledger_url):
    assert ledger.parts("slack", KEY) == {}
    before = time.time()
    assert claimed(ledger).state == NEW
    ledger.mark_pending("slack", KEY, 0, owner=ME, target=ANN, channel="D1")
    claimed(ledger, part=1)
    ledger.mark_pending("slack", KEY, 1, owner=ME, target=ANN, channel="D1")
    ledger.mark_sent("slack", KEY, 0, ts="1764000000.000100")

    reopened = Ledger(ledger_url)
    parts = reopened.parts("slack", KEY)
    reopened.close()
    assert [(p.part, p.state, p.ts, p.channel, p.target, p.owner) for p in parts.values()] == [
        (0, SENT, "1764000000.000100", "D1", ANN, None),  # sending ends the lease
        (1, PENDING, None, "D1", ANN, ME),
    ]
    assert before <= parts[1].marked_at <= time.time()
    assert ledger.claim("slack", KEY, 0, owner=OTHER, run_id="run-2").outcome == "done"


def test_a_live_lease_is_held_against_others_and_only_its_holder_may_post(ledger):
    claimed(ledger)
    held = ledger.claim("slack", KEY, 0, owner=OTHER, run_id="run-2")
    assert (held.outcome, held.part.owner) == ("held", ME)
    with pytest.raises(LeaseLost, match="another delivery took it over"):
        ledger.mark_pending("slack", KEY, 0, owner=OTHER, target=ANN, channel="D1")
    ledger.mark_failed("slack", KEY, 0, owner=OTHER, run_id="run-2", error="not mine to fail")
    assert ledger.parts("slack", KEY)[0].state == NEW

    assert ledger.claim("slack", KEY, 0, owner=ME, run_id="run-1").outcome == "claimed"  # its holder again
    ledger.release("slack", KEY, 0, owner=ME)
    assert claimed(ledger, owner=OTHER, run_id="run-2").owner == OTHER


def test_an_expired_lease_is_taken_over_and_the_old_holder_can_no_longer_post(ledger_url):
    short = Ledger(ledger_url, lease_seconds=0.2)
    claimed(short)
    short.mark_pending("slack", KEY, 0, owner=ME, target=ANN, channel="D1")
    first_mark = short.parts("slack", KEY)[0].marked_at
    assert short.claim("slack", KEY, 0, owner=OTHER, run_id="run-2").outcome == "held"
    time.sleep(0.3)

    taken = short.claim("slack", KEY, 0, owner=OTHER, run_id="run-2").part
    assert (taken.owner, taken.state, taken.marked_at) == (OTHER, PENDING, first_mark)  # it must look in Slack first
    with pytest.raises(LeaseLost):
        short.mark_pending("slack", KEY, 0, owner=ME, target=ANN, channel="D1")
    short.close()


def test_a_lease_of_a_process_of_this_host_that_has_exited_ends_at_once(ledger):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = gone.stdout.strip()
    claimed(ledger, owner=f"elsewhere.example/{pid}/ccc")
    assert ledger.claim("slack", KEY, 0, owner=OTHER, run_id="run-2").outcome == "held"  # another host: we cannot tell
    claimed(ledger, owner=f"{socket.gethostname()}/{pid}/ccc", part=1)
    live_here = new_owner("run-3")
    assert live_here.startswith(f"{socket.gethostname()}/")
    assert claimed(ledger, owner=live_here, part=1, run_id="run-3").owner == live_here


def test_marking_pending_again_keeps_the_first_mark_but_a_failure_resets_it(ledger):
    claimed(ledger)
    ledger.mark_pending("slack", KEY, 0, owner=ME, target=ANN, channel="D1")
    first = ledger.parts("slack", KEY)[0].marked_at
    time.sleep(0.01)
    ledger.mark_pending("slack", KEY, 0, owner=ME, target=ANN, channel="D1")
    assert ledger.parts("slack", KEY)[0].marked_at == first  # a post of the first attempt may still be in Slack

    ledger.mark_failed("slack", KEY, 0, owner=ME, run_id="run-2", error="chat.postMessage: not_in_channel")
    failed = ledger.parts("slack", KEY)[0]
    assert (failed.state, failed.marked_at, failed.error, failed.owner) == (
        FAILED, None, "chat.postMessage: not_in_channel", None,
    )  # fmt: skip
    claimed(ledger, run_id="run-3")
    ledger.mark_pending("slack", KEY, 0, owner=ME, target=ANN, channel="D1")
    again = ledger.parts("slack", KEY)[0]
    assert again.marked_at > first and again.error is None


def test_checks_are_counted_and_an_unconfirmed_part_is_done(ledger):
    claimed(ledger)
    ledger.mark_pending("slack", KEY, 0, owner=ME, target=ANN, channel="C1")
    assert [ledger.count_check("slack", KEY, 0) for _ in range(3)] == [1, 2, 3]
    ledger.mark_unconfirmed("slack", KEY, 0)
    part = ledger.parts("slack", KEY)[0]
    assert (part.state, part.ts, part.owner) == (UNCONFIRMED, None, None)
    assert ledger.claim("slack", KEY, 0, owner=OTHER, run_id="run-2").outcome == "done"


def test_workspaces_do_not_see_each_others_rows(ledger):
    ledger.claim("outbox", KEY, 0, owner=ME, run_id="run-1")
    ledger.mark_pending("outbox", KEY, 0, owner=ME, target=ANN, channel="DX")
    ledger.mark_sent("outbox", KEY, 0, ts="1.0")
    ledger.cache_user("outbox", "ann@gitlab.com", "UFAKE", "DFAKE")
    ledger.cache_channels("outbox", {"sa-hygiene-ops": "CFAKE"})

    assert ledger.parts("slack", KEY) == {}
    assert ledger.cached_dm("slack", "ann@gitlab.com") is None
    assert ledger.cached_channel("slack", "sa-hygiene-ops") is None
    assert ledger.cached_dm("outbox", "ann@gitlab.com") == "DFAKE"


def test_cached_ids_are_replaced_and_expire(ledger, ledger_url):
    ledger.cache_user("slack", "Ann@GitLab.com", "U1", "D1")
    ledger.cache_user("slack", "ann@gitlab.com", "U2", "D2")  # e-mails are case-insensitive
    ledger.cache_channels("slack", {"general": "C1", "random": "C2"})
    ledger.cache_channels("slack", {"general": "C3"})
    assert ledger.cached_dm("slack", "ANN@gitlab.com") == "D2"
    assert (ledger.cached_channel("slack", "general"), ledger.cached_channel("slack", "random")) == ("C3", "C2")

    short = Ledger(ledger_url, cache_hours=0.02 / 3600)
    time.sleep(0.05)
    assert short.cached_dm("slack", "ann@gitlab.com") is None
    assert short.cached_channel("slack", "general") is None
    short.close()


def test_a_ledger_made_before_leases_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the version-1 table, as released
        db.execute(
            "CREATE TABLE slack_deliveries (workspace VARCHAR(200) NOT NULL, key VARCHAR(400) NOT NULL, "
            "part INTEGER NOT NULL, state VARCHAR(10) NOT NULL, run_id VARCHAR(250) NOT NULL, target TEXT, "
            "channel VARCHAR(40), ts VARCHAR(40), marked_at FLOAT, updated_at FLOAT NOT NULL, error TEXT, "
            "PRIMARY KEY (workspace, key, part))"
        )
        db.execute("INSERT INTO slack_deliveries VALUES ('slack', ?, 0, 'sent', 'run-0', NULL, 'D1', '1.5', 1.0, 1.0, NULL)", (KEY,))
    ledger = Ledger(f"sqlite:///{path}")
    assert ledger.parts("slack", KEY)[0].state == SENT  # kept
    assert ledger.claim("slack", KEY, 1, owner=ME, run_id="run-1").outcome == "claimed"
    ledger.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT component, version FROM sa_hygiene_schema").fetchall() == [("ledger", 2)]


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/nowhere",
         r"^the delivery ledger postgresql\+psycopg://postgres:\*\*\*@127.0.0.1:1/nowhere: connection failed"),
        ("not a url at all", r"^the delivery ledger: not a database URL \(expected sqlite:///path"),
        ("mysql+nodriver://x/y", r"^the delivery ledger mysql\+nodriver://x/y: Can't load plugin"),
    ],
)
def test_an_unusable_ledger_is_one_clear_error_without_its_password(url, message):
    with pytest.raises(LedgerError, match=message) as raised:
        Ledger(url)
    assert "s3cret" not in str(raised.value) and "\n" not in str(raised.value)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(LedgerError, match=r"notes.txt: file is not a database$"):
        Ledger(f"sqlite:///{tmp_path}/notes.txt")
