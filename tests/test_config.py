"""Settings come from the environment; bad values are named errors."""

from __future__ import annotations

import pytest

from chalicelib.config import AppSettings, Settings
from chalicelib.domain.errors import ConfigurationError
from sandbox.stage import stage_environment


@pytest.mark.parametrize("stage", ["dev", "prod", "local"])
def test_every_stage_configures_every_setting(stage):
    env = stage_environment(stage)
    settings = Settings.from_env(env)
    assert settings.table_name == f"snaprace-{stage}"
    assert AppSettings.from_env(env).queue_name == f"snaprace-{stage}-ingest"
    assert settings.bib_rules.min_confidence == 90
    assert settings.bib_rules.excluded == ("0000", "00000", "000000")


def test_stage_values_override_defaults():
    env = {**stage_environment("dev"), "PROCESSED_MAX_WIDTH": "1024", "BIB_TEXT_TYPES": "word, line"}
    settings = Settings.from_env(env)
    assert settings.max_width == 1024
    assert settings.bib_rules.text_types == ("WORD", "LINE")


def test_missing_table_name_is_named():
    with pytest.raises(ConfigurationError, match="TABLE_NAME"):
        Settings.from_env({"STATE_MACHINE_NAME": "x"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("PROCESSED_MAX_WIDTH", "wide"), ("BIB_MIN_CONFIDENCE", "high"), ("BIB_STRIP_PREFIX", "maybe")],
)
def test_malformed_values_are_named(name, value):
    env = {**stage_environment("dev"), name: value}
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env(env)
