"""Telling Feishu's requests from forged and replayed ones, and opening their payload.

The channel's route is outside the HTTP API's bearer token (Feishu cannot
send it), so every request proves itself here before anything is stored:

- With an Encrypt Key, a request must carry a correct ``X-Lark-Signature``
  and an ``X-Lark-Request-Timestamp`` at most ``replay_window`` seconds
  away from this machine's clock; a captured request sent again later is
  thus refused even though its signature is right (one sent again within
  the window is the same event id, which the inbox drops). The one request
  Feishu may send unsigned is the console's URL check
  (``url_verification``): it is let through only if it decrypts with the
  key, and only to be answered its challenge.
- Without one, the payload's ``token`` (``header.token`` in a v2 event)
  must be the console's Verification Token. Feishu signs nothing then, so
  there is no timestamp to refuse a replay by; the README says so.
- With both, both are checked.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from .crypto import DecryptError, decrypt, signature, signature_matches
from .errors import Malformed, Refused
from .settings import Secrets

TIMESTAMP = "X-Lark-Request-Timestamp"
NONCE = "X-Lark-Request-Nonce"
SIGNATURE = "X-Lark-Signature"
URL_VERIFICATION = "url_verification"


class RequestVerifier:
    """Checks one request's signature, age and token, and returns its (decrypted) JSON payload."""

    def __init__(
        self, secrets: Secrets, replay_window: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.encrypt_key = secrets.encrypt_key
        self.token = secrets.verification_token
        self.replay_window = replay_window
        self.clock = clock

    def open(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The payload of ``body``; :class:`Refused` or :class:`Malformed` if it is not Feishu's."""
        outer = _json_object(body)
        payload = outer if self.encrypt_key is None else self._open_encrypted(headers, body, outer)
        if self.token is not None:
            given = _token(payload)
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.token.encode()):
                raise Refused("wrong or missing verification token")
        return payload

    def _open_encrypted(
        self, headers: Mapping[str, str], body: bytes, outer: dict[str, Any]
    ) -> dict[str, Any]:
        assert self.encrypt_key is not None
        stamp, nonce, given = headers.get(TIMESTAMP), headers.get(NONCE), headers.get(SIGNATURE)
        if stamp is None or nonce is None or given is None:
            payload = self._decrypted(outer, Refused)
            if payload.get("type") != URL_VERIFICATION:
                raise Refused(f"unsigned request: no {SIGNATURE}, {TIMESTAMP} or {NONCE} header")
            return payload
        if not signature_matches(signature(stamp, nonce, self.encrypt_key, body), given):
            raise Refused(f"wrong {SIGNATURE}")
        try:
            age = self.clock() - float(stamp)
        except ValueError:
            raise Refused(f"{TIMESTAMP} is not a UNIX time: {stamp[:40]!r}") from None
        if abs(age) > self.replay_window:
            raise Refused(
                f"{TIMESTAMP} is {abs(age):.0f}s {'old' if age > 0 else 'ahead'}, outside the"
                f" {self.replay_window:g}s replay window (a replay, or a clock off)"
            )
        return self._decrypted(outer, Malformed) if "encrypt" in outer else outer

    def _decrypted(self, outer: dict[str, Any], error: type[Exception]) -> dict[str, Any]:
        assert self.encrypt_key is not None
        payload = outer.get("encrypt")
        if not isinstance(payload, str):
            raise error("the body is not encrypted, but an Encrypt Key is configured")
        try:
            return _json_object(decrypt(self.encrypt_key, payload))
        except (DecryptError, Malformed) as exc:
            raise error(f"the encrypted body does not decrypt to an event: {exc}") from exc


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Malformed(f"expected a JSON object, got {type(value).__name__}")
    return value


def _token(payload: Mapping[str, Any]) -> object:
    """The verification token: ``header.token`` in a v2 event, ``token`` in the URL check (and v1)."""
    header = payload.get("header")
    if isinstance(header, Mapping) and "token" in header:
        return header["token"]
    return payload.get("token")
