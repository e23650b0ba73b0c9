import textwrap

import pytest
import yaml

from sa_hygiene.contract import config
from sa_hygiene.contract.config import DEFAULTS_PATH, WORKFLOWS_PATH, ConfigError, load_config
from sa_hygiene.contract.schema import OBJECTS

pytestmark = pytest.mark.unit


def write(tmp_path, text: str):
    path = tmp_path / "project.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_hold_the_contract():
    cfg = load_config()
    t = cfg.thresholds
    assert (t.iacv_sa_required, t.iacv_tech_eval, t.iacv_stage2_move) == (10000, 20000, 20000)
    assert (t.stage3_days, t.stall_days, t.other_min_chars) == (7, 14, 80)
    assert cfg.fields["Opportunity"]["te_status"] == "SA_Validated_Tech_Evaluation_Close_Statu__c"
    assert set(cfg.fields) == set(OBJECTS)
    assert cfg.regions["apj-cs"].timezone == "Australia/Sydney"
    assert cfg.regions["commercial-sa"].timezone == "America/Chicago"
    assert [r.key for r in cfg.routing.rules] == [
        "channels-and-alliances-sa", "pubsec-sa", "commercial-sa", "emea-sa", "apj-cs", "east-sa", "west-sa",
    ]
    assert cfg.routing.unrouted_channel == "#sa-hygiene-ops"
    assert cfg.email_domains.company == ["gitlab.com"]
    assert "proton.me" in cfg.email_domains.generic and len(cfg.email_domains.generic) == 10
    assert len(cfg.taxonomy.all_activity_types) == 30
    assert sorted(cfg.workflows) == sorted(
        ["wf-01", "wf-02", "wf-03", "wf-04", "wf-06", "wf-07", "wf-08", "wf-09", "wf-10", "wf-11", "wf-12",
         "wf-13", "wf-14", "wf-15", "te-consistency", "te-stalled", "act-fields", "pov-overdue", "pov-criteria",
         "pov-opportunity", "pov-result", "pov-tech-eval", "pov-load"]
    )
    # Proofs of Value (spec v3): the object's API names, its key prefix, 8 weeks and 3 at once.
    assert cfg.fields["Proof_of_Value__c"]["status"] == "Status__c" and cfg.proofs_of_value.key_prefix == "a0P"
    assert (t.pov_max_days, t.pov_max_running) == (56, 3)
    assert cfg.proofs_of_value.statuses == ["Planned", "In Progress", "Completed", "Cancelled"]
    fixed = {w: cfg.workflows[w].recipient.channel for w in ("wf-03", "wf-04", "wf-08", "wf-09", "wf-14")}
    assert fixed == {"wf-03": "#sa-tech-eval-start", "wf-04": "#sa-tech-eval-end", "wf-08": "#stage-move-02",
                     "wf-09": "#sa-chorus-calls", "wf-14": "#sa-primary-sa-change"}


def test_user_file_overrides_only_what_it_names(tmp_path):
    cfg = load_config(write(tmp_path, """
        thresholds:
          iacv_tech_eval: 25000
        fields:
          Opportunity:
            sa: Primary_SA__c
        workflows:
          wf-09:
            enabled: false
    """))
    assert cfg.thresholds.iacv_tech_eval == 25000
    assert cfg.thresholds.iacv_sa_required == 10000
    assert cfg.fields["Opportunity"]["sa"] == "Primary_SA__c"
    assert cfg.fields["Opportunity"]["stage"] == "StageName"
    assert "wf-09" not in cfg.enabled_workflows() and "wf-08" in cfg.enabled_workflows()


def test_environment_variable_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SA_HYGIENE_CONFIG", str(write(tmp_path, "store: {keep: 5}\n")))
    assert load_config().store.keep == 5


