import json
import re
from datetime import date, timedelta

import pytest
from builders import account, contact, contact_role, event, opportunity, task, user, write_snapshot

from sa_hygiene.contract.config import load_config
from sa_hygiene.delivery.blockkit import MAX_BLOCKS, SECTION_CHARS, check_message, esc
from sa_hygiene.delivery.digest import build_messages
from sa_hygiene.engine.rules import evaluate
from sa_hygiene.source.snapshot import read_snapshot

pytestmark = pytest.mark.unit
AS_OF = date(2026, 11, 24)
# Digests as a deployment that posts nothing as it happens renders them: wf-02 and wf-09 in the
# 08:00 digests, so that their items stay tested here (the default posts them one by one:
# tests/sa_hygiene/pipeline/test_activity_posts.py).
CFG = load_config().model_copy(update={"schedule": load_config().schedule.model_copy(update={"as_it_happens": []})})
SA = user(id="0055e0000000SA1AAA", name="Sam Architect", email="sam@gitlab.com", manager_id="0055e0000000MG1AAA")
MGR = user(id="0055e0000000MG1AAA", name="Mia Manager", role_type="Manager", email="mia@gitlab.com")
AE = user(id="0055e0000000AE1AAA", name="Alex Exec", role_type="AE", email="alex@gitlab.com")
INJECTIONS = ["<!channel>", "<!here>", "<@U024BE7LH>", "<https://evil.example|click>"]


def day(n):
    return (AS_OF + timedelta(days=n)).isoformat()


def run(tmp_path, tables, previous=None):
    cur = read_snapshot(write_snapshot(tmp_path / "c", {"User": [SA, MGR, AE], **tables}), CFG)
    prev = read_snapshot(write_snapshot(tmp_path / "p", {"User": [SA, MGR, AE], **previous}), CFG) if previous else None
    result = evaluate(cur, prev, CFG, AS_OF)
    return build_messages(result.alert_records(), cur, CFG, AS_OF, previous=prev), result


def all_text(message) -> str:
    """Everything a reader can see (and the links): the Slack app's button values are left out."""

    def shown(obj):
        if isinstance(obj, dict):
            return {k: shown(v) for k, v in obj.items() if k != "value"}
        return [shown(v) for v in obj] if isinstance(obj, list) else obj

    return json.dumps(shown([message.blocks, message.replies]))


def test_one_message_per_recipient_and_slot_and_a_record_once_with_all_its_issues(tmp_path):
    o = opportunity(id="0065e0000000OP1AAA", owner_id=AE["id"], sa=SA["id"], stage="5-Negotiating", iacv="45000",
                    te_start=day(-30), te_end=day(3), name="Acme Expansion")  # fmt: skip
    t = task(owner_id=SA["id"], activity_types="Demo", created="2026-11-20T10:00:00Z", subject="Demo to Acme", sentiment="Positive")
    messages, result = run(tmp_path, {"Opportunity": [o], "Task": [t]})
    dms = [m for m in messages if m.recipient == {"type": "user", "id": SA["id"]}]
    assert [m.slot for m in dms] == ["sa_digest"]
    dm = dms[0]
    assert dm.key == f"sa_digest|user:{SA['id']}|2026-11-24"
    assert dm.email == "sam@gitlab.com"
    assert dm.fallbacks == ({"type": "user", "id": MGR["id"], "email": "mia@gitlab.com"},
                            {"type": "channel", "name": "#sa-activities-east-sa"})  # fmt: skip
    text = all_text(dm)
    # The opportunity has wf-15 and te-consistency: listed once, under the first, with both issues.
    assert text.count("Acme Expansion") == 1
    assert "the end date is in the future" in text and "Missing tech evaluation close data" in text
    assert f"https://gitlab.my.salesforce.com/lightning/r/Opportunity/{o['id']}/view" in text
    assert "IACV $45,000" in text and "Alex Exec" in text
    # The activity (no Related To, no contact) is there too, with its reasons in plain words.
    assert "Related To is not an opportunity" in text and "no contact in Name" in text
    assert "wf-15" not in text and "act-fields" not in text  # plain words, not ids
    # The headline adds up: per section the records listed under it (te-consistency is shown as
    # an issue of the opportunity filed under wf-15).
    assert dm.text == ("Your SA hygiene digest · Sam Architect · Tue 24 Nov: 2 records need you: "
                       "Missing tech evaluation close data: 1 · Activity logged with missing or invalid fields: 1")


