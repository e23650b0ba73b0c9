"""The managers' settings: snooze lengths and manager groups are configuration, checked like the rest."""

from __future__ import annotations

import pytest

from sa_hygiene.contract.config import ConfigError, load_config

pytestmark = pytest.mark.unit


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_and_an_override():
    cfg = load_config()
    assert cfg.managers.snooze_days == [7, 14, 30] and cfg.managers.groups == {}
    assert sorted(w for w, wf in cfg.workflows.items() if "assign_sa" in wf.actions) == ["wf-10", "wf-12", "wf-13"]


def test_an_override_is_read(tmp_path):
    cfg = load_config(write(tmp_path, "managers:\n  snooze_days: [3, 10]\n  groups:\n    emea-sa: [lead@gitlab.com]\n"))
    assert cfg.managers.snooze_days == [3, 10] and cfg.managers.groups == {"emea-sa": ["lead@gitlab.com"]}


@pytest.mark.parametrize(("text", "key", "words"), [
    ("managers:\n  groups:\n    mars-sa: [a@gitlab.com]\n", "managers.groups.mars-sa", "not a region"),
    ("managers:\n  groups:\n    east-sa: [somebody]\n", "managers.groups.east-sa.0", "not an e-mail address"),
    ("managers:\n  snooze_days: [7, 7]\n", "managers.snooze_days", "listed twice"),
    ("managers:\n  snooze_days: [0]\n", "managers.snooze_days.0", "greater than or equal to 1"),
    ("managers:\n  snooze_days: []\n", "managers.snooze_days", "at least 1 item"),
    ("workflows:\n  wf-11:\n    actions: [assign_sa]\n", "workflows.wf-11.actions", "opportunities only"),
    ("workflows:\n  wf-13:\n    actions: [fire_everyone]\n", "workflows.wf-13.actions.0", "assign_sa"),
])  # fmt: skip
def test_wrong_manager_settings_name_the_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path.resolve()}: {key}: " in str(err.value) and words in str(err.value)
