"""User alerts compile to the workflow model through the configuration's own checks."""

import pytest

from sa_hygiene.contract.config import load_config
from sa_hygiene.contract.user_alerts import (
    AlertDraftError,
    Audience,
    compile_alert,
    compile_alerts,
    parse_alert,
)

pytestmark = pytest.mark.unit

ME = "0055e0000000001AAA"
WHO = Audience(ME, reports=["0055e0000000002AAA"], team=["0055e0000000002AAA", "0055e0000000003AAA"],
               region=[ME, "0055e0000000004AAA"], accounts=["0015e0000000001AAA"])  # fmt: skip


def alert(trigger, obj="Opportunity", scope="mine", delivery="digest", **kw):
    return parse_alert({"name": "Mine", "owner": ME, "object": obj, "trigger": trigger, "scope": scope,
                        "delivery": delivery, **kw})  # fmt: skip


@pytest.mark.parametrize(
    "obj, trigger, frame, scope_has, expect",
    [
        ("Opportunity", {"kind": "condition", "field": "sa", "op": "blank"}, "opportunities", "",
         [{"expectation": "not_null", "column": "sa"}]),
        ("Opportunity", {"kind": "condition", "field": "te_status", "op": "equals", "values": ["Stalled"]}, "opportunities", "",
         [{"expectation": "not_in_set", "column": "te_status", "values": ["Stalled"]}]),
        ("Task", {"kind": "condition", "field": "sentiment", "op": "in", "values": ["Negative", "Neutral"]}, "activities", "",
         [{"expectation": "not_in_set", "column": "sentiment", "values": ["Negative", "Neutral"]}]),
        ("Opportunity", {"kind": "condition", "field": "iacv", "op": "more_than", "number": 100000}, "opportunities", "",
         [{"expectation": "between", "column": "iacv", "max": 100000.0}]),
        ("Opportunity", {"kind": "condition", "field": "iacv", "op": "less_than", "number": 10}, "opportunities", "",
         [{"expectation": "between", "column": "iacv", "min": 10.0}]),
        ("Opportunity", {"kind": "condition", "field": "te_start", "op": "older_than_days", "number": 30}, "opportunities", "",
         [{"expectation": "between", "column": "days_since_te_start", "max": 30.0}]),
        ("Task", {"kind": "condition", "field": "activity_date", "op": "newer_than_days", "number": 2}, "tasks", "",
         [{"expectation": "between", "column": "days_overdue", "min": 2.0}]),
        ("Opportunity", {"kind": "changed", "field": "te_status", "from_value": "Win", "to_value": "Loss"}, "changes",
         "and prev_te_status == 'Win' and te_status == 'Loss'",
         [{"expectation": "pair_equal", "column": "te_status", "other": "prev_te_status"}]),
        ("Opportunity", {"kind": "changed", "field": "te_start"}, "changes", "",
         [{"expectation": "pair_equal", "column": "te_start", "other": "prev_te_start"}]),
        ("Opportunity", {"kind": "stage_move", "from_value": 2, "to_value": 3}, "changes", "and prev_rank == 2 and rank == 3",
         [{"expectation": "pair_equal", "column": "rank", "other": "prev_rank"}]),
    ],
)  # fmt: skip
def test_every_trigger_kind_compiles_to_a_checked_workflow(obj, trigger, frame, scope_has, expect):
    cfg = load_config()
    merged, entry = compile_alert(alert(trigger, obj), cfg, WHO, "ua-1")
    wf = merged.workflows["ua-1"]
    assert (wf.frame, wf.object, wf.slot, wf.recipient.user) == (frame, obj, "sa_digest", ME)
    assert entry["expect"] == expect
    assert scope_has in wf.scope and f"owner_id in ['{ME}', '{ME[:15]}']" in wf.scope
    # The YAML workflows are what they were.
    assert {k: v for k, v in merged.workflows.items() if k != "ua-1"} == cfg.workflows


@pytest.mark.parametrize(
    "scope, has, lacks",
    [
        ("mine", [f"sa in ['{ME}', '{ME[:15]}']", f"owner_id in ['{ME}', '{ME[:15]}']"], ["0055e0000000002"]),
        ("my_reports", ["sa in ['0055e0000000002AAA', '0055e0000000002']"], [ME, "0055e0000000003"]),
        ("team", ["0055e0000000002AAA", "0055e0000000003AAA"], [ME]),
        ("my_region", [ME, "0055e0000000004AAA"], ["0055e0000000002"]),
        ("my_accounts", ["account_id in ['0015e0000000001AAA', '0015e0000000001']"], ["owner_id", "sa in"]),
    ],
)  # fmt: skip
def test_scopes_name_the_people_and_accounts_of_the_audience(scope, has, lacks):
    _, entry = compile_alert(alert({"kind": "condition", "field": "sa", "op": "blank"}, scope=scope), load_config(), WHO, "ua-1")
    for text in has:
        assert text in entry["scope"]
    for text in lacks:
        assert text not in entry["scope"]