def test_salesforce_text_cannot_ping_or_link(tmp_path):
    nasty = " & ".join(INJECTIONS)
    o = opportunity(owner_id=AE["id"], stage="4-Proposal", iacv="50000", name=nasty)
    t = task(owner_id=SA["id"], activity_types="Demo", created="2026-11-23T10:00:00Z", subject=nasty,
             description=nasty, what_id=o["id"], who_id="0035e0000000CONAAA", sentiment="Positive")  # fmt: skip
    messages, _ = run(tmp_path, {"Opportunity": [o], "Task": [t]})
    regional = next(m for m in messages if m.recipient["name"] == "#sa-activities-east-sa")
    body = all_text(regional)
    for bad in INJECTIONS:
        assert bad not in body
    assert esc(INJECTIONS[0]) in body and "&amp;" in body
    # Our own links still work: exactly the Salesforce ones.
    links = re.findall(r"<(https?://[^|>]+)\|", body)
    assert links and all(link.startswith("https://gitlab.my.salesforce.com/lightning/r/") for link in links)


def test_big_digests_continue_in_the_thread_with_every_record_in_order(tmp_path):
    opps = [opportunity(id=f"0065e00000{i:05d}AAA", owner_id=AE["id"], stage="4-Proposal", iacv=str(100000 - i),
                        name=f"Deal {i:03d} " + "x" * 90) for i in range(130)]  # fmt: skip
    messages, result = run(tmp_path, {"Opportunity": opps})
    (regional,) = [m for m in messages if m.slot == "regional_digest"]
    assert len(regional.replies) >= 2
    for part in regional.parts():
        assert len(part) <= MAX_BLOCKS
        assert all(len(b.get("text", {}).get("text", "")) <= SECTION_CHARS for b in part)
    check_message(regional)
    names = re.findall(r"Deal (\d{3})", all_text(regional))
    assert names == [f"{i:03d}" for i in range(130)]  # highest IACV first, none lost, none twice
    assert regional.replies[0][0]["elements"][0]["text"].endswith(f"continued (2/{len(regional.replies) + 1})")


def test_a_huge_description_is_split_not_cut(tmp_path):
    from sa_hygiene.delivery.blockkit import sections

    text = "\n".join(f"line {i} " + "y" * 500 for i in range(20))
    blocks = sections(text)
    assert all(len(b["text"]["text"]) <= SECTION_CHARS for b in blocks)
    assert "\n".join(b["text"]["text"] for b in blocks) == text


def test_dm_alerts_that_fell_back_to_a_channel_join_its_regional_digest(tmp_path):
    gone = user(id="0055e0000000GONAAA", name="Gone Architect", is_active="false", manager_id="")
    o = opportunity(owner_id=AE["id"], sa=gone["id"], stage="4-Proposal", te_start=day(-20), name="Orphan Deal")
    cur = read_snapshot(write_snapshot(tmp_path / "c", {"User": [SA, MGR, AE, gone], "Opportunity": [o]}), CFG)
    result = evaluate(cur, None, CFG, AS_OF)
    messages = build_messages(result.alert_records(), cur, CFG, AS_OF)
    assert [(m.slot, m.recipient) for m in messages] == [("regional_digest", {"type": "channel", "name": "#sa-activities-east-sa"})]
    assert "Orphan Deal" in all_text(messages[0])


def test_regional_digest_lists_new_activity_with_a_description_preview(tmp_path):
    o = opportunity(owner_id=AE["id"], sa=SA["id"], name="Initech Platform")
    long = "We demoed merge trains. " * 30
    t = task(owner_id=SA["id"], activity_types="Demo;Technical Deep Dive", created="2026-11-23T15:00:00Z",
             what_id=o["id"], sentiment="Positive", description=long)  # fmt: skip
    messages, _ = run(tmp_path, {"Opportunity": [o], "Task": [t]})
    regional = next(m for m in messages if m.slot == "regional_digest")
    body = all_text(regional)
    assert "New activity logged" in body and "Sam Architect" in body and "Initech Platform" in body
    assert "Demo, Technical Deep Dive" in body and "Positive" in body
    texts = [b["text"]["text"] for b in regional.blocks if b["type"] == "section"]
    quoted = next(line for t in texts for line in t.split("\n") if line.startswith("> We demoed"))[2:]
    assert quoted == long[:300] + "…"


