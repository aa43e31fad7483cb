"""The console's fixtures: the scene served once per module, and a real headless Chromium.

The browser is Debian's ``chromium`` driven by its ``chromium-driver``, both
named by path so that Selenium never looks for (or downloads) another. Without
them the browser tests are skipped, except in CI (``CI=true``), where that means
``.ci/run`` failed to install them, and they fail instead of passing unnoticed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.console.served import SceneServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Set to a folder (docs/console) to save screenshots of the main views while the tests run.
SCREENSHOTS = os.environ.get("TURNKIT_CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SceneServer]:
    """The scene's agent, serving without a token."""
    with SceneServer(tmp_path_factory.mktemp("scene")) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, no proxy, nothing fetched but loopback."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        reason = f"no {CHROMIUM} and {CHROMEDRIVER}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                f"{reason}; CI must have them (.ci/run installs Debian's chromium and chromium-driver)"
            )
        pytest.skip(
            f"{reason}; install them (Debian: apt-get install chromium chromium-driver) to run these tests"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="turnkit-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--window-size=1400,1000",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def screenshot(browser: WebDriver) -> Callable[[str], None]:
    """``screenshot("sessions")`` saves the page as ``<name>.png`` when screenshots are asked for."""

    def save(name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))

    return save
