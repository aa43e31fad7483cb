"""The bot's key and the protocol's two signatures, against the examples in the platform's documentation.

Ed25519 signatures are deterministic, so the documented answer to the
documented callback URL check must come out byte for byte.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from qq_platform import platform_key
from turnkit_qq import bot_key, sign_validation, validation_token_shape, verify_callback


def test_the_key_derived_from_the_documented_secret_has_the_documented_public_key() -> None:
    key = bot_key("naOC0ocQE3shWLAfffVLB1rhYPG7")
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert list(public) == [
        215, 195, 98, 254, 120, 174, 248, 31, 242, 50, 135, 180, 147, 98, 139, 93,
        176, 42, 60, 79, 227, 11, 33, 94, 77, 25, 96, 155, 93, 118, 103, 58,
    ]  # fmt: skip


def test_the_documented_callback_url_check_gets_the_documented_signature() -> None:
    key = bot_key("DG5g3B4j9X2KOErG")
    assert sign_validation(key, "1725442341", "Arq0D5A61EgUu4OxUvOp") == (
        "87befc99c42c651b3aac0278e71ada338433ae26fcb24307bdc5ad38c1adc2d0"
        "1bcfcadc0842edac85e85205028a1132afe09280305f13aa6909ffc2d652c706"
    )


def test_a_callback_verifies_only_with_its_timestamp_body_and_the_bots_key() -> None:
    platform = platform_key("a-bot-secret")
    public = bot_key("a-bot-secret").public_key()
    body = b'{"op":0,"d":{},"t":"C2C_MESSAGE_CREATE"}'
    signature = platform.sign(b"1725442341" + body).hex()

    assert verify_callback(public, "1725442341", body, signature)
    assert not verify_callback(public, "1725442342", body, signature)
    assert not verify_callback(public, "1725442341", body + b" ", signature)
    assert not verify_callback(bot_key("another-secret").public_key(), "1725442341", body, signature)
    assert not verify_callback(public, "1725442341", body, "not hex")
    assert not verify_callback(public, "1725442341", body, signature[:64])


def test_only_a_check_shaped_like_the_platforms_is_signed_unasked() -> None:
    assert validation_token_shape("1725442341", "Arq0D5A61EgUu4OxUvOp")
    assert not validation_token_shape("1725442341", '{"op":0,"d":{}}')  # would sign a callback
    assert not validation_token_shape("1725442341{", "abc")
    assert not validation_token_shape("", "abc")
