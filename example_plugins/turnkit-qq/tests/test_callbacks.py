"""What the channel lets in: the callback URL check, and only callbacks the platform signed recently."""

from __future__ import annotations

import json
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from qq_platform import QQPlatform
from turnkit.testing_served import ServedAgent


def test_the_callback_url_check_is_answered_with_a_signature_the_platform_verifies(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.start()

    answer, verified = platform.check_callback_url()  # unsigned, as the documentation shows it
    assert answer.status == 200 and verified
    answer, verified = platform.check_callback_url(signed=True)
    assert answer.status == 200 and verified
    assert served.turns() == []


def test_an_unsigned_check_that_could_forge_a_callback_is_not_signed(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.start()
    forged = json.dumps({"op": 0, "d": {}, "t": "C2C_MESSAGE_CREATE"})

    answer, verified = platform.check_callback_url(plain_token=forged)

    assert answer.status == 401 and not verified
    assert "signature" not in answer.json()


def test_callbacks_unsigned_wrongly_signed_or_tampered_with_are_refused_and_make_no_turn(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.start()
    body = json.dumps(platform.c2c_message("U1", "hello")).encode()
    stranger = Ed25519PrivateKey.generate()
    signed = platform.signed(body)

    unsigned = platform.post(body, {"Content-Type": "application/json"})
    by_a_stranger = platform.post(body, platform.signed(body, key=stranger))
    tampered = platform.post(body.replace(b"hello", b"HELLO"), signed)
    no_timestamp = platform.post(body, {k: v for k, v in signed.items() if k != "X-Signature-Timestamp"})

    garbage = platform.post(b"not json", {"Content-Type": "application/json"})

    assert [a.status for a in (unsigned, by_a_stranger, tampered, no_timestamp, garbage)] == [401] * 5
    assert platform.post(body, signed).status == 200  # the platform's own request passes
    served.wait_for(lambda: platform.texts() == ["hello"])
    assert [t["inbound"] for t in served.turns()] == ["hello"]
    assert "refused an unsigned callback" in served.output
    assert "refused a callback with a wrong signature" in served.output


def test_a_callback_signed_outside_the_replay_window_is_refused(
    served: ServedAgent, platform: QQPlatform
) -> None:
    served.configure(service={"chat": {"channel": {"qq": {"replay_window": 60.0}}}})
    served.start()
    body = json.dumps(platform.c2c_message("U1", "hello")).encode()
    now = int(time.time())

    replayed = platform.post(body, platform.signed(body, timestamp=str(now - 120)))
    ahead = platform.post(body, platform.signed(body, timestamp=str(now + 120)))

    assert (replayed.status, ahead.status) == (401, 401)
    assert served.turns() == []
    assert "more than replay_window (60s) from now" in served.output
