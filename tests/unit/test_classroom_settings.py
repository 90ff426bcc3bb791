"""The classroom's settings live in one place: the Zero to JupyterHub values file carries the
same sign-in, course, exchange, environment and culling as the local hub (llm_kit/classroom)."""

from __future__ import annotations

from pathlib import Path

import yaml

from llm_kit.classroom import settings

VALUES = Path(settings.__file__).with_name("z2jh-values.yaml")


def contains(actual, expected, path="") -> list[str]:
    """Where `actual` lacks or differs from what `expected` holds (nested dicts)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or '/'}: not a mapping"]
        return [problem for key, value in expected.items()
                for problem in contains(actual.get(key), value, f"{path}.{key}")]
    return [] if actual == expected else [f"{path}: {actual!r}, the settings say {expected!r}"]


def test_the_values_file_carries_the_same_settings_as_the_local_hub():
    values = yaml.safe_load(VALUES.read_text())
    assert contains(values, settings.z2jh_values()) == []


def test_the_exchange_volume_is_mounted_where_the_learners_are_told_it_is():
    user = yaml.safe_load(VALUES.read_text())["singleuser"]
    mounts = {m["mountPath"] for m in user["storage"]["extraVolumeMounts"]}
    assert user["extraEnv"]["KIT_EXCHANGE_ROOT"] in mounts == {settings.EXCHANGE_MOUNT}


def test_no_secret_is_in_the_values_file():
    config = yaml.safe_load(VALUES.read_text())["hub"]["config"]
    assert "SharedPasswordAuthenticator" not in config  # passed with --set at install time


def test_usernames_that_could_reach_other_accounts_are_refused():
    assert settings.valid_username("ada") and settings.valid_username("ada-2")
    for name in ("root", "Root", "../x", "a", "x" * 21, "a.b", ""):
        assert name == "root" or not settings.valid_username(name), name
    assert settings.account("root") == "kit-root"  # a learner called root is never the root account


def test_generated_secrets_meet_the_authenticators_minimum_lengths():
    made = settings.secrets_from_env({})
    assert len(made.workshop_code) >= settings.MIN_CODE_LENGTH
    assert len(made.instructor_password) >= settings.MIN_ADMIN_PASSWORD_LENGTH
    assert made.generated == ("KIT_WORKSHOP_CODE", "KIT_INSTRUCTOR_PASSWORD")
    kept = settings.secrets_from_env({"KIT_WORKSHOP_CODE": "c" * 8, "KIT_INSTRUCTOR_PASSWORD": "p" * 32})
    assert kept.generated == () and kept.workshop_code == "c" * 8
