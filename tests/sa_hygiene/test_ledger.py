"""The delivery ledger, the same code on SQLite and on the local PostgreSQL."""

import time

import pytest

from sa_hygiene.ledger import FAILED, PENDING, SENT, Ledger

pytestmark = pytest.mark.integration

KEY = "sa_digest|user:0051a00000XyZaBAAB|2026-11-24"
ANN = {"type": "user", "id": "0051a00000XyZaBAAB"}


@pytest.fixture
def ledger_url(any_ledger_url):
    return any_ledger_url


def test_a_part_goes_pending_then_sent_and_survives_a_new_connection(ledger, ledger_url):
    assert ledger.parts("slack", KEY) == {}
    before = time.time()
    ledger.mark_pending("slack", KEY, 0, run_id="run-1", target=ANN, channel="D1")
    ledger.mark_pending("slack", KEY, 1, run_id="run-1", target=ANN, channel="D1")
    ledger.mark_sent("slack", KEY, 0, ts="1764000000.000100")

    reopened = Ledger(ledger_url)
    parts = reopened.parts("slack", KEY)
    reopened.close()
    assert [(p.part, p.state, p.ts, p.channel, p.target) for p in parts.values()] == [
        (0, SENT, "1764000000.000100", "D1", ANN),
        (1, PENDING, None, "D1", ANN),
    ]
    assert before <= parts[1].marked_at <= time.time()


def test_marking_pending_again_keeps_the_first_mark_but_a_failure_resets_it(ledger):
    ledger.mark_pending("slack", KEY, 0, run_id="run-1", target=ANN, channel="D1")
    first = ledger.parts("slack", KEY)[0].marked_at
    time.sleep(0.01)
    ledger.mark_pending("slack", KEY, 0, run_id="run-2", target=ANN, channel="D1")
    assert ledger.parts("slack", KEY)[0].marked_at == first  # a post of run-1 may still be in Slack

    ledger.mark_failed("slack", KEY, 0, run_id="run-2", error="chat.postMessage: not_in_channel")
    failed = ledger.parts("slack", KEY)[0]
    assert (failed.state, failed.marked_at, failed.error) == (
        FAILED,
        None,
        "chat.postMessage: not_in_channel",
    )
    ledger.mark_pending("slack", KEY, 0, run_id="run-3", target=ANN, channel="D1")
    again = ledger.parts("slack", KEY)[0]
    assert again.marked_at > first and again.error is None


def test_a_failure_before_any_post_is_recorded_without_a_channel(ledger):
    ledger.mark_failed("slack", KEY, 0, run_id="run-1", error="RecipientNotFound: channel_not_found")
    [part] = ledger.parts("slack", KEY).values()
    assert (part.state, part.channel, part.target, part.error) == (
        FAILED, None, None, "RecipientNotFound: channel_not_found",
    )  # fmt: skip


def test_workspaces_do_not_see_each_others_rows(ledger):
    ledger.mark_pending("outbox", KEY, 0, run_id="run-1", target=ANN, channel="DX")
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
    assert (ledger.cached_channel("slack", "general"), ledger.cached_channel("slack", "random")) == (
        "C3",
        "C2",
    )

    short = Ledger(ledger_url, cache_hours=0.02 / 3600)
    time.sleep(0.05)
    assert short.cached_dm("slack", "ann@gitlab.com") is None
    assert short.cached_channel("slack", "general") is None
    short.close()
