"""Property test: any text in any Salesforce field gives messages Slack accepts and that ping nobody.

Arbitrary Unicode, Slack's control sequences and very long strings go into every text field
of a small snapshot; the snapshot is evaluated and rendered into every kind of message
(DM and regional digests, channel posts, meeting reminders, the operations summary) and
each payload is checked as Slack would see it: within Block Kit's limits, with no raw
``<!``, ``<@`` or ``<#``, and with links only to the configured Salesforce records.
"""

import re
import tempfile
from datetime import date
from pathlib import Path

import pytest
from builders import account, contact, contact_role, event, opportunity, task, user, write_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.activity_posts import build_posts
from sa_hygiene.delivery.blockkit import check_message, fit_message
from sa_hygiene.delivery.digest import build_messages
from sa_hygiene.delivery.notices import ops_summary
from sa_hygiene.engine.rules import evaluate
from sa_hygiene.source.snapshot import read_snapshot

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 24)
CFG = load_config()
CONTROL = ["<!channel>", "<!here>", "<@U1>", "<#C1|x>", "<https://x.example|y>", "<mailto:a@x.example>",
           "&", "&amp;", "&lt;", "<", ">", "|", "\x00", "\x000\x00", "*", "_", "`", "```", "\n", "😀", "𝔘"]  # fmt: skip
LONG = ["x" * 4000, "&" * 3000, "😀" * 2000, "<!channel>" * 400, "a b " * 1500]
pieces = st.one_of(
    st.sampled_from(CONTROL),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    st.sampled_from(LONG),
)
texts = st.lists(pieces, min_size=1, max_size=5).map("".join)
OUR_LINK = re.compile(
    re.escape(CFG.salesforce.instance_url.rstrip("/")) + r"/lightning/r/[A-Za-z]+/[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?/view"
    # A Chorus recording (wf-09): the configured player, with an Id of letters, digits, - and _ only.
    + "|" + re.escape(CFG.slack.recording_url).replace(re.escape("{id}"), "[A-Za-z0-9_-]{1,100}")
)


def fields(message):
    """Every string Slack receives for a message: notifications, titles and every block's values."""
    found = [message.notification(n) for n in range(len(message.parts()))] + [message.title]
    stack = list(message.parts())
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            stack += value.values()
        elif isinstance(value, list):
            stack += value
    return found


def assert_inert(text: str) -> None:
    """A raw ``<`` may only open one of our record links (or the configured dashboard link)."""
    for start in (m.start() for m in re.finditer("<", text)):
        link = re.match(r"<([^|<>]+)\|[^<>]*>", text[start:])
        assert link, text[start : start + 80]
        assert OUR_LINK.fullmatch(link[1]) or link[1] == CFG.slack.report_url, link[1]
    for bad in ("<!", "<@", "<#"):
        assert bad not in text


def snapshot(folder: Path, t: dict) -> tuple:
    sa = user(id="0055e0000000SA1AAA", name=t["sa"], email="sam@gitlab.com", manager_id="0055e0000000MG1AAA")
    mgr = user(id="0055e0000000MG1AAA", name=t["manager"], role_type="Manager", email="mia@gitlab.com")
    ae = user(id="0055e0000000AE1AAA", name=t["ae"], role_type="AE", email="alex@gitlab.com")
    acc = account(id="0015e0000000AC1AAA", name=t["account"])
    opp = opportunity(id="0065e0000000OP1AAA", name=t["opportunity"], account_id=acc["id"], owner_id=ae["id"],
                      sa=sa["id"], stage="4-Proposal", iacv="50000", te_start="2026-10-01", te_status=t["te_status"])  # fmt: skip
    pat = contact(id="0035e0000000PATAAA", email="pat@globex.com", name=t["contact"])
    tasks = [task(owner_id=sa["id"], activity_types="Demo", created="2026-11-23T10:00:00Z", subject=t["task_subject"],
                  description=t["description"], what_id=what, sentiment="Positive")
             for what in (opp["id"], t["what_id"], "006" + t["what_id"])]  # fmt: skip
    meeting = event(owner_id=sa["id"], attendee_emails="sam@gitlab.com;pat@globex.com", subject=t["event_subject"],
                    what_id=t["what_id"], start="2026-11-23T09:00:00Z", end="2026-11-23T10:00:00Z")  # fmt: skip
    current = {"User": [sa, mgr, ae], "Account": [acc], "Opportunity": [opp], "Task": tasks, "Event": [meeting],
               "Contact": [pat], "OpportunityContactRole": [contact_role(opportunity_id=opp["id"], contact_id=pat["id"])]}  # fmt: skip
    before = dict(opp, stage=t["stage"], sa=mgr["id"], te_start="")
    previous = {**current, "Opportunity": [before], "Task": [], "Event": []}
    return (read_snapshot(write_snapshot(folder / "c", current, fmt="parquet"), CFG),
            read_snapshot(write_snapshot(folder / "p", previous, fmt="parquet"), CFG))  # fmt: skip


NAMES = ["sa", "manager", "ae", "account", "opportunity", "contact", "te_status", "task_subject", "description",
         "what_id", "event_subject", "stage", "ops"]  # fmt: skip


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({name: texts for name in NAMES}))
def test_any_salesforce_text_gives_messages_slack_accepts_and_that_ping_nobody(t):
    with tempfile.TemporaryDirectory() as folder:
        current, previous = snapshot(Path(folder), t)
        alerts = evaluate(current, previous, CFG, AS_OF).alert_records()
        messages = build_messages(alerts, current, CFG, AS_OF, previous=previous, notice=t["ops"])
        # Activities are posted as they happen (schedule.as_it_happens), one message each.
        happening = set(CFG.schedule.as_it_happens)
        posts = build_posts([a for a in alerts if a["workflow"] in happening], current, CFG, AS_OF)
    ops = ops_summary(CFG, AS_OF, t["ops"], failed={t["ops"]: t["description"]}, notes=[t["sa"]],
                      unconfirmed=[t["event_subject"]])  # fmt: skip
    assert {m.slot for m in messages} >= {"sa_digest", "channel_post", "meeting_reminder"}
    assert posts, "the activities' own posts"
    for message in [*messages, *posts, ops]:
        check_message(message)
        assert fit_message(message) == message
        for text in fields(message):
            assert_inert(text)
