"""Plugin discovery as a user meets it: real distributions, entry points, the ``turnkit`` CLI.

Each fixture distribution under ``tests/fixtures/dists/`` is built and
installed once per session into its own directory; every test runs
``turnkit`` in a subprocess with ``PYTHONPATH`` naming the directories it
wants visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.dists import (
    FIXTURE_DISTS,
    PLUGINS_GROUP,
    install_distribution,
    plugins_by_name,
    run_turnkit,
    turnkit_json,
)

FIXTURES = ("good", "broken", "typo")


@pytest.fixture(scope="session")
def fixture_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Install each fixture distribution once, each into its own target directory."""
    root = tmp_path_factory.mktemp("fixture-dists")
    return {
        name: install_distribution(FIXTURE_DISTS / f"turnkit-fixture-{name}", root / name)
        for name in FIXTURES
    }


@pytest.fixture
def all_paths(fixture_dists: dict[str, Path]) -> list[Path]:
    return [fixture_dists[name] for name in FIXTURES]


def plugins(paths: list[Path], env: dict[str, str] | None = None) -> dict[str, Any]:
    return plugins_by_name(turnkit_json("plugins", "--json", paths=paths, env=env))


def test_fixture_install_has_entry_point_metadata(fixture_dists: dict[str, Path]) -> None:
    [dist_info] = fixture_dists["good"].glob("turnkit_fixture_good-*.dist-info")
    assert "[turnkit.plugins]\ngood = turnkit_fixture_good" in (dist_info / "entry_points.txt").read_text()


def test_good_plugin_is_loaded_with_its_distribution(fixture_dists: dict[str, Path]) -> None:
    good = plugins([fixture_dists["good"]])["good"]
    assert good == {
        "name": "good",
        "group": PLUGINS_GROUP,
        "distribution": "turnkit-fixture-good",
        "version": "1.0.0",
        "module": "turnkit_fixture_good",
        "hooks": ["turn_authorize"],
        "status": "loaded",
        "error": None,
    }


def test_good_plugin_appears_in_its_point(fixture_dists: dict[str, Path]) -> None:
    result = run_turnkit("hooks", "turn_authorize", paths=[fixture_dists["good"]])
    assert result.returncode == 0, result
    assert "good" in result.stdout
    assert "turnkit-fixture-good" in result.stdout


def test_plugin_failing_at_import_is_reported_and_the_others_still_load(all_paths: list[Path]) -> None:
    found = plugins(all_paths)

    broken = found["broken"]
    assert broken["status"] == "failed"
    assert broken["distribution"] == "turnkit-fixture-broken"
    assert broken["version"] == "0.3.1"
    assert "boom at import" in broken["error"]
    assert broken["hooks"] == []

    assert found["good"]["status"] == "loaded"


def test_broken_plugin_is_named_in_the_human_listing(all_paths: list[Path]) -> None:
    result = run_turnkit("plugins", paths=all_paths)
    assert result.returncode == 0, result
    output = result.stdout + result.stderr
    assert "broken" in output
    assert "turnkit-fixture-broken" in output
    assert "boom at import" in output


def test_unknown_hook_name_fails_the_plugin_with_a_suggestion(all_paths: list[Path]) -> None:
    result = run_turnkit("plugins", "--json", paths=all_paths)
    assert result.returncode == 0, result

    typo = plugins_by_name(result.json())["typo"]
    assert typo["status"] == "failed"
    assert typo["distribution"] == "turnkit-fixture-typo"
    assert typo["hooks"] == []
    assert "turn_inbund" in typo["error"]
    assert "turn_inbound" in typo["error"]  # the suggestion

    # the warning a user sees names the plugin, the wrong name and the right one
    warnings = [line for line in result.stderr.splitlines() if "turn_inbund" in line]
    assert warnings, result
    assert all("typo" in line and "turn_inbound" in line for line in warnings), result


def test_import_failure_warning_names_the_distribution(all_paths: list[Path]) -> None:
    result = run_turnkit("plugins", "--json", paths=all_paths)
    warnings = [line for line in result.stderr.splitlines() if "boom at import" in line]
    assert warnings, result
    assert all("broken" in line and "turnkit-fixture-broken" in line for line in warnings), result


