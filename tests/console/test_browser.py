"""The console in a real browser (Debian's headless Chromium, driven by Selenium), over a
real agent that forked, merged, was denied, had an effect fail and ran a tool step.

Each test drives the page as a person would: searching, clicking through the
fork tree, opening a turn's waterfall, watching a turn arrive live, sending
from the message box, and giving the token when the agent has one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.console.read_only import read_only_console
from tests.console.served import SceneServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

#: How long the page may take to show what a test waits for.
WAIT = 15.0


def wait_for(
    browser: WebDriver,
    css: str,
    *,
    count: int | None = None,
    text: str | None = None,
    read: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """The elements matching ``css`` once there are any (``count`` of them; one holding ``text``),
    or what ``read`` reads of each.

    The page re-renders a view when a turn of it arrives live, so an element
    found may be replaced before it is read: then everything is looked up again.
    """
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(driver: WebDriver) -> list[Any] | bool:
        try:
            elements = driver.find_elements(By.CSS_SELECTOR, css)
            if count is not None and len(elements) != count:
                return False
            if text is not None and not any(text in e.text for e in elements):
                return False
            return ([read(e) for e in elements] if read else elements) or False
        except StaleElementReferenceException:
            return False

    result: list[Any] = WebDriverWait(browser, WAIT).until(found)
    return result


def act(browser: WebDriver, css: str, action: Callable[[Any], object]) -> None:
    """Do ``action`` to the first element matching ``css``, looked up again if the page replaced it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def done(driver: WebDriver) -> bool:
        try:
            action(wait_for(driver, css)[0])
            return True
        except StaleElementReferenceException:
            return False

    WebDriverWait(browser, WAIT).until(done)


def click(browser: WebDriver, css: str) -> None:
    act(browser, css, lambda element: element.click())


def type_into(browser: WebDriver, css: str, text: str) -> None:
    act(browser, css, lambda element: element.send_keys(text))


def session_of(element: Any) -> str | None:
    return element.get_attribute("data-session")


def point_of(element: Any) -> tuple[str | None, str, str | None]:
    return (
        element.get_attribute("data-point"),
        element.get_attribute("class") or "",
        element.get_attribute("title"),
    )


def open_page(browser: WebDriver, scene: SceneServer, hash_path: str = "#/sessions") -> None:
    browser.get(f"{scene.url}/console/{hash_path}")


def api(scene: SceneServer, path: str) -> Any:
    response = httpx.get(f"{scene.url}/console/api/{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def test_the_sessions_are_listed_newest_first_and_found_by_search(
    browser: WebDriver, scene: SceneServer, screenshot: Callable[[str], None]
) -> None:
    open_page(browser, scene)
    listed = wait_for(browser, "tr.session-row", count=2, read=session_of)
    assert set(listed) == {scene.ids["main"], scene.ids["child"]}
    screenshot("sessions")

    box = browser.find_element("id", "search-text")
    box.clear()
    box.send_keys("forbidden\n")  # a word of one of the main session's messages
    assert wait_for(browser, "tr.session-row", count=1, read=session_of) == [scene.ids["main"]]

    open_page(browser, scene, f"#/sessions?q={scene.ids['child'][:6]}")  # the start of an id
    assert wait_for(browser, "tr.session-row", count=1, read=session_of) == [scene.ids["child"]]


def test_the_fork_tree_leads_to_the_child(
    browser: WebDriver, scene: SceneServer, screenshot: Callable[[str], None]
) -> None:
    open_page(browser, scene, f"#/session/{scene.ids['main']}")
    assert wait_for(browser, "#fork-tree a.session-link", count=1, read=session_of) == [scene.ids["child"]]
    assert wait_for(browser, "#fork-tree li", text="merged")
    # compressed messages, the summary and the merge's result are marked
    for css in (".msg-compressed", ".msg-summary", ".msg-merge-result"):
        assert wait_for(browser, css)
    screenshot("session")

    click(browser, "#fork-tree a.session-link")
    wait_for(browser, "#session-id", text=scene.ids["child"])
    assert wait_for(browser, "#fork-tree a.session-link", count=1, read=session_of) == [scene.ids["main"]]
    assert wait_for(browser, ".msg", text="what if?")