# Each of these loaded before and failed at evaluation (a crash, or a silent wrong answer).
FAILED_AT_RUN_TIME = [
    # Columns the frame table once listed that no frame the engine builds has.
    *[(f"workflows:\n  {wid}:\n    scope: {column} == 'x'\n", f"workflows.{wid}.scope", f"unknown field {column!r}")
      for wid, column in [("wf-06", "owner_name"), ("wf-06", "sa_name"), ("wf-10", "account_name"),
                          ("wf-14", "prev_sa_name"), ("wf-01", "ended_in_window")]],
    ("workflows:\n  wf-06:\n    expect: [{expectation: not_null, column: to_sa}]\n", "workflows.wf-06.expect.0.column", "unknown field 'to_sa'"),
    ("stages:\n  rank_pattern: '^[0-7]-'\n", "stages.rank_pattern", "exactly one capture group"),
    ("stages:\n  rank_pattern: '^([0-7])([a-z])'\n", "stages.rank_pattern", "exactly one capture group"),
    ("stages:\n  rank_pattern: '^(['\n", "stages.rank_pattern", "not a regular expression"),
    ("workflows:\n  wf-08:\n    expect: [{expectation: in_set, column: prev_rank, values: '@stall_days'}]\n",
     "workflows.wf-08.expect.0.values", "needs a list of values"),
    ("workflows:\n  wf-11:\n    expect: [{expectation: not_in_set, column: activity_date, values: '@as_of'}]\n",
     "workflows.wf-11.expect.0.values", "needs a list of values"),
    ("workflows:\n  wf-07:\n    scope: stage3_date > 5\n", "workflows.wf-07.scope", "cannot compare stage3_date (a date) with 5 (a number)"),
    ("workflows:\n  wf-07:\n    scope: stage >= @stage3_days\n", "workflows.wf-07.scope", "cannot compare stage (a text)"),
    ("workflows:\n  wf-02:\n    scope: created >= @as_of\n", "workflows.wf-02.scope", "(a datetime) with @as_of (a date)"),
    ("workflows:\n  wf-07:\n    scope: iacv\n", "workflows.wf-07.scope", "not true or false per row"),
    ("workflows:\n  wf-07:\n    scope: not iacv\n", "workflows.wf-07.scope", "logic on iacv (a number)"),
    ("workflows:\n  wf-08:\n    expect: [{expectation: in_set, column: prev_rank, values: ['2']}]\n",
     "workflows.wf-08.expect.0.values", "'2' is a text, 'prev_rank' holds number values"),
    ("workflows:\n  wf-06:\n    expect: [{expectation: between, column: te_end, max: 5}]\n",
     "workflows.wf-06.expect.0.max", "'te_end' is compared as a date"),
    ("workflows:\n  wf-06:\n    expect: [{expectation: between, column: te_status, min: 1}]\n",
     "workflows.wf-06.expect.0.column", "between cannot check 'te_status', a text"),
    ("workflows:\n  wf-06:\n    expect: [{expectation: pair_greater, column: te_end, other: iacv}]\n",
     "workflows.wf-06.expect.0.other", "'iacv' is a number, 'te_end' a date"),
    ("workflows:\n  wf-02:\n    expect: [{expectation: each_in_set, column: subject, values: '@sentiments'}]\n",
     "workflows.wf-02.expect.0.column", "each_in_set cannot check 'subject'"),
    ("workflows:\n  wf-02:\n    expect: [{expectation: match_regex, column: description, regex: 'https?://('}]\n",
     "workflows.wf-02.expect.0.regex", "match_regex: 'https?://(' is not a regular expression"),
    ("workflows:\n  wf-02:\n    expect: [{expectation: min_length, column: description, min: '@as_of'}]\n",
     "workflows.wf-02.expect.0.min", "'@as_of' is a date"),
    # Scopes that would allocate huge strings or lists on every evaluation.
    ("workflows:\n  wf-07:\n    scope: \"stage == 'a' * 200000000\"\n", "workflows.wf-07.scope", "arithmetic on 'a' (a text)"),
    ("workflows:\n  wf-07:\n    scope: \"stage == ('a' + 'b') * 9\"\n", "workflows.wf-07.scope", "arithmetic on 'a' (a text)"),
    ("workflows:\n  wf-02:\n    scope: \"@activity_types * 100000000\"\n", "workflows.wf-02.scope", "arithmetic on @activity_types (a list)"),
    (f"workflows:\n  wf-07:\n    scope: \"stage == '{'a' * 5000}'\"\n", "workflows.wf-07.scope", "text constant longer than 1000"),
    # Membership: a list of constants of the column's kind, however long; the first item of
    # another kind is named, a long text is refused inside a list too.
    ("workflows:\n  wf-07:\n    scope: \"stage in ['a', 'b', 3, 'c', 4]\"\n", "workflows.wf-07.scope",
     "cannot look stage (a text) up among 3 (a number)"),
    ("workflows:\n  wf-07:\n    scope: \"stage in ['a', iacv]\"\n", "workflows.wf-07.scope", "holds constants only: iacv"),
    (f"workflows:\n  wf-07:\n    scope: \"stage in ['a', '{'a' * 5000}']\"\n", "workflows.wf-07.scope",
     "text constant longer than 1000"),
]  # fmt: skip


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("bogus: 1\n", "bogus", "Extra inputs"),
        ("thresholds:\n  iacv_tech_eval: lots\n", "thresholds.iacv_tech_eval", "valid number"),
        ("thresholds:\n  stage3_days: '7'\n", "thresholds.stage3_days", "valid integer"),
        ("regions:\n  east-sa: {timezone: Mars/Olympus}\n", "regions.east-sa.timezone", "unknown time zone"),
        ("workflows:\n  wf-06:\n    scope: not lost and has_te_strat\n", "workflows.wf-06.scope", "unknown field 'has_te_strat'"),
        ("workflows:\n  wf-06:\n    expect: [{expectation: not_null, column: te_edn}]\n", "workflows.wf-06.expect.0.column", "unknown field 'te_edn'"),
        ("workflows:\n  wf-07:\n    scope: iacv >= @iacv_huge\n", "workflows.wf-07.scope", "unknown parameter @iacv_huge"),
        ("fields:\n  Opportunity:\n    primary_sa: X__c\n", "fields.Opportunity.primary_sa", "unknown field"),
        ("routing:\n  rules: [{key: mars-sa, when: {geo: [MARS]}}]\n", "routing.rules.0.key", "not a region"),
        ("schedule:\n  sa_digest_at: '25:00'\n", "schedule.sa_digest_at", "HH:MM"),
        ("workflows:\n  wf-07:\n    message: {show: [overdue]}\n", "workflows.wf-07.message.show.0", "Input should be"),
        ("workflows:\n  wf-07:\n    message: {txt: Hi}\n", "workflows.wf-07.message.txt", "Extra inputs"),
        ("workflows:\n  wf-11:\n    message: {show: [stage3_overdue]}\n", "workflows.wf-11.message.show.0",
         "'stage3_overdue' is shown on Opportunity items, this workflow's are Task"),
        ("workflows:\n  wf-02:\n    message: {show: [description, description]}\n", "workflows.wf-02.message.show.1",
         "'description' is listed twice"),
        ("workflows:\n  wf-02:\n    message: {when_closed: Closed.}\n", "workflows.wf-02.message.when_closed",
         "only an opportunity's item says it is closed"),
        # A workflow's fix (the Slack app's "Update tech evaluation"): a known one, on DM items of its object.
        ("workflows:\n  wf-06:\n    fix: [log_it]\n", "workflows.wf-06.fix.0", "Input should be"),
        ("workflows:\n  wf-11:\n    fix: [tech_eval]\n", "workflows.wf-11.fix.0",
         "'tech_eval' fixes Opportunity records, this workflow's are Task"),
        ("workflows:\n  wf-13:\n    fix: [tech_eval]\n", "workflows.wf-13.fix.0", "only DM items"),
        ("workflows:\n  wf-07:\n    expect: [{expectation: between, column: amount, min: .nan}]\n",
         "workflows.wf-07.expect.0", "'min' must be a finite number, not nan"),
        ("workflows:\n  wf-07:\n    expect: [{expectation: min_length, column: name, min: .inf}]\n",
         "workflows.wf-07.expect.0", "'min' must be a finite number, not inf"),
        *FAILED_AT_RUN_TIME,
    ],
)
def test_wrong_values_name_the_key_and_the_file(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path.resolve()}: {key}: " in message
    assert words in message


