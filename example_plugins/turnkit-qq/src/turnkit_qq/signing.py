"""The bot's Ed25519 key, and the two signatures of the QQ webhook protocol.

The platform has no separate signing key: both sides derive one Ed25519
key pair from the bot secret (AppSecret). The secret, as UTF-8 bytes, is
repeated until it is at least 32 bytes long, and its first 32 bytes are
the private key's seed. With that key:

- every callback comes with ``X-Signature-Ed25519`` (the hex signature)
  and ``X-Signature-Timestamp``: the platform signed the timestamp followed
  by the raw request body, and the bot verifies it with the public key;
- the callback URL check (op 13) asks the bot to prove it holds the secret:
  the bot answers with the hex signature of ``event_ts`` followed by
  ``plain_token``.

Both signatures are over "a string followed by another string", so an
answer to op 13 is exactly a callback signature for some timestamp and
body. :func:`validation_token_shape` is what keeps the bot from signing, on
a stranger's request, something that could pass as a callback.
"""

from __future__ import annotations

import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: Bytes of an Ed25519 seed.
SEED_SIZE = 32
#: What the platform sends as ``plain_token`` (letters and digits) and ``event_ts`` (a Unix time).
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9]{1,128}")
_EVENT_TS = re.compile(r"[0-9]{1,20}")


def bot_key(secret: str) -> Ed25519PrivateKey:
    """The Ed25519 private key the platform derives from the bot secret (see the module docstring)."""
    raw = secret.encode("utf-8")
    if not raw:
        raise ValueError("the bot secret is empty")
    repeated = raw * (SEED_SIZE // len(raw) + 1)
    return Ed25519PrivateKey.from_private_bytes(repeated[:SEED_SIZE])


def sign_validation(key: Ed25519PrivateKey, event_ts: str, plain_token: str) -> str:
    """The ``signature`` of the answer to a callback URL check (op 13), in hex."""
    return key.sign((event_ts + plain_token).encode("utf-8")).hex()


def validation_token_shape(event_ts: str, plain_token: str) -> bool:
    """Whether an op 13 check looks like the platform's: a Unix time and a token of letters and digits.

    Such a pair, signed, can never be taken for a callback's signature: a
    callback body is a JSON object, so it has a ``{`` that these have not.
    """
    return bool(_EVENT_TS.fullmatch(event_ts) and _PLAIN_TOKEN.fullmatch(plain_token))


def verify_callback(key: Ed25519PublicKey, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (hex, from ``X-Signature-Ed25519``) signs ``timestamp`` + ``body``."""
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        return False
    try:
        key.verify(raw, timestamp.encode("utf-8") + body)
    except InvalidSignature:
        return False
    return True
