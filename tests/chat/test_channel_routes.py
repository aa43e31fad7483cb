"""The channel kit end to end: routes of an installed channel on ``turnkit serve``'s server, and its inbox.

The channel under test is a real distribution (``turnkit-fixture-webhook``,
installed into a private folder on the served agent's ``PYTHONPATH``) whose
"platform" is this module: it posts events to the channel's route, and a
loopback :class:`~turnkit.testing_endpoint.RecordingEndpoint` (the
``turnkit_endpoint`` fixture) plays the platform's send endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from turnkit.testing_endpoint import RecordingEndpoint
from turnkit.testing_served import ServedAgent

from tests.support.dists import FIXTURE_DISTS, install_distribution

EVENTS = "/channels/hook/events"
TOKEN = "api-token-for-the-test"


@pytest.fixture(scope="module")
def webhook_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("channel-dists")
    return {
        name: install_distribution(FIXTURE_DISTS / f"turnkit-fixture-{name}", base / name)
        for name in ("webhook", "webhook-twin")
    }


@pytest.fixture
def platform(turnkit_endpoint: RecordingEndpoint) -> RecordingEndpoint:
    """The platform's send endpoint, where the hook channel posts replies."""
    return turnkit_endpoint


@pytest.fixture
def served(
    turnkit_served: ServedAgent, webhook_dists: dict[str, Path], platform: RecordingEndpoint
) -> ServedAgent:
    """An agent serving ``http`` (with a token) and the ``hook`` channel, replies going to ``platform``."""
    turnkit_served.env["PYTHONPATH"] = str(webhook_dists["webhook"])
    turnkit_served.configure(
        service={
            "chat": {
                "channels": ["http", "hook"],
                "http": {"token": TOKEN, "max_body": 4096},
                "channel": {"hook": {"reply_url": f"{platform.url}/replies"}},
            }
        }
    )
    return turnkit_served


def texts(platform: RecordingEndpoint, chat: str) -> list[str]:
    return [body["text"] for body in platform.bodies() if body["chat"] == chat]


def event(event_id: str, chat: str, text: str) -> bytes:
    return json.dumps({"id": event_id, "chat": chat, "text": text}).encode()


def test_a_channel_route_is_served_outside_the_api_token_and_its_reply_split(
    served: ServedAgent, platform: RecordingEndpoint
) -> None:
    served.start()
    assert served.post("/api/chats/alice/messages", b'{"text": "hi"}').status == 401

    answer = served.post(EVENTS, event("e1", "alice", "hello there, platform"))

    assert (answer.status, answer.json()) == (200, {"accepted": True})
    served.wait_for(lambda: len(texts(platform, "alice")) == 3)
    assert texts(platform, "alice") == ["hello", "there,", "platform"]  # the echo model, split to 10
    assert [(t["channel"], t["chat_id"], t["inbound"]) for t in served.turns()] == [
        ("hook", "alice", "hello there, platform")
    ]


def test_a_channel_whose_routes_need_the_token_gets_them_behind_it(
    served: ServedAgent, platform: RecordingEndpoint
) -> None:
    served.configure(
        service={
            "chat": {
                "channels": ["http", "hook"],
                "http": {"token": TOKEN},
                "channel": {"hook": {"reply_url": f"{platform.url}/replies", "behind_token": True}},
            }
        }
    )
    served.start()

    refused = served.post(EVENTS, event("e1", "alice", "hello"))
    accepted = served.post(EVENTS, event("e2", "alice", "hello"), {"Authorization": f"Bearer {TOKEN}"})

    assert refused.status == 401
    assert (accepted.status, accepted.json()) == (200, {"accepted": True})
    served.wait_for(lambda: texts(platform, "alice") == ["hello"])
    assert [t["inbound"] for t in served.turns()] == ["hello"], "the refused event started no turn"


def test_channel_routes_get_the_servers_size_limit_and_json_errors(served: ServedAgent) -> None:
    served.start()

    too_big = served.post(EVENTS, event("big", "alice", "x" * 5000))
    not_an_event = served.post(EVENTS, b'{"id": "e2"}')

    assert too_big.status == 413
    assert too_big.json()["error"]["type"] == "request_too_large"
    assert not_an_event.status == 400
    assert "not a hook event" in not_an_event.json()["error"]["message"]
    assert served.turns() == []


def test_an_event_sent_again_is_acknowledged_and_dropped(
    served: ServedAgent, platform: RecordingEndpoint
) -> None:
    served.start()

    first = served.post(EVENTS, event("e1", "alice", "once"))
    served.wait_for(lambda: texts(platform, "alice") == ["once"])
    again = served.post(EVENTS, event("e1", "alice", "once"))

    assert (first.json(), again.json()) == ({"accepted": True}, {"accepted": False})
    assert len(served.turns()) == 1
    assert texts(platform, "alice") == ["once"]


