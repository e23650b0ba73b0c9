"""The user alerts page of the Airflow UI: every alert, its trigger in words, escaped."""

import pytest

from sa_hygiene.state.user_alerts import UserAlerts
from sa_hygiene.web.user_alerts_page import describe, user_alerts_page

pytestmark = pytest.mark.unit

SAM = "0055e0000000SA1AAA"


def test_the_page_lists_each_alert_escaped_with_its_status(tmp_path):
    spec = {"name": "<b>Big</b> deals", "owner": SAM, "object": "Opportunity", "scope": "team", "delivery": "channel",
            "channel": "#big", "trigger": {"kind": "condition", "field": "iacv", "op": "more_than", "number": 100000}}  # fmt: skip
    with UserAlerts(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        a = store.add(SAM, spec["name"], spec, 5)
        store.add(SAM, "Moves", {**spec, "trigger": {"kind": "stage_move", "to_value": 3}}, 5)
        store.pause(a, "field <iacv> is gone", notify=True)
        alerts = store.list()
    page = user_alerts_page(alerts, {SAM[:15]: "Sam Architect"})
    assert "&lt;b&gt;Big&lt;/b&gt; deals" in page and "<b>Big" not in page
    assert "<td>Opportunity.iacv is more than 100000</td>" in page and "<td>channel #big</td>" in page
    assert "paused: field &lt;iacv&gt; is gone" in page and "<td>Sam Architect</td>" in page
    assert "<td>stage moved any → 3</td>" in page and "<p>2 alerts made in Slack" in page
    assert "No user alerts yet" in user_alerts_page([], {})


@pytest.mark.parametrize(
    "trigger, words",
    [
        ({"kind": "condition", "field": "sa", "op": "blank"}, "Opportunity.sa is blank"),
        ({"kind": "condition", "field": "te_status", "op": "in", "values": ["Win", "Loss"]}, "Opportunity.te_status is one of Win, Loss"),
        ({"kind": "changed", "field": "te_status", "to_value": "Loss"}, "Opportunity.te_status changed any → Loss"),
        ({"kind": "changed", "field": "sa"}, "Opportunity.sa changed"),
    ],
)  # fmt: skip
def test_triggers_in_words(trigger, words):
    assert describe({"object": "Opportunity", "trigger": trigger}) == words
