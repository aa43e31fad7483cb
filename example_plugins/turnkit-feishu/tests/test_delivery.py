"""Replies that fail, and agents that die: what the chat sees, and how many turns there are.

The emulator's reply endpoint is told to fail in the ways Feishu does (rate
limited, a server error, an invalid token, a refusal); ``turnkit serve`` is
SIGKILLed between accepting an event and delivering its reply, and started
again on the same store.
"""

from __future__ import annotations

import time

from conftest import Serve, logged
from feishu_emulator import FeishuEmulator
from turnkit.testing_served import ServedAgent


def test_an_event_accepted_before_a_crash_gets_one_turn_and_its_reply_after_the_restart(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    emulator.fail(503, 1, "service unavailable", times=None)  # the reply endpoint is down
    pusher = serve()
    event = pusher.message_event("oc_1", "survive the crash")
    assert pusher.push(event) == (200, {})
    turnkit_served.wait_for(lambda: len(emulator.all_attempts()) >= 1)

    turnkit_served.kill()  # accepted and answered by the model, the reply not delivered
    emulator.recover()
    turnkit_served.start()

    turnkit_served.wait_for(lambda: emulator.texts() == ["survive the crash"], timeout=30)
    assert pusher.push(event, resends=0) == (200, {})  # Feishu sending it again after the restart: dropped
    time.sleep(0.5)
    assert emulator.texts() == ["survive the crash"]
    assert [(t["inbound"], t["status"]) for t in turnkit_served.turns()] == [
        ("survive the crash", "completed")
    ]


def test_a_reply_sent_again_after_a_crash_is_shown_once_thanks_to_its_uuid(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    emulator.fail(500, 1, "internal error", times=None, land=True)  # the reply lands; its answer is lost
    pusher = serve(max_length=4)
    pusher.push(pusher.message_event("oc_1", "ab cd"), resends=0)
    turnkit_served.wait_for(lambda: emulator.texts() == ["ab"])

    turnkit_served.kill()  # Feishu shows part 0; the agent never learnt it was sent
    emulator.recover()
    turnkit_served.start()

    turnkit_served.wait_for(lambda: emulator.texts() == ["ab", "cd"], timeout=30)
    attempts = emulator.all_attempts()
    first_part = [a for a in attempts if a.text == "ab"]
    assert len(first_part) >= 2  # delivered again after the restart …
    assert len({a.uuid for a in first_part}) == 1  # … with the same uuid, so shown once
    assert first_part[-1].status == 200
    assert len(turnkit_served.turns()) == 1


def test_a_rate_limited_reply_waits_as_asked_and_is_then_sent(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    emulator.fail(
        429, 99991400, "request trigger frequency limit", times=2, headers={"x-ogw-ratelimit-reset": "1"}
    )
    emulator.fail(400, 99991400, "request trigger frequency limit", times=1)  # an older gateway's answer
    pusher = serve()

    pusher.push(pusher.message_event("oc_1", "patience"), resends=0)

    turnkit_served.wait_for(lambda: emulator.texts() == ["patience"], timeout=20)
    attempts = emulator.all_attempts()
    assert [a.status for a in attempts] == [429, 429, 400, 200]
    assert attempts[1].at - attempts[0].at >= 0.9  # x-ogw-ratelimit-reset: 1
    assert len({a.uuid for a in attempts}) == 1
    assert len(turnkit_served.turns()) == 1


def test_a_server_error_is_retried_with_backoff(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    emulator.fail(502, 1, "bad gateway", times=2)
    pusher = serve()

    pusher.push(pusher.message_event("oc_1", "again"), resends=0)

    turnkit_served.wait_for(lambda: emulator.texts() == ["again"], timeout=20)
    assert [a.status for a in emulator.all_attempts()] == [502, 502, 200]
    logged(turnkit_served, "feishu channel: reply to om_")


def test_a_refusal_fails_the_delivery_with_the_code_and_the_inbox_tries_again(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    emulator.fail(400, 230002, "Bot is not in the chat", times=1)
    pusher = serve()

    pusher.push(pusher.message_event("oc_1", "let me in"), resends=0)

    turnkit_served.wait_for(lambda: emulator.texts() == ["let me in"], timeout=20)
    assert [a.status for a in emulator.all_attempts()] == [400, 200]  # not retried at once: the inbox's retry
    logged(turnkit_served, "code 230002: Bot is not in the chat")
    assert len(turnkit_served.turns()) == 1


def test_an_expired_token_is_replaced_before_the_next_reply(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    emulator.expires = [2]  # the first token lasts two seconds
    pusher = serve()
    pusher.push(pusher.message_event("oc_1", "first"), resends=0)
    turnkit_served.wait_for(lambda: emulator.texts() == ["first"])

    time.sleep(2.0)
    pusher.push(pusher.message_event("oc_1", "second"), resends=0)

    turnkit_served.wait_for(lambda: emulator.texts() == ["first", "second"])
    assert [token for token, _ in emulator.issued] == ["t-1", "t-2"]
    assert [(a.text, a.token) for a in emulator.all_attempts()] == [("first", "t-1"), ("second", "t-2")]


def test_a_token_the_platform_refuses_is_bought_again_once(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()
    pusher.push(pusher.message_event("oc_1", "first"), resends=0)
    turnkit_served.wait_for(lambda: emulator.texts() == ["first"])

    emulator.revoke()  # valid for two hours, but the platform no longer takes it
    pusher.push(pusher.message_event("oc_1", "second"), resends=0)

    turnkit_served.wait_for(lambda: emulator.texts() == ["first", "second"])
    assert [(a.token, a.status) for a in emulator.all_attempts()] == [
        ("t-1", 200),
        ("t-1", 400),
        ("t-2", 200),
    ]
