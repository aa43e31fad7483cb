"""``[plugin.redact]``: which kinds of personal data are redacted, and what replaces them."""

from __future__ import annotations

import attrs

from .patterns import CARD_PLACEHOLDER, EMAIL_PLACEHOLDER, PHONE_PLACEHOLDER, redact_text


@attrs.frozen
class RedactSettings:
    """The whole ``[plugin.redact]`` table; every kind is redacted unless switched off.

    >>> RedactSettings(phones=False, email_placeholder="<e-mail>").redact("ann@example.org, 030 1234567")
    '<e-mail>, 030 1234567'
    """

    emails: bool = True
    phones: bool = True
    cards: bool = True
    email_placeholder: str = EMAIL_PLACEHOLDER
    phone_placeholder: str = PHONE_PLACEHOLDER
    card_placeholder: str = CARD_PLACEHOLDER

    def redact(self, text: str) -> str:
        """``text`` with the kinds switched on replaced by their placeholders."""
        return redact_text(
            text,
            emails=self.email_placeholder if self.emails else None,
            cards=self.card_placeholder if self.cards else None,
            phones=self.phone_placeholder if self.phones else None,
        )


#: What an instance redacts before (or without) ``[plugin.redact]``: everything.
DEFAULT_SETTINGS = RedactSettings()