def test_a_chats_events_are_answered_in_the_order_accepted(
    served: ServedAgent, platform: RecordingEndpoint
) -> None:
    served.start()

    for index in range(6):
        served.post(EVENTS, event(f"a{index}", "alice", f"a{index}"))
        served.post(EVENTS, event(f"b{index}", "bob", f"b{index}"))

    served.wait_for(lambda: len(texts(platform, "alice")) == 6 and len(texts(platform, "bob")) == 6)
    assert texts(platform, "alice") == [f"a{i}" for i in range(6)]
    assert texts(platform, "bob") == [f"b{i}" for i in range(6)]
    assert len({t["session_id"] for t in served.turns()}) == 2


def test_a_failed_delivery_is_retried_with_the_same_turns_reply(
    served: ServedAgent, platform: RecordingEndpoint
) -> None:
    platform.fail(2)
    served.start()

    served.post(EVENTS, event("e1", "alice", "retry me"))

    served.wait_for(lambda: texts(platform, "alice") == ["retry me"], timeout=20)
    assert platform.refused == 2
    assert [t["status"] for t in served.turns()] == ["completed"]


def test_an_event_accepted_before_a_crash_gets_one_turn_and_its_reply_after_the_restart(
    served: ServedAgent, platform: RecordingEndpoint
) -> None:
    platform.fail(None)  # the platform's send endpoint is down: the reply cannot go out
    served.start()
    assert served.post(EVENTS, event("e1", "alice", "survive")).json() == {"accepted": True}
    served.wait_for(lambda: platform.refused >= 1)

    served.kill()  # accepted, turn run, reply not delivered
    platform.fail(0)
    served.start()

    served.wait_for(lambda: texts(platform, "alice") == ["survive"], timeout=30)
    assert served.post(EVENTS, event("e1", "alice", "survive")).json() == {"accepted": False}
    turns = served.turns()
    assert [(t["inbound"], t["status"]) for t in turns] == [("survive", "completed")]


def test_an_event_sent_again_after_a_restart_is_still_dropped(
    served: ServedAgent, platform: RecordingEndpoint
) -> None:
    served.start()
    served.post(EVENTS, event("e1", "alice", "before"))
    served.wait_for(lambda: texts(platform, "alice") == ["before"])
    assert served.stop() == 0

    served.start()
    assert served.post(EVENTS, event("e1", "alice", "before")).json() == {"accepted": False}
    assert len(served.turns()) == 1


def test_two_channels_claiming_one_path_stop_the_start_naming_both_distributions(
    turnkit_served: ServedAgent, webhook_dists: dict[str, Path]
) -> None:
    turnkit_served.env["PYTHONPATH"] = f"{webhook_dists['webhook']}:{webhook_dists['webhook-twin']}"
    turnkit_served.configure(
        service={
            "chat": {
                "channels": ["http", "hook", "twin"],
                "channel": {"hook": {"reply_url": "http://127.0.0.1:9/"}},
            }
        }
    )

    with pytest.raises(RuntimeError) as failed:
        turnkit_served.start()

    message = str(failed.value)
    assert "hook (turnkit-fixture-webhook) and twin (turnkit-fixture-webhook-twin)" in message
    assert "/channels/hook/events" in message
    assert "Traceback" not in message


def test_a_channel_with_routes_needs_the_http_channel(
    turnkit_served: ServedAgent, webhook_dists: dict[str, Path]
) -> None:
    turnkit_served.env["PYTHONPATH"] = str(webhook_dists["webhook"])
    turnkit_served.configure(
        service={"chat": {"channels": ["hook"], "channel": {"hook": {"reply_url": "http://127.0.0.1:9/"}}}}
    )

    with pytest.raises(RuntimeError) as failed:
        turnkit_served.start()

    assert "'hook' receives over HTTP" in str(failed.value)
    assert "add 'http' to channels" in str(failed.value)


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/api/chats/x/messages", "claims the path /api/chats/x/messages"),
        ("/console/events", "claims the path /console/events, under /console"),
    ],
    ids=["the API", "the console"],
)
def test_a_channel_may_not_claim_the_runtimes_paths(
    turnkit_served: ServedAgent, webhook_dists: dict[str, Path], path: str, said: str
) -> None:
    turnkit_served.env["PYTHONPATH"] = str(webhook_dists["webhook"])
    turnkit_served.configure(
        service={
            "chat": {
                "channels": ["http", "hook"],
                "channel": {"hook": {"reply_url": "http://127.0.0.1:9/", "path": path}},
            }
        }
    )

    with pytest.raises(RuntimeError) as failed:
        turnkit_served.start()

    assert f"hook (turnkit-fixture-webhook) {said}" in str(failed.value)
