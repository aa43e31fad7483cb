"""Call order of installed plugins is sorted by name, whatever the install order.

Two real distributions implement the same pipeline; they are put on
``PYTHONPATH`` in both orders, and ``turnkit hooks`` (which shows the order
the dispatcher uses) and a real dispatch in a subprocess must agree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dists import FIXTURE_DISTS, install_distribution, subprocess_env, turnkit_json

DISPATCH = """
import asyncio
from turnkit import Dispatcher, PluginManager, load_config
from turnkit_hookspecs import Message

async def main():
    manager = PluginManager.load(load_config())
    hi = Message.of("user", "hi")
    message = await Dispatcher(manager).pipeline("turn_inbound", ctx=None, turn=None, message=hi)
    print(message.text)

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("order-dists")
    return {
        name: install_distribution(FIXTURE_DISTS / f"turnkit-fixture-{name}", root / name)
        for name in ("alpha", "zeta")
    }


def call_order(paths: list[Path], cwd: Path) -> list[str]:
    (point,) = turnkit_json("hooks", "turn_inbound", "--json", paths=paths, cwd=cwd)
    return [impl["plugin"] for impl in point["implementations"]]


def dispatched(paths: list[Path], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", DISPATCH],
        env=subprocess_env(paths),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("install_order", [("alpha", "zeta"), ("zeta", "alpha")])
def test_order_is_by_name_not_by_path(
    pair: dict[str, Path], tmp_path: Path, install_order: tuple[str, str]
) -> None:
    paths = [pair[name] for name in install_order]
    assert call_order(paths, tmp_path) == ["alpha", "zeta"]
    assert dispatched(paths, tmp_path) == "hi alpha zeta"


def test_config_override_changes_the_order(pair: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text('[plugins.order]\nturn_inbound = ["zeta"]\n')
    paths = [pair["alpha"], pair["zeta"]]
    assert call_order(paths, tmp_path) == ["zeta", "alpha"]
    assert dispatched(paths, tmp_path) == "hi zeta alpha"