def test_typo_plugin_registers_nothing(all_paths: list[Path]) -> None:
    result = run_turnkit("hooks", "turn_inbound", "--json", paths=all_paths)
    assert result.returncode == 0, result
    assert "typo" not in result.stdout


@pytest.mark.parametrize("allow", ["good", "turnkit-fixture-good", " good , ", "TurnKit_Fixture_Good"])
def test_load_plugins_allow_list_loads_only_those(all_paths: list[Path], allow: str) -> None:
    found = plugins(all_paths, env={"TURNKIT_LOAD_PLUGINS": allow})
    assert found["good"]["status"] == "loaded"
    for name in ("broken", "typo"):
        assert found[name]["status"] == "skipped", found[name]
        assert found[name]["hooks"] == []
    # a skipped plugin is never imported, so it cannot fail
    assert "boom" not in (found["broken"]["error"] or "")


def test_load_plugins_set_but_empty_loads_no_plugin(all_paths: list[Path]) -> None:
    found = plugins(all_paths, env={"TURNKIT_LOAD_PLUGINS": ""})
    assert set(found) >= set(FIXTURES)
    assert {name: record["status"] for name, record in found.items()} == dict.fromkeys(found, "skipped")


def test_load_plugins_does_not_switch_off_services(all_paths: list[Path]) -> None:
    records = turnkit_json("plugins", "--json", paths=all_paths, env={"TURNKIT_LOAD_PLUGINS": ""})
    services = plugins_by_name(records, group="turnkit.services")
    assert services, "the built-in services should be installed in the test environment"
    assert {record["status"] for record in services.values()} == {"loaded"}


def test_disable_plugins_skips_only_those(fixture_dists: dict[str, Path]) -> None:
    paths = [fixture_dists["good"], fixture_dists["typo"]]
    found = plugins(paths, env={"TURNKIT_DISABLE_PLUGINS": "good"})
    assert found["good"]["status"] == "skipped"
    assert found["typo"]["status"] == "failed"


def test_disable_wins_over_allow(fixture_dists: dict[str, Path]) -> None:
    env = {"TURNKIT_LOAD_PLUGINS": "good", "TURNKIT_DISABLE_PLUGINS": "turnkit-fixture-good"}
    assert plugins([fixture_dists["good"]], env=env)["good"]["status"] == "skipped"


def test_required_plugin_that_failed_refuses(all_paths: list[Path], tmp_path: Path) -> None:
    config = tmp_path / "turnkit.toml"
    config.write_text('[plugins]\nrequired = ["broken"]\n')

    result = run_turnkit("--config", str(config), "plugins", "--json", paths=all_paths)

    assert result.returncode == 1, result
    assert "broken" in result.stderr
    assert "boom at import" in result.stderr


def test_required_plugin_config_from_environment(all_paths: list[Path], tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[plugins]\nrequired = ["broken"]\n')
    result = run_turnkit("plugins", paths=all_paths, env={"TURNKIT_CONFIG": str(config)})
    assert result.returncode == 1, result
    assert "broken" in result.stderr


def test_required_plugin_that_loaded_is_fine(all_paths: list[Path], tmp_path: Path) -> None:
    config = tmp_path / "turnkit.toml"
    config.write_text('[plugins]\nrequired = ["good"]\n')
    result = run_turnkit("--config", str(config), "plugins", "--json", paths=all_paths)
    assert result.returncode == 0, result


def test_required_plugin_that_was_skipped_refuses(fixture_dists: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "turnkit.toml"
    config.write_text('[plugins]\nrequired = ["good"]\n')
    result = run_turnkit(
        "--config",
        str(config),
        "plugins",
        paths=[fixture_dists["good"]],
        env={"TURNKIT_DISABLE_PLUGINS": "good"},
    )
    assert result.returncode == 1, result
    assert "good" in result.stderr
    assert "TURNKIT_DISABLE_PLUGINS" in result.stderr