def test_fixed_channels_get_one_post_each(tmp_path):
    cur = [opportunity(owner_id=AE["id"], stage="2-Scoping", iacv="50000", te_start=day(-1)) for _ in range(3)]
    prev = [dict(o, stage="1-Discovery", te_start="") for o in cur]
    messages, _ = run(tmp_path, {"Opportunity": cur}, previous={"Opportunity": prev})
    posts = [m for m in messages if m.slot == "channel_post"]
    assert sorted(m.recipient["name"] for m in posts) == ["#sa-tech-eval-start", "#stage-move-02"]
    stage = next(m for m in posts if m.recipient["name"] == "#stage-move-02")
    assert "moved it from 1-Discovery to *2-Scoping*" in all_text(stage)


def test_one_reminder_per_meeting_naming_the_suggested_record(tmp_path):
    o = opportunity(id="0065e0000000MTGAAA", owner_id=AE["id"], name="Globex Renewal", iacv="30000")
    pat = contact(id="0035e0000000PATAAA", email="pat@globex.com")
    events = [event(owner_id=SA["id"], attendee_emails="sam@gitlab.com;pat@globex.com", subject=f"Sync {i}",
                    end=f"2026-11-23T1{i}:00:00Z", start=f"2026-11-23T0{i}:00:00Z") for i in range(2)]  # fmt: skip
    tables = {"Opportunity": [o], "Contact": [pat], "OpportunityContactRole": [contact_role(opportunity_id=o["id"], contact_id=pat["id"])],
              "Event": events, "Account": [account()]}  # fmt: skip
    messages, _ = run(tmp_path, tables)
    reminders = [m for m in messages if m.slot == "meeting_reminder"]
    assert sorted(m.key for m in reminders) == sorted(f"meeting_reminder|user:{SA['id']}|{e['id']}" for e in events)
    body = all_text(reminders[0])
    assert "You just met *Pat Customer*" in body and "Globex Renewal" in body
    assert f"/lightning/r/Opportunity/{o['id']}/view" in body
    assert "ended 0" in body  # 10:00 UTC shown in the SA's zone (New York): 05:00


@pytest.mark.parametrize("povs", [True, False])
def test_the_reminder_offers_add_a_proof_of_value_only_where_the_org_has_them(tmp_path, povs):
    """wf-01's ``fix: [tech_eval, pov_add]`` on the suggested opportunity; an org without the
    optional POV object gets no POV button (spec v3: it works exactly as before)."""
    from builders import pov

    from sa_hygiene.delivery.blockkit import ADD_POV, UPDATE_TECH_EVAL

    o = opportunity(id="0065e0000000MTGAAA", owner_id=AE["id"], sa=SA["id"], name="Globex Renewal", stage="3-Technical Evaluation")
    tables = {"Opportunity": [o], "Event": [event(owner_id=SA["id"], what_id=o["id"], attendee_emails="pat@globex.com")]}
    if povs:
        tables["Proof_of_Value__c"] = [pov(owner_id=SA["id"], opportunity_id=o["id"])]
    messages, _ = run(tmp_path, tables)
    [reminder] = [m for m in messages if m.slot == "meeting_reminder"]
    actions = [(e["action_id"], e.get("value")) for b in reminder.blocks if b["type"] == "actions" for e in b["elements"]]
    assert (UPDATE_TECH_EVAL, o["id"]) in actions
    assert ((ADD_POV, o["id"]) in actions) is povs


def test_every_message_of_the_demo_org_is_valid_for_slack(tmp_path):
    from sa_hygiene.demo.org import write_demo_org

    write_demo_org(tmp_path, AS_OF, scale=0.3, seed=5)
    cur, prev = read_snapshot(tmp_path / "current", CFG), read_snapshot(tmp_path / "previous", CFG)
    result = evaluate(cur, prev, CFG, AS_OF)
    messages = build_messages(result.alert_records(), cur, CFG, AS_OF, previous=prev)
    for m in messages:
        check_message(m)
    assert len({m.key for m in messages}) == len(messages)
    # Nothing is dropped: every alerted record is linked from its recipient's message (but those of
    # the managers' escalation DM, which notices.escalation_messages renders: test_pov_delivery).
    bodies = {m.key: all_text(m) for m in messages}
    for a in result.alert_records():
        if CFG.workflows[a["workflow"]].slot == "manager_escalation":
            continue
        url = f"/lightning/r/{a['object']}/{a['record_id']}/view"
        assert any(url in body for body in bodies.values()), a