def test_a_turn_shows_one_bar_per_hook_call_in_order(
    browser: WebDriver, scene: SceneServer, screenshot: Callable[[str], None]
) -> None:
    turns = {t["number"]: t for t in api(scene, f"sessions/{scene.ids['main']}")["turns"]}
    first = api(scene, f"turns/{turns[1]['turn_id']}")
    open_page(browser, scene, f"#/session/{scene.ids['main']}")
    click(browser, "a.turn-link")

    expected = [row["point"] for row in first["waterfall"]["rows"] if "point" in row]
    bars = wait_for(browser, "#waterfall .wf-row[data-point]", count=len(first["trace"]), read=point_of)
    assert [point for point, _, _ in bars] == expected
    assert sorted(expected) == sorted(call["point"] for call in first["trace"])
    assert "turn_reply" in expected and "tool_authorize" in expected
    # the tool step is a heading with its calls nested under it
    assert wait_for(browser, "#waterfall .wf-heading", text="tool step 1")
    assert [point for point, classes, _ in bars if "wf-depth-1" in classes] == [
        "tool_authorize",
        "turn_reply",
    ]
    assert wait_for(browser, ".msg-tool")
    screenshot("turn")

    open_page(browser, scene, f"#/turn/{turns[3]['turn_id']}")  # the denied one
    [(point, _, _)] = wait_for(browser, "#waterfall .wf-refused", count=1, read=point_of)
    assert point == "turn_authorize"

    open_page(browser, scene, f"#/turn/{turns[4]['turn_id']}")  # the failing effect
    [(point, _, title)] = wait_for(browser, "#waterfall .wf-failed", count=1, read=point_of)
    assert point == "turn_completed"
    assert "the notifier is down" in (title or "")


def test_a_new_turn_appears_live(browser: WebDriver, scene: SceneServer) -> None:
    session = scene.ids["main"]
    open_page(browser, scene, f"#/session/{session}")
    before = len(wait_for(browser, "tr.turn-row"))
    wait_for(browser, "#live[data-state='live']")
    browser.execute_script("window.notReloaded = true")

    # another client talks to the session through the HTTP API
    reply = httpx.post(
        f"{scene.url}/api/sessions/{session}/messages", json={"text": "seen live?"}, timeout=30
    )
    assert reply.status_code == 200

    wait_for(browser, "tr.turn-row", count=before + 1)
    assert wait_for(browser, ".msg", text="seen live?")
    assert browser.execute_script("return window.notReloaded") is True

    # a new conversation shows up in the list the same way
    open_page(browser, scene)
    listed = len(wait_for(browser, "tr.session-row"))
    wait_for(browser, "#live[data-state='live']")
    assert httpx.post(f"{scene.url}/api/chats/bob/messages", json={"text": "hello"}, timeout=30).is_success
    wait_for(browser, "tr.session-row", count=listed + 1)


def test_the_message_box_sends_a_turn(browser: WebDriver, scene: SceneServer) -> None:
    session = scene.ids["main"]
    open_page(browser, scene, f"#/session/{session}")
    before = len(wait_for(browser, "tr.turn-row"))
    type_into(browser, "#message-text", "sent from the box")
    click(browser, "#send")

    wait_for(browser, "#send-status", text="completed")
    wait_for(browser, "tr.turn-row", count=before + 1)
    assert wait_for(browser, ".msg-assistant", text="sent from the box")
    [turn] = [t for t in api(scene, f"sessions/{session}")["turns"] if t["number"] == before + 1]
    assert (turn["initiator"], turn["initiator_id"], turn["status"]) == ("user", "console", "completed")


def test_audit_and_plugins(browser: WebDriver, scene: SceneServer, screenshot: Callable[[str], None]) -> None:
    open_page(browser, scene, "#/audit")
    cells = wait_for(
        browser, "tr.audit-row", read=lambda row: [td.text for td in row.find_elements("css selector", "td")]
    )
    assert {"fork", "merge", "compress"} <= {row[2] for row in cells}
    assert {row[1] for row in cells} == {"scenario"}
    screenshot("audit")

    open_page(browser, scene, "#/plugins")
    assert wait_for(browser, "section.point[data-point='turn_authorize'] ol li", text="scenario")
    screenshot("plugins")


def test_a_token_is_asked_once_and_the_api_refuses_without_it(browser: WebDriver, tmp_path: Path) -> None:
    with SceneServer(tmp_path, token="s3cret-token") as scene:
        refused = httpx.get(f"{scene.url}/console/api/sessions", timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["message"].startswith("missing bearer token")
        assert httpx.get(f"{scene.url}/console/", timeout=10).status_code == 200  # the page itself is open

        browser.get(f"{scene.url}/console/")
        browser.execute_script("sessionStorage.clear()")
        browser.refresh()
        wait_for(browser, "#token-dialog[open]")
        browser.find_element("id", "token-input").send_keys("wrong")
        browser.find_element("id", "token-submit").click()
        wait_for(browser, "#token-error", text="invalid bearer token")

        field = browser.find_element("id", "token-input")
        field.clear()
        field.send_keys("s3cret-token")
        browser.find_element("id", "token-submit").click()
        wait_for(browser, "tr.session-row", count=2)

        browser.refresh()  # kept for the tab's session: not asked again
        wait_for(browser, "tr.session-row", count=2)
        assert not browser.find_elements("css selector", "#token-dialog[open]")
        browser.execute_script("sessionStorage.clear()")


def test_the_read_only_console_hides_the_message_box(browser: WebDriver, scene: SceneServer) -> None:
    with read_only_console(scene.directory / "t.db") as url:
        browser.get(f"{url}/#/session/{scene.ids['main']}")
        wait_for(browser, "#mode", text="read-only")
        wait_for(browser, "#session-id", text=scene.ids["main"])
        assert not browser.find_elements("id", "message-box")
        assert wait_for(browser, "tr.turn-row")
