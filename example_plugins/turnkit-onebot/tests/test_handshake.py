"""Who may connect: the access token, the bot's account, the client's role, the address; and the settings."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest
from conftest import TOKEN, socket_url
from onebot_emulator import SELF_ID, OneBotEmulator, handshake, private, text
from turnkit.testing_served import ServedAgent

Bots = Callable[..., OneBotEmulator]
ROLE = {"X-Self-ID": str(SELF_ID), "X-Client-Role": "Universal"}


def error(body: str) -> str:
    return str(json.loads(body)["error"]["message"])


def test_a_wrong_or_missing_access_token_is_refused_before_the_socket_opens(served: ServedAgent) -> None:
    served.start()
    url = socket_url(served)
    status, body = handshake(url, {**ROLE, "Authorization": "Bearer not-the-token"})
    assert (status, error(body)) == (401, "wrong access token")
    status, body = handshake(url, ROLE)
    assert (status, error(body)) == (401, "missing access token: send 'Authorization: Bearer <token>'")
    status, _ = handshake(url, {**ROLE, "Authorization": f"Basic {TOKEN}"})
    assert status == 401
    status, _ = handshake(f"{url}?access_token=not-the-token", ROLE)
    assert status == 401
    assert served.output.count("onebot channel: refused a connection from 127.0.0.1") == 4
    assert TOKEN not in served.output
    assert served.turns() == []


def test_the_token_may_come_in_the_header_with_either_scheme_or_in_the_query(served: ServedAgent) -> None:
    served.start()
    url = socket_url(served)
    assert handshake(url, {**ROLE, "Authorization": f"Bearer {TOKEN}"})[0] == 101
    assert handshake(url, {**ROLE, "Authorization": f"Token {TOKEN}"})[0] == 101
    assert handshake(f"{url}?access_token={TOKEN}", ROLE)[0] == 101


def test_a_handshake_without_the_bots_account_or_from_a_split_client_is_refused(served: ServedAgent) -> None:
    served.start()
    url, auth = socket_url(served), {"Authorization": f"Bearer {TOKEN}"}
    status, body = handshake(url, {**auth, "X-Client-Role": "Universal"})
    assert (status, "X-Self-ID" in error(body)) == (400, True)
    status, body = handshake(url, {**auth, "X-Self-ID": str(SELF_ID), "X-Client-Role": "Event"})
    assert (status, "one universal client" in error(body)) == (400, True)


def test_the_socket_is_served_on_the_configured_path(served: ServedAgent) -> None:
    served.configure(service={"chat": {"channel": {"onebot": {"path": "/qq/bot"}}}})
    served.start()
    auth = {**ROLE, "Authorization": f"Bearer {TOKEN}"}
    assert handshake(socket_url(served, path="/qq/bot"), auth)[0] == 101
    assert handshake(socket_url(served), auth)[0] == 403  # no route there


def local_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # a documentation address: nothing is sent
        except OSError:
            return None
        host = str(probe.getsockname()[0])
    return None if host.startswith("127.") else host


def test_without_an_access_token_only_this_machine_may_connect(served: ServedAgent, bots: Bots) -> None:
    del served.env["ONEBOT_ACCESS_TOKEN"]
    served.configure(service={"chat": {"http": {"host": "0.0.0.0"}}})
    served.start()
    served.wait_for(lambda: "no access token" in served.output)
    bot = bots(token=None)
    bot.push(private(1, 20002, [text("from next door")]))
    served.wait_for(lambda: bot.texts() == ["from next door"])
    address = local_address()
    if address is None:
        pytest.skip("this machine has no address but loopback to connect from")
    status, body = handshake(socket_url(served, host=address), ROLE)
    assert status == 403
    assert "only connections from this machine are accepted" in error(body)


def test_an_empty_access_token_stops_the_start(served: ServedAgent) -> None:
    served.configure(service={"chat": {"channel": {"onebot": {"access_token": " "}}}})
    with pytest.raises(RuntimeError, match="access_token must not be empty"):
        served.start()


def test_an_unknown_setting_stops_the_start(served: ServedAgent) -> None:
    served.configure(service={"chat": {"channel": {"onebot": {"acess_token": TOKEN}}}})
    with pytest.raises(RuntimeError, match=r"\[service.chat.channel.onebot\].*acess_token"):
        served.start()