def outbox_posts(tmp_path, ledger, messages):
    """Every chat.postMessage the outbox wrote for ``messages``: what Slack would receive."""
    from sa_hygiene.delivery.outbox import OutboxSink
    from sa_hygiene.delivery.slack import deliver

    sink = OutboxSink(tmp_path / "outbox", "run-1")
    report = deliver(messages, sink, ledger, "run-1")
    assert not report.failed, report.failed
    return [post for post in OutboxSink.posts(sink.folder)]


def strings(value):
    """Every string in a JSON value: each is a field Slack shows or follows."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


def test_a_long_meeting_title_and_a_long_name_still_give_a_reminder_slack_accepts(tmp_path, ledger):
    sa = dict(SA, name="Maximiliana Alexandrina Featherstonehaugh-Montgomery")
    subject = ("Quarterly business review & technical deep dive: merge trains, compliance pipelines, runners " * 2)[:130]
    o = opportunity(owner_id=AE["id"], name="Globex Renewal")
    pat = contact(email="pat@globex.com")
    e = event(owner_id=SA["id"], attendee_emails="sam@gitlab.com;pat@globex.com", subject=subject,
              start="2026-11-23T09:00:00Z", end="2026-11-23T10:00:00Z")  # fmt: skip
    tables = {"User": [sa, MGR, AE], "Opportunity": [o], "Contact": [pat], "Event": [e],
              "OpportunityContactRole": [contact_role(opportunity_id=o["id"], contact_id=pat["id"])]}  # fmt: skip
    cur = read_snapshot(write_snapshot(tmp_path / "c", tables), CFG)
    messages = build_messages(evaluate(cur, None, CFG, AS_OF).alert_records(), cur, CFG, AS_OF)
    [reminder] = [m for m in messages if m.slot == "meeting_reminder"]
    assert len(f"Log your meeting · {sa['name']} · {subject}") > 150

    [post] = outbox_posts(tmp_path, ledger, [reminder])

    header = post["args"]["blocks"][0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")
    assert header.startswith(f"Log your meeting · {sa['name']} · Quarterly business review &amp; technical")
    assert post["args"]["text"] == esc(f"Log your meeting · {sa['name']} · {subject}")


def test_markup_in_any_salesforce_field_reaches_no_payload_field_unescaped(tmp_path, ledger):
    nasty = " ".join(INJECTIONS + ["<#C1>"])
    sa = dict(SA, name=f"Sam {nasty}")
    acc = account(name=f"Acme {nasty}")
    o = opportunity(owner_id=AE["id"], sa=SA["id"], account_id=acc["id"], stage="4-Proposal", iacv="50000",
                    te_start=day(-30), name=f"Deal {nasty}")  # fmt: skip
    t = task(owner_id=SA["id"], activity_types="Demo", created="2026-11-23T10:00:00Z", subject=f"Call {nasty}",
             description=nasty, what_id=f"006{nasty}", sentiment="Positive")  # fmt: skip
    pat = contact(email="pat@globex.com")
    e = event(owner_id=SA["id"], attendee_emails="sam@gitlab.com;pat@globex.com", subject=f"Sync {nasty}",
              what_id=o["id"], start="2026-11-23T09:00:00Z", end="2026-11-23T10:00:00Z")  # fmt: skip
    tables = {"User": [sa, MGR, AE], "Account": [acc], "Opportunity": [o], "Task": [t], "Event": [e], "Contact": [pat],
              "OpportunityContactRole": [contact_role(opportunity_id=o["id"], contact_id=pat["id"])]}  # fmt: skip
    cur = read_snapshot(write_snapshot(tmp_path / "c", tables), CFG)
    messages = build_messages(evaluate(cur, None, CFG, AS_OF).alert_records(), cur, CFG, AS_OF)
    assert {m.slot for m in messages} >= {"sa_digest", "regional_digest", "meeting_reminder"}

    posts = outbox_posts(tmp_path, ledger, messages)

    fields = [s for post in posts for s in strings([post["args"]["text"], post["args"]["blocks"], post["title"]])]
    assert any("Sam &lt;!channel&gt;" in f for f in fields)  # the name is there, as text
    for bad in ("<!", "<@", "<#", "<https://evil"):
        assert not [f for f in fields if bad in f], bad
    links = [link for f in fields for link in re.findall(r"<([^|>]+)[|>]", f)]
    links += [e["url"] for p in posts for b in p["args"]["blocks"] for e in b.get("elements", []) if "url" in e]
    assert links and all(link.startswith("https://gitlab.my.salesforce.com/lightning/r/") for link in links)


def test_a_related_to_that_is_no_salesforce_id_is_shown_without_a_link(tmp_path):
    o = opportunity(owner_id=AE["id"], name="Initech Platform")
    t = task(owner_id=SA["id"], activity_types="Demo", created="2026-11-23T10:00:00Z", what_id="006https://x.example",
             sentiment="Positive")  # fmt: skip
    messages, _ = run(tmp_path, {"Opportunity": [o], "Task": [t]})
    regional = next(m for m in messages if m.slot == "regional_digest")
    line = next(line for b in regional.blocks if b["type"] == "section" for line in b["text"]["text"].split("\n")
                if " on " in line and "by Sam Architect" in line)  # fmt: skip
    assert line.endswith(" · on 006https://x.example · 2026-11-01")
    assert "/lightning/r/Opportunity/006https" not in all_text(regional)


def section_of(message, name: str) -> str:
    """The title of the section a record is listed under (the last bold title before it)."""
    current = None
    for block in [b for part in message.parts() for b in part]:
        text = block.get("text", {}).get("text", "") if block.get("type") == "section" else ""
        m = re.match(r"\*([^*<]+)\* \(\d+\)\n", text)
        if m:
            current = m.group(1)
        if name in text:
            return current
    raise AssertionError(f"{name} not in the message")


def test_a_regional_digest_files_a_record_under_its_root_cause_and_counts_what_it_holds(tmp_path):
    # Without a Primary SA, wf-06 (a DM to the SA) falls back to the region: for a manager the
    # first thing to do is assign an SA, so the record is filed there, not under the end date.
    both = opportunity(owner_id=AE["id"], stage="4-Proposal", iacv="50000", te_start=day(-20), name="Orphan Deal")
    ps = opportunity(owner_id=AE["id"], stage="4-Proposal", iacv="60000", is_ps="true", name="PS Deal")
    small_ps = opportunity(owner_id=AE["id"], stage="3-Technical Evaluation", iacv="5000", is_ps="true", name="Small PS")
    messages, result = run(tmp_path, {"Opportunity": [both, ps, small_ps]})
    (regional,) = [m for m in messages if m.slot == "regional_digest"]
    assert section_of(regional, "Orphan Deal") == "Opportunity without a Primary SA"
    assert section_of(regional, "PS Deal") == "Opportunity without a Primary SA"
    assert section_of(regional, "Small PS") == "PS opportunity without a Primary SA"
    # The headline adds up (spec v3): it counts records, per section the items listed under it.
    assert regional.text == ("#sa-activities-east-sa · SA hygiene · Tue 24 Nov: 3 records to look at: "
                             "Opportunity without a Primary SA: 2 · PS opportunity without a Primary SA: 1")  # fmt: skip
    text = all_text(regional)
    assert "*Opportunity without a Primary SA* (2)" in text and "*PS opportunity without a Primary SA* (1)" in text


def test_the_filing_order_is_configuration(tmp_path):
    from sa_hygiene.contract.config import ConfigError

    assert CFG.filing_order("regional_digest")[:3] == ["wf-13", "wf-10", "wf-12"]
    assert CFG.filing_order("sa_digest") == list(CFG.workflows)
    bad = tmp_path / "bad.yaml"
    bad.write_text("digest_order: {regional_digest: [wf-99]}\n")
    with pytest.raises(ConfigError, match=r"digest_order\.regional_digest\.0.*'wf-99'"):
        load_config(bad)


def test_a_manager_receiving_an_inactive_sas_items_is_told_whose_they_are(tmp_path):
    gone = user(id="0055e0000000GONAAA", name="Gus Gone", is_active="false", manager_id=SA["id"])
    mine = task(owner_id=SA["id"], activity_types="Demo", created="2026-11-20T10:00:00Z", subject="Mine")
    theirs = task(owner_id=gone["id"], activity_types="Demo", created="2026-11-20T10:00:00Z", subject="Theirs")
    cur = read_snapshot(write_snapshot(tmp_path / "c", {"User": [SA, MGR, AE, gone], "Task": [theirs]}), CFG)
    messages = build_messages(evaluate(cur, None, CFG, AS_OF).alert_records(), cur, CFG, AS_OF)
    (dm,) = [m for m in messages if m.slot == "sa_digest"]
    assert dm.recipient == {"type": "user", "id": SA["id"]}
    assert "Activities Gus Gone logged this week" in all_text(dm) and "Activities you logged" not in all_text(dm)
    cur = read_snapshot(write_snapshot(tmp_path / "c2", {"User": [SA, MGR, AE, gone], "Task": [mine, theirs]}), CFG)
    messages = build_messages(evaluate(cur, None, CFG, AS_OF).alert_records(), cur, CFG, AS_OF)
    (dm,) = [m for m in messages if m.slot == "sa_digest"]
    assert "Activities you and Gus Gone logged this week" in all_text(dm)
    cur = read_snapshot(write_snapshot(tmp_path / "c3", {"User": [SA, MGR, AE], "Task": [mine]}), CFG)
    (dm,) = [m for m in build_messages(evaluate(cur, None, CFG, AS_OF).alert_records(), cur, CFG, AS_OF) if m.slot == "sa_digest"]
    assert "Activities you logged this week" in all_text(dm)


def test_messages_keep_what_a_reader_needs_to_act(tmp_path):
    """Issue 15 § 3: links of a cut description, the recording of a Chorus call, the Chatter way
    for a closed opportunity, the calls to action, and attendees by name."""
    o = opportunity(owner_id=AE["id"], sa=SA["id"], name="Initech Platform")
    notes = "We demoed merge trains. " * 20 + "More detailed notes are here: https://docs.example.com/notes?id=7&x=1"
    activity = task(owner_id=SA["id"], activity_types="Demo", created="2026-11-23T15:00:00Z", what_id=o["id"],
                    sentiment="Positive", description=notes)  # fmt: skip
    chorus = task(owner_id=SA["id"], created="2026-11-23T16:00:00Z", chorus_call_id="AbC-123_x", what_id=o["id"])
    won = opportunity(owner_id=AE["id"], sa=SA["id"], name="Won Deal", stage="Closed Won", is_closed="true",
                      is_won="true", te_start="2026-10-01")  # fmt: skip
    due = task(owner_id=SA["id"], activity_date=AS_OF.isoformat(), status="Not Started", is_closed="false")
    pat = contact(email="pat@globex.com", name="Pat Customer")
    meeting = event(owner_id=SA["id"], attendee_emails="sam@gitlab.com;PAT@GLOBEX.COM;Kim.Lee@Gmail.com",
                    end="2026-11-23T16:00:00Z")  # fmt: skip
    messages, _ = run(tmp_path, {"Opportunity": [o, won], "Task": [activity, chorus, due], "Contact": [pat], "Event": [meeting]})
    regional = all_text(next(m for m in messages if m.slot == "regional_digest"))
    assert "https://docs.example.com/notes?id=7&amp;x=1" in regional and "<https://docs.example.com" not in regional
    recordings = all_text(next(m for m in messages if m.recipient.get("name") == "#sa-chorus-calls"))
    assert "<https://chorus.ai/meeting/AbC-123_x|Listen to the recording>" in recordings
    dm = all_text(next(m for m in messages if m.slot == "sa_digest" and m.recipient.get("id") == SA["id"]))
    assert "Won Deal" in dm and "Update tech evaluation asks Sales Support" in dm and "Please review if any need more information" in dm
    reminder = all_text(next(m for m in messages if m.slot == "meeting_reminder"))
    # The contact's name when known, else the address in lower case; a gmail customer is a customer.
    assert "Pat Customer, kim.lee@gmail.com" in reminder and "PAT@GLOBEX.COM" not in reminder


def test_a_recording_id_that_is_no_plain_id_gets_no_link(tmp_path):
    chorus = task(owner_id=SA["id"], created="2026-11-23T16:00:00Z", chorus_call_id="x|<!channel>")
    messages, _ = run(tmp_path, {"Task": [chorus]})
    post = all_text(next(m for m in messages if m.recipient.get("name") == "#sa-chorus-calls"))
    assert "chorus.ai" not in post and "<!channel>" not in post


NEW_WORKFLOWS = """
digest_order: {sa_digest: [wf-17, wf-16]}
workflows:
  wf-16:
    title: Won without a tech evaluation
    message:
      text: "Deals {owner} won without a recorded tech evaluation: record it for the win rate."
      show: [stage3_overdue, sa_change]
      when_closed: "Closed: ask Sales Support to record the evaluation in its Chatter feed."
    object: Opportunity
    frame: opportunities
    scope: is_won and not has_te_start
    expect:
      - {expectation: not_null, column: te_start}
    recipient: {dm: sa}
    slot: sa_digest
  wf-17:
    title: Chorus call to review
    message:
      text: Your recorded calls of the day, to review before the next one.
      show: [recording, description]
    object: Task
    frame: tasks
    scope: is_chorus
    expect:
      - {expectation: in_set, column: created_in_window, values: [false]}
    recipient: {dm: owner}
    slot: sa_digest
