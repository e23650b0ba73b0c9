import textwrap

import pytest

from sa_hygiene.config import DEFAULTS_PATH, ConfigError, load_config
from sa_hygiene.schema import OBJECTS

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
         "wf-13", "wf-14", "wf-15", "te-consistency", "te-stalled", "act-fields"]
    )
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
