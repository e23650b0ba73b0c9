"""The messages that are not digests: the operations channel's run summary (the managers'
escalation DMs are tested with the step that finds their items, test_pipeline_memory)."""

from datetime import date

import pytest

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.notices import ops_summary

pytestmark = pytest.mark.unit
AS_OF = date(2026, 11, 24)
CFG = load_config()


def test_the_operations_summary_names_failures_and_posts_that_were_never_confirmed():
    key = "regional_digest|channel:#sa-activities-west-sa|2026-11-24"
    summary = ops_summary(CFG, AS_OF, "run-1", failed={"sa_digest|user:005X|2026-11-24": "users.lookupByEmail: <boom>"},
                          unconfirmed=[f"{key} part 0"])  # fmt: skip
    text = summary.blocks[1]["text"]["text"]
    assert text == (
        "*1 digest not delivered* (retried on the next run):\n"
        "• sa_digest|user:005X|2026-11-24: users.lookupByEmail: &lt;boom&gt;\n"
        "*1 message part posted but never confirmed*: Slack did not let the app read the conversation "
        "(invite it, or grant `channels:join`); not posted again:\n"
        f"• {key} part 0"
    )
    assert ops_summary(CFG, AS_OF, "run-1") is None


def test_the_ops_summary_is_keyed_by_what_it_says_not_by_the_run():
    first = ops_summary(CFG, AS_OF, "digest-2026-11-24", failed={"a": "b"})
    retry = ops_summary(CFG, AS_OF, "digest-2026-11-24", failed={"a": "b"}, unconfirmed=["sa_digest|user:005X|2026-11-24 part 1"])
    again = ops_summary(CFG, AS_OF, "digest-2026-11-24-rerun", failed={"a": "b"})
    assert "digest-2026-11-24" not in first.key
    assert retry.key != first.key  # the note of the retry reaches the operations channel
    assert again.key == first.key  # the same summary is sent once