"""


def test_a_new_workflow_is_one_yaml_entry_with_the_facts_its_message_chooses(tmp_path):
    """README: adding a workflow is one YAML entry. Its message block chooses what an item shows;
    no Python names it."""
    (tmp_path / "project.yaml").write_text(NEW_WORKFLOWS)
    cfg = load_config(tmp_path / "project.yaml")
    won = opportunity(owner_id=AE["id"], sa=SA["id"], name="Globex Renewal", stage="Closed Won", is_closed="true",
                      is_won="true", stage3_date=day(-10), iacv="30000")  # fmt: skip
    call = task(owner_id=SA["id"], subject="Call with Globex", created="2026-11-23T16:00:00Z",
                chorus_call_id="AbC-123_x", description="Walked through the pipeline editor.")  # fmt: skip
    users = {"User": [SA, MGR, AE]}
    cur = read_snapshot(write_snapshot(tmp_path / "c", {**users, "Opportunity": [won], "Task": [call]}), cfg)
    prev = read_snapshot(write_snapshot(tmp_path / "p", {**users, "Opportunity": [{**won, "sa": AE["id"]}]}), cfg)
    messages = build_messages(evaluate(cur, prev, cfg, AS_OF).alert_records(), cur, cfg, AS_OF, previous=prev)
    (dm,) = [m for m in messages if m.slot == "sa_digest"]
    sections = [b["text"]["text"] for part in dm.parts() for b in part if b["type"] == "section"]
    assert dm.text.endswith("2 records need you: Chorus call to review: 1 · Won without a tech evaluation: 1")
    head, item = sections[sections.index(next(s for s in sections if s.startswith("*Won without"))):][:2]
    assert head == ("*Won without a tech evaluation* (1)\n"
                    "_Deals you won without a recorded tech evaluation: record it for the win rate._")
    lines = item.split("\n")
    assert lines[2:] == [
        "entered stage 3 on 2026-11-14 (10 days ago) · *3 days overdue*",  # won: past stage 3; stage3_overdue
        "Primary SA Alex Exec → *Sam Architect*",  # sa_change (from the previous snapshot)
        "_Closed: ask Sales Support to record the evaluation in its Chatter feed._",  # when_closed
    ]
    head, item = sections[sections.index(next(s for s in sections if s.startswith("*Chorus call"))):][:2]
    assert head == "*Chorus call to review* (1)\n_Your recorded calls of the day, to review before the next one._"
    # Facts in their fixed order, whatever the list's: the description, then the recording.
    assert item.split("\n")[2:] == ["> Walked through the pipeline editor.",
                                    ":movie_camera: <https://chorus.ai/meeting/AbC-123_x|Listen to the recording>"]


def test_spec_v3_messages_add_up(tmp_path):
    """Header and section counts equal the items; wf-12's call to action under wf-13; "entered
    stage 3 on" past stage 3; wf-11's due-or-overdue tasks, longest overdue first."""
    stuck = opportunity(owner_id=AE["id"], stage="3-Technical Evaluation", iacv="50000", stage3_date=day(-10), name="Stuck Deal")
    later = opportunity(owner_id=AE["id"], stage="4-Proposal", iacv="50000", stage3_date=day(-40), name="Later Deal")
    tasks = [task(owner_id=SA["id"], is_closed="false", status="Open", activity_date=day(-n), subject=f"Task {n}")
             for n in (0, 12, 3)]  # fmt: skip
    messages, _ = run(tmp_path, {"Opportunity": [stuck, later], "Task": tasks})
    (regional,) = [m for m in messages if m.slot == "regional_digest"]
    text = all_text(regional)
    assert regional.text.endswith("2 records to look at: Opportunity without a Primary SA: 2")
    assert "*Opportunity without a Primary SA* (2)" in text
    assert CFG.workflows["wf-12"].message.text.split(".")[0] in text  # filed under wf-13, still told
    assert "stage 3 since " in text and "entered stage 3 on 2026-10-15 (40 days ago)" in text
    (dm,) = [m for m in messages if m.slot == "sa_digest"]
    body = all_text(dm)
    assert dm.text.endswith("3 records need you: Tasks due or overdue: 3")
    assert "*Tasks due or overdue* (3)" in body
    assert body.index("Task 12") < body.index("Task 3") < body.index("Task 0")
    assert "*overdue 12 days*" in body and "*overdue 0 days* (due today)" in body


