"""Configuration files: defaults, and errors that name the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest
from turnkit import ConfigError, PluginsConfig, load_config


def test_absent_default_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).plugins == PluginsConfig()


def test_file_named_by_env_is_read(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[plugins]\nrequired = ["auth"]\n[plugins.order]\nturn_inbound = ["redact", "auth"]\n')
    config = load_config(env={"TURNKIT_CONFIG": str(path)})
    assert config.plugins.required == ["auth"]
    assert config.plugins.order == {"turn_inbound": ["redact", "auth"]}


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.toml: no such configuration file"):
        load_config(tmp_path / "missing.toml", env={})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[plugins]\nrequired = "auth"\n', "expected a list, got str 'auth' @ $.plugins.required"),
        ("[plugins]\nrequired = [1]\n", "expected str, got int 1 @ $.plugins.required[0]"),
        ('[plugins]\neffect_timeout = "soon"\n', "expected float, got str 'soon' @ $.plugins.effect_timeout"),
        ("[plugins]\nrequird = []\n", "extra fields found (requird) @ $.plugins"),
        ("[plugins\n", "Expected ']'"),
    ],
)
def test_errors_name_the_file_and_key_path(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "turnkit.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value).startswith(str(path))
    assert problem in str(caught.value)
