"""Which requests the channel's route takes: the console's URL check, and events proving they are Feishu's.

Every refusal is a 401, is logged, and leaves no turn behind; each test
then shows a genuine event still gets through, so the refusal is about the
request, not a broken channel.
"""

from __future__ import annotations

import json
import time

from conftest import ENCRYPT_KEY, VERIFICATION_TOKEN, Serve, logged
from feishu_emulator import FeishuEmulator, Pusher, encrypt
from turnkit.testing_served import ServedAgent


def answered(pusher: Pusher, turnkit_served: ServedAgent, emulator: FeishuEmulator) -> None:
    """A genuine event after the refused ones is answered, and is the only turn."""
    pusher.push(pusher.message_event("oc_1", "genuine"), resends=0)
    turnkit_served.wait_for(lambda: emulator.texts() == ["genuine"])
    assert [t["inbound"] for t in turnkit_served.turns()] == ["genuine"]


def test_the_url_check_is_answered_its_challenge_with_a_verification_token(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve(encrypt=False, token=VERIFICATION_TOKEN)
    check = pusher.url_verification("challenge-1")
    body = json.dumps(check).encode()

    assert pusher.push(check, resends=0) == (200, {"challenge": "challenge-1"})
    forged = pusher.post(json.dumps({**check, "token": "guess"}).encode(), pusher.headers(body))

    assert forged[0] == 401
    assert turnkit_served.turns() == []


def test_the_encrypted_url_check_is_answered_its_challenge_unsigned(
    serve: Serve, turnkit_served: ServedAgent
) -> None:
    pusher = serve()
    body = pusher.body(pusher.url_verification("challenge-2"))

    status, answer = pusher.post(body, {"Content-Type": "application/json"})  # the console does not sign it

    assert (status, answer) == (200, {"challenge": "challenge-2"})
    assert pusher.post(pusher.body(pusher.url_verification("c")), pusher.headers(b"other"))[0] == 401


def test_a_request_with_a_wrong_signature_is_refused_and_logged(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()
    body = pusher.body(pusher.message_event("oc_1", "forged"))

    wrong_key = pusher.post(body, pusher.headers(body, key="not-the-key"))
    tampered = pusher.post(body, {**pusher.headers(body), "X-Lark-Signature": "0" * 64})

    assert wrong_key[0] == tampered[0] == 401
    assert "wrong X-Lark-Signature" in wrong_key[1]["error"]["message"]
    logged(turnkit_served, "feishu channel: refused a request from 127.0.0.1: wrong X-Lark-Signature")
    answered(pusher, turnkit_served, emulator)


def test_an_unsigned_event_is_refused_even_if_it_decrypts(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()

    status, answer = pusher.post(pusher.body(pusher.message_event("oc_1", "unsigned")), {})

    assert status == 401
    assert "unsigned request" in answer["error"]["message"]
    answered(pusher, turnkit_served, emulator)


def test_a_replayed_request_with_a_stale_timestamp_is_refused(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve(replay_window=60.0)
    body = pusher.body(pusher.message_event("oc_1", "captured an hour ago"))

    old = pusher.post(body, pusher.headers(body, timestamp=time.time() - 3600))  # signed right, but old
    ahead = pusher.post(body, pusher.headers(body, timestamp=time.time() + 120))

    assert old[0] == ahead[0] == 401
    assert "outside the 60s replay window" in old[1]["error"]["message"]
    logged(turnkit_served, "replay window")
    answered(pusher, turnkit_served, emulator)


def test_an_event_with_a_wrong_verification_token_is_refused(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve(encrypt=False, token=VERIFICATION_TOKEN)
    event = pusher.message_event("oc_1", "forged")
    event["header"]["token"] = "a-guessed-token"
    tokenless = pusher.message_event("oc_1", "forged too")
    del tokenless["header"]["token"]

    answers = [pusher.post(json.dumps(e).encode(), {}) for e in (event, tokenless)]

    assert [status for status, _ in answers] == [401, 401]
    logged(turnkit_served, "wrong or missing verification token")
    answered(pusher, turnkit_served, emulator)


def test_with_both_the_key_and_the_token_both_are_checked(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve(token=VERIFICATION_TOKEN)
    event = pusher.message_event("oc_1", "signed, but the token is wrong")
    event["header"]["token"] = "a-guessed-token"
    body = json.dumps({"encrypt": encrypt(ENCRYPT_KEY, json.dumps(event).encode())}).encode()

    assert pusher.post(body, pusher.headers(body))[0] == 401
    answered(pusher, turnkit_served, emulator)


def test_a_signed_body_that_is_not_an_event_is_a_bad_request(
    serve: Serve, turnkit_served: ServedAgent
) -> None:
    pusher = serve()
    bodies = {
        b"not json": "not JSON",
        b'{"encrypt": "bm90IGJsb2Nrcw=="}': "does not decrypt",
        b"[1, 2]": "expected a JSON object",
    }

    answers = {body: pusher.post(body, pusher.headers(body)) for body in bodies}

    for body, message in bodies.items():
        status, answer = answers[body]
        assert status == 400
        assert message in answer["error"]["message"]
    assert turnkit_served.turns() == []