def test_deliveries():
    cfg = load_config()
    t = {"kind": "condition", "field": "sa", "op": "blank"}
    now = compile_alert(alert(t, delivery="dm_now"), cfg, WHO, "ua-1")[0].workflows["ua-1"]
    assert (now.slot, now.recipient.user) == ("meeting_reminder", ME)
    ch = compile_alert(alert(t, delivery="channel", channel="#sa-east"), cfg, WHO, "ua-1")[0].workflows["ua-1"]
    assert (ch.slot, ch.recipient.channel) == ("channel_post", "#sa-east")


@pytest.mark.parametrize(
    "obj, trigger, extra, words",
    [
        ("Opportunity", {"kind": "condition", "field": "owner_name", "op": "blank"}, {}, "'owner_name' is not a field of Opportunity"),
        ("Opportunity", {"kind": "condition", "field": "te_status", "op": "equals", "values": ["Maybe"]}, {},
         "'Maybe' is not a value of te_status"),
        ("Opportunity", {"kind": "condition", "field": "name", "op": "equals", "values": ["__import__('os')"]}, {},
         "name has no list of values"),
        ("Opportunity", {"kind": "condition", "field": "iacv", "op": "more_than"}, {}, "compare a number field with a number"),
        ("Opportunity", {"kind": "condition", "field": "te_status", "op": "more_than", "number": 3}, {}, "te_status is a text"),
        ("Opportunity", {"kind": "condition", "field": "close_date", "op": "older_than_days", "number": 3}, {},
         "a day offset needs a date field with a day count"),
        ("Task", {"kind": "condition", "field": "activity_types", "op": "equals", "values": ["Demo"]}, {},
         "several values per record"),
        ("Task", {"kind": "changed", "field": "status"}, {}, "only opportunities are compared"),
        ("Opportunity", {"kind": "changed", "field": "iacv"}, {}, "changes are compared for"),
        ("Opportunity", {"kind": "stage_move", "to_value": 12}, {}, "12 is not a stage rank"),
        ("Account", {"kind": "condition", "field": "website", "op": "blank"}, {}, "Account has no alerts"),
        ("Lead", {"kind": "condition", "field": "x", "op": "blank"}, {}, "not an object of the data contract"),
        ("Task", {"kind": "condition", "field": "subject", "op": "blank"}, {"scope": "my_accounts"}, "carry no account"),
    ],
)  # fmt: skip
def test_refusals_say_which_choice(obj, trigger, extra, words):
    with pytest.raises(AlertDraftError, match=words.replace("(", r"\(").replace(")", r"\)")):
        compile_alert(alert(trigger, obj, **extra), load_config(), WHO, "ua-1")


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"delivery": "channel"}, "a channel delivery names its channel"),
        ({"owner": "not a user"}, "owner"),
        ({"scope": "everyone"}, "scope"),
        ({"trigger": {"kind": "condition", "field": "sa", "op": "blank", "code": "x"}}, "trigger.code"),
    ],
)
def test_the_form_s_choices_are_checked(doc, words):
    base = {"name": "n", "owner": ME, "object": "Opportunity", "trigger": {"kind": "condition", "field": "sa", "op": "blank"},
            "scope": "mine", "delivery": "digest"}  # fmt: skip
    with pytest.raises(AlertDraftError, match=words):
        parse_alert({**base, **doc})


def test_the_configuration_checker_has_the_last_word():
    # A channel name the checker refuses (no '#') is refused with its words, not saved.
    with pytest.raises(AlertDraftError, match="a channel name starts with '#'"):
        compile_alert(alert({"kind": "condition", "field": "sa", "op": "blank"}, delivery="channel", channel="sa-east"),
                      load_config(), WHO, "ua-1")  # fmt: skip


def test_an_alert_that_no_longer_compiles_is_left_out_with_why_and_the_others_still_run():
    cfg = load_config()
    good = alert({"kind": "condition", "field": "sa", "op": "blank"})
    gone = alert({"kind": "condition", "field": "sentiment", "op": "equals", "values": ["Neutral"]}, obj="Task")
    upgraded = cfg.model_copy(update={"taxonomy": cfg.taxonomy.model_copy(update={"sentiments": ["Positive", "Negative"]})})
    merged, broken = compile_alerts(upgraded, {"a": good, "b": gone}, {ME: WHO})
    assert set(merged.workflows) - set(cfg.workflows) == {"ua-a"}
    assert broken == {"b": "trigger: 'Neutral' is not a value of sentiment (pick one of Positive, Negative)"}


def test_an_alert_the_checker_refuses_among_others_is_found_and_left_out():
    cfg = load_config()
    good = alert({"kind": "condition", "field": "sa", "op": "blank"})
    refused = alert({"kind": "condition", "field": "sa", "op": "blank"}, delivery="channel", channel="no-hash")
    merged, broken = compile_alerts(cfg, {"a": good, "b": refused}, {ME: WHO})
    assert set(merged.workflows) - set(cfg.workflows) == {"ua-a"}
    assert list(broken) == ["b"] and "a channel name starts with '#'" in broken["b"]