def test_broken_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "thresholds: [\n"))
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")


def test_an_override_that_breaks_a_default_is_blamed_on_the_user_file(tmp_path):
    # Only the frame changes; the default scope no longer fits it, and the message says whose change it was.
    path = write(tmp_path, "workflows:\n  wf-06:\n    frame: tasks\n    object: Task\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path.resolve()}: workflows.wf-06.scope: unknown field 'has_te_start' of frame 'tasks'" in str(err.value)
    assert str(DEFAULTS_PATH) not in str(err.value)


def test_deployment_environment_overrides_the_files(tmp_path, monkeypatch):
    path = write(tmp_path, "slack:\n  ledger_url: sqlite:///from-file.sqlite\n")
    monkeypatch.setenv("SA_HYGIENE_LEDGER_URL", "postgresql+psycopg://airflow@postgres/sa_hygiene")
    monkeypatch.setenv("SA_HYGIENE_DELIVERY", "slack")
    monkeypatch.setenv("SA_HYGIENE_RETRY_DELAY_SECONDS", "2.5")
    cfg = load_config(path)
    assert cfg.slack.ledger_url == "postgresql+psycopg://airflow@postgres/sa_hygiene"
    assert cfg.slack.delivery == "slack"
    assert cfg.schedule.retry_delay_seconds == 2.5
    monkeypatch.setenv("SA_HYGIENE_DELIVERY", "carrier-pigeon")
    with pytest.raises(ConfigError, match="slack.delivery"):
        load_config(path)


def test_the_defaults_are_two_files_found_by_name_with_no_key_in_both():
    settings, workflows = (yaml.safe_load(p.read_text()) for p in (DEFAULTS_PATH, WORKFLOWS_PATH))
    assert WORKFLOWS_PATH.parent == DEFAULTS_PATH.parent and WORKFLOWS_PATH.name == "workflows.yaml"
    assert set(workflows) == {"workflows", "digest_order", "reasons"}
    assert not set(settings) & set(workflows)


def test_rewording_a_workflow_keeps_the_facts_it_shows(tmp_path):
    # The documented form: a sentence. It rewords the call to action and keeps the facts.
    cfg = load_config(write(tmp_path, """
        workflows:
          wf-07:
            message: Start date, please.
          wf-03:
            message: {show: []}
    """))
    assert cfg.workflows["wf-07"].message.text == "Start date, please."
    assert cfg.workflows["wf-07"].message.show == ["stage3_overdue"]
    # A list is replaced whole; the sentence it did not name stays.
    assert cfg.workflows["wf-03"].message.show == []
    assert cfg.workflows["wf-03"].message.text == load_config().workflows["wf-03"].message.text
    assert cfg.workflows["wf-06"].message.when_closed.startswith("Closed: you cannot edit it. Update tech evaluation asks")


def test_a_mistake_in_the_default_workflows_names_their_file(tmp_path, monkeypatch):
    broken = tmp_path / "workflows.yaml"
    broken.write_text(WORKFLOWS_PATH.read_text().replace("scope: is_chorus", "scope: is_chorrus"))
    monkeypatch.setattr(config, "DEFAULT_FILES", (DEFAULTS_PATH, broken))
    config._load.cache_clear()
    try:
        with pytest.raises(ConfigError) as err:
            load_config()
    finally:
        config._load.cache_clear()
    assert f"{broken}: workflows.wf-09.scope: unknown field 'is_chorrus'" in str(err.value)


def test_pov_settings_are_checked(tmp_path):
    """The POV status groups name configured statuses; a DM to the manager needs a frame that has one."""
    with pytest.raises(ConfigError, match=r"proofs_of_value.*running: 'Running' not among the statuses"):
        load_config(write(tmp_path, """
            proofs_of_value:
              running: [Running]
        """))
    with pytest.raises(ConfigError, match=r"workflows.pov-criteria.recipient.dm: 'manager' needs a frame with manager_id"):
        load_config(write(tmp_path, """
            workflows:
              pov-criteria:
                recipient: {dm: manager}
        """))


def test_an_expression_shared_by_workflows_is_checked_once_and_blamed_on_each(tmp_path):
    """Checked once per frame (user alerts of one region share a long scope), reported for every
    workflow that holds it, and judged against each workflow's own frame."""
    from sa_hygiene.contract.expressions import expression_names, parse_scope

    path = tmp_path / "c.yaml"
    path.write_text("workflows:\n  wf-06:\n    scope: rank >= 2 and has_te_strat\n  wf-07:\n    scope: rank >= 2 and has_te_strat\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "workflows.wf-06.scope" in str(err.value) and "workflows.wf-07.scope" in str(err.value)
    assert parse_scope("rank >= @x") is parse_scope("rank >= @x")  # one parse per distinct expression
    assert expression_names("rank >= @x and is_open") == ({"rank", "is_open"}, {"x"})


def test_lists_of_ids_are_parsed_once_per_list_into_the_tree_python_parses():
    """A user alert's "my region" names thousands of Ids, the same list in every scope of the
    region's alerts: each list is parsed once and shared, and every scope's tree is still the one
    ``ast.parse`` makes of its text; an Id list inside a text constant, or a name that looks like
    the placeholder, is parsed as written."""
    import ast

    from sa_hygiene.contract.expressions import check_expression, parse_scope

    people = ", ".join(repr(f"0055e{k:010d}AAA") for k in range(400))
    mine = f"(sa in [{people}]) | (owner_id in [{people}])"
    exprs = [
        mine, f"{mine} and rank == 3", f"({mine}) and prev_rank == 2",
        f"te_status == \"[{people}]\" or owner_id in ['0055e0000000001AAA']",  # the list is text here
        f"__idlist_0 or (owner_id in [{people}])", f"owner_id in [{people}, 'x']",
    ]  # fmt: skip
    for expr in exprs:
        assert ast.dump(parse_scope(expr)) == ast.dump(ast.parse(expr, mode="eval")), expr[:60]
    a, b = parse_scope(mine).body, parse_scope(f"{mine} and rank == 3").body.values[0]
    assert a.left.comparators[0] is a.right.comparators[0] is b.left.comparators[0]  # one list node for all
    columns = {"sa": "text", "owner_id": "text", "rank": "number", "te_status": "text"}
    assert check_expression(mine, "opportunities", columns, {}) == []
    # Neither the check nor the engine's plan makes a list's 400 item nodes; printing it does.
    from sa_hygiene.engine.columns import _plan

    theirs = "owner_id in [" + ", ".join(repr(f"0055e{k:010d}AAB") for k in range(400)) + "]"
    assert check_expression(theirs, "opportunities", columns, {}) == []
    assert _plan(theirs) == ("in", "owner_id", tuple(f"0055e{k:010d}AAB" for k in range(400)), True)
    assert "_elts" not in vars(parse_scope(theirs).body.comparators[0])
    assert ast.unparse(parse_scope(theirs)) == theirs  # read, they are made
    assert check_expression(f"owner_id in [{people}, {people}]".replace("AAA'", "AAA', 'x'"), "opportunities", columns,
                            {}) == []  # 1,600 items, not an Id list as written: parsed whole  # fmt: skip
    too_many = ", ".join(repr(f"0055e{k:010d}AAA") for k in range(5001))
    assert check_expression(f"owner_id in [{too_many}]", "opportunities", columns, {}) == ["a list of more than 5000 values"]
    assert check_expression(f"rank in [{people}]", "opportunities", columns, {}) == [
        "cannot look rank (a number) up among '0055e0000000000AAA' (a text)"]  # fmt: skip
