"""The Encrypt Key's two uses: decrypting an event body, and the signature of a request.

With an Encrypt Key set in the app's console, Feishu posts
``{"encrypt": "<base64>"}``: the event's JSON encrypted with AES-256-CBC,
the key being the SHA-256 digest of the Encrypt Key, the initialisation
vector the first 16 bytes of the decoded payload, and PKCS#7 padding. Each
request then also carries ``X-Lark-Signature``: the hex SHA-256 digest of
the request's timestamp, nonce and the Encrypt Key (as UTF-8) followed by
the raw body, so that the body can be trusted before it is decrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16


class DecryptError(ValueError):
    """The payload is not something the Encrypt Key encrypted (wrong key, not base64, bad padding)."""


def decrypt(encrypt_key: str, payload: str) -> bytes:
    """The plaintext of an ``encrypt`` field."""
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptError(f"not base64: {exc}") from exc
    if len(data) < 2 * BLOCK or len(data) % BLOCK:
        raise DecryptError(f"{len(data)} bytes is not an IV and whole AES blocks")
    key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:BLOCK])).decryptor()
    padded = decryptor.update(data[BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:  # the wrong key gives garbage padding
        raise DecryptError("bad padding (is it the app's Encrypt Key?)") from exc


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """The ``X-Lark-Signature`` Feishu sends with ``body``."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time."""
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("ascii", "replace"))
