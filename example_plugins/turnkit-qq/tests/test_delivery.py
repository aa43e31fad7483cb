"""Getting replies through: backoff on 429 and 5xx, the access token's renewals, and crashes."""

from __future__ import annotations

import time

from conftest import SECRET
from qq_platform import DUPLICATE, QQPlatform, Refusal
from turnkit.testing_served import ServedAgent


def test_429_and_5xx_are_retried_with_backoff_and_the_reply_delivered_once(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.start()
    platform.fail(429, times=2)
    platform.fail(503)

    platform.push(platform.c2c_message("U1", "hello"))

    served.wait_for(lambda: platform.texts() == ["hello"])
    assert platform.calls == 4
    assert "failed (QQ POST /v2/users/U1/messages: HTTP 429" in served.output
    assert len(served.turns()) == 1


def test_the_token_is_renewed_before_it_expires_and_when_it_is_refused(
    served: ServedAgent, platform: QQPlatform
) -> None:
    platform.token_lifetime = 2  # renewed half-way through its life, after a second
    served.start()

    def reply(text: str) -> None:
        platform.push(platform.c2c_message("U1", text))
        served.wait_for(lambda: platform.texts()[-1:] == [text])

    reply("one")
    time.sleep(1.2)
    reply("two")  # the first token is due: a new one, before the platform would refuse it
    assert (len(platform.issued), platform.unauthorized) == (2, 0)

    platform.token_lifetime = 7200
    time.sleep(1.2)
    reply("three")
    platform.revoke_tokens()
    reply("four")  # refused with 401: a new token, and the reply sent again

    assert (len(platform.issued), platform.unauthorized) == (4, 1)
    assert [s.authorization for s in platform.sent] == [f"QQBot {token}" for token in platform.issued]
    assert len(served.turns()) == 4
    assert SECRET not in served.output
    assert not [token for token in platform.issued if token in served.output]


def test_a_reply_taken_by_the_platform_before_a_crash_is_shown_once_after_the_restart(
    served: ServedAgent, platform: QQPlatform
) -> None:
    platform.hold()  # the platform takes the reply, the bot dies before it hears so
    served.start()
    message = platform.c2c_message("U1", "hello")
    platform.push(message)
    served.wait_for(lambda: platform.texts() == ["hello"])
    served.kill()
    platform.release()

    served.start()

    msg_id = message["d"]["id"]
    served.wait_for(lambda: platform.refusals == [Refusal(DUPLICATE, msg_id, 1)], timeout=20)
    served.wait_for(lambda: "part 1 of the reply to" in served.output)
    assert platform.texts() == ["hello"]  # the re-sent part was refused as a duplicate: shown once
    assert [(t["inbound"], t["status"]) for t in served.turns()] == [("hello", "completed")]

    again = platform.push(message, attempts=1)  # the platform sends the event again, after the restart
    time.sleep(0.5)
    assert again.status == 200
    assert len(served.turns()) == 1 and platform.texts() == ["hello"]


def test_an_event_accepted_while_the_platform_fails_is_answered_once_after_a_crash(
    served: ServedAgent, platform: QQPlatform
) -> None:
    platform.fail(500, times=1000)
    served.start()
    platform.push(platform.c2c_message("U1", "hello"))
    served.wait_for(lambda: platform.calls > 0)
    served.kill()
    platform.recover()

    served.start()

    served.wait_for(lambda: platform.texts() == ["hello"], timeout=20)
    assert [(t["inbound"], t["status"]) for t in served.turns()] == [("hello", "completed")]
