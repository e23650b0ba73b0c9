"""The log-it form is checked by the workflow the configuration names, on the row its Task will
add to the activities frame: it accepts what a digest will not flag, and nothing else."""

from __future__ import annotations

import pandas as pd
import pytest
from expectation_paths import flagged_by_gx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_app_requests import OPP, PAT

from sa_hygiene.contract.config import ConfigError, load_config
from sa_hygiene.web.slack_app.log_form import form_row, validate

pytestmark = pytest.mark.unit

CFG = load_config()
VALID = {"activity_types": ["Demo"], "sentiment": "Neutral", "persona_levels": [], "what_id": OPP["id"],
         "who_id": PAT["id"], "subject": "Acme demo", "description": "Showed merge trains to the platform team."}  # fmt: skip


@pytest.mark.integration
def test_validation_follows_the_configuration(tmp_path):
    (tmp_path / "c.yaml").write_text("thresholds: {other_min_chars: 10}\n")
    form = {"activity_types": ["Other"], "sentiment": "Neutral", "persona_levels": [], "what_id": OPP["id"],
            "who_id": PAT["id"], "subject": "x", "description": "Twelve chars"}  # fmt: skip
    assert validate(load_config(tmp_path / "c.yaml"), form) == {}
    assert set(validate(load_config(), form)) == {"description"}


def test_the_form_is_checked_by_the_workflow_the_configuration_names(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "slack: {log_form_workflow: long-subjects}\n"
        "workflows:\n"
        "  long-subjects:\n"
        "    title: Short subject\n    object: Task\n    frame: activities\n"
        "    expect: [{reason: subject_missing, expectation: min_length, column: subject, min: 8}]\n"
        "    recipient: {dm: owner}\n    slot: sa_digest\n"
    )
    cfg = load_config(tmp_path / "c.yaml")
    wrong_sentiment = {**VALID, "sentiment": "Ecstatic"}  # the default workflow would refuse it; this one does not
    assert validate(cfg, wrong_sentiment) == {}
    assert validate(cfg, {**VALID, "subject": "Demo"}) == {"subject": cfg.reasons["subject_missing"]}
    assert set(validate(CFG, wrong_sentiment)) == {"sentiment"}


@pytest.mark.parametrize(("workflow", "why"), [("no-such-workflow", "is not a workflow"), ("wf-07", "reads frame 'opportunities', not the activities")])
def test_the_form_s_workflow_must_exist_and_read_activities(tmp_path, workflow, why):
    (tmp_path / "c.yaml").write_text(f"slack: {{log_form_workflow: {workflow}}}\n")
    with pytest.raises(ConfigError, match=f"slack.log_form_workflow: '{workflow}' {why}"):
        load_config(tmp_path / "c.yaml")


def test_a_form_without_related_to_is_refused_as_a_digest_would_flag_it():
    assert validate(CFG, {**VALID, "what_id": None}) == {"what": CFG.reasons["related_to_not_opportunity"]}


def test_the_form_row_is_a_row_of_the_activities_frame():
    row = form_row(CFG, {**VALID, "activity_types": ["Ride Along", "Other"]}, "0055e0000000001AAA", "2026-11-23")
    assert row.iloc[0][["what_prefix", "who_prefix", "has_ride_along", "has_other", "has_csp"]].tolist() == [
        "006", "003", True, True, False]  # fmt: skip
    assert row.iloc[0]["activity_date"] == pd.Timestamp("2026-11-23")
    assert row.iloc[0]["description_length"] == len(VALID["description"])


TEXT = st.sampled_from([None, "x", "see https://plan.example/1", "Short.", "a" * 90])
IDS = st.sampled_from([None, OPP["id"], "0015e0000000001AAA", PAT["id"], "00Q5e0000000001AAA"])
forms = st.fixed_dictionaries({
    "activity_types": st.lists(st.sampled_from([*CFG.taxonomy.all_activity_types[:6], "Ride Along", "Other", "Unknown"]), max_size=2),
    "sentiment": st.sampled_from([None, *CFG.taxonomy.sentiments, "Ecstatic"]),
    "persona_levels": st.lists(st.sampled_from([*CFG.taxonomy.persona_levels, "CEO"]), max_size=2),
    "what_id": IDS, "who_id": IDS, "subject": TEXT, "description": TEXT,
})  # fmt: skip


@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(forms, min_size=40, max_size=40))
def test_a_form_is_accepted_exactly_when_the_digest_would_not_flag_its_task(submitted):
    wid = CFG.slack.log_form_workflow
    rows = pd.concat([form_row(CFG, form) for form in submitted], ignore_index=True)
    flagged = flagged_by_gx(rows, CFG.workflows[wid], {**CFG.params(), "as_of": pd.Timestamp.now().normalize()})
    for i, form in enumerate(submitted):
        accepted = validate(CFG, form) == {}
        assert accepted == (bool(form["activity_types"]) and i not in flagged), (form, flagged.get(i))