def test_a_reassigned_item_says_yours_since_and_snoozed_items_are_counted(tmp_path):
    o = opportunity(owner_id=AE["id"], sa=SA["id"], stage="5-Negotiating", te_start=day(-30), name="Handed Over")
    snoozed = opportunity(owner_id=AE["id"], sa=SA["id"], stage="5-Negotiating", te_start=day(-30), name="Put Away")
    cur = read_snapshot(write_snapshot(tmp_path / "c", {"User": [SA, MGR, AE], "Opportunity": [o, snoozed]}), CFG)
    alerts = [{**a, "first_seen": day(-6), "age_days": 6, "recipient_since": day(-2)}
              for a in evaluate(cur, None, CFG, AS_OF).alert_records() if a["record_id"] == o["id"]]  # fmt: skip
    me = f"user:{SA['id']}"
    (dm,) = build_messages(alerts, cur, CFG, AS_OF, snoozed={me: {snoozed["id"]: day(5)}})
    body = all_text(dm)
    assert f"_open 6 days, since {day(-6)}; yours since {day(-2)}_" in body
    assert f"1 item snoozed until {day(5)}" in body and "Put Away" not in body


def test_a_closed_opportunity_s_item_says_what_its_update_button_does(tmp_path):
    # wf-06 on a lost deal: the SA cannot edit it; the item's Update tech evaluation button posts
    # the request to Sales Support in its Chatter feed, and the item says so (no "type the @").
    lost = opportunity(owner_id=AE["id"], sa=SA["id"], stage="Closed Lost", is_closed="true", iacv="50000",
                       te_start=day(-30), name="Lost Deal")  # fmt: skip
    orphan = {**lost, "id": "0065e0000000OR1AAA", "sa": "", "name": "Orphan Lost Deal"}
    messages, _ = run(tmp_path, {"Opportunity": [lost, orphan]})
    # Without a Primary SA it goes to the region's channel, whose item has no such button: no sentence about it.
    (regional,) = [m for m in messages if m.slot == "regional_digest"]
    assert "Orphan Lost Deal" in all_text(regional) and "Sales Support" not in all_text(regional)
    (dm,) = [m for m in messages if m.slot == "sa_digest"]
    text = all_text(dm)
    assert ("_Closed: you cannot edit it. Update tech evaluation asks Sales Support for you: enter the values and "
            "it posts the request in the opportunity's Chatter feed._") in text
    assert "type the @ yourself" not in text and "Update tech evaluation" in text
    buttons = [e for part in dm.parts() for b in part if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Update tech evaluation"]


def test_a_related_record_outside_the_snapshot_is_named_for_what_it_is_not_by_its_id(tmp_path):
    gone = "0065e0000000GONAAA"  # an opportunity the extraction did not return (deleted, or out of scope)
    t = task(owner_id=SA["id"], what_id=gone, status="Not Started", is_closed="false", activity_date=day(-5),
             subject="Call back")  # fmt: skip
    messages, _ = run(tmp_path, {"Task": [t]})
    text = all_text(next(m for m in messages if m.recipient == {"type": "user", "id": SA["id"]}))
    assert "|an opportunity not in the snapshot>" in text  # still linked to the record
    assert f"|{gone}>" not in text
