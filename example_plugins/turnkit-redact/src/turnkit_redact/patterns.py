"""Finding e-mail addresses, payment card numbers and phone numbers in text.

Everything here is plain functions over ``str``; :mod:`turnkit_redact` wires
them into turnkit's pipelines, as ``[plugin.redact]`` chooses.

The rules lean towards leaving ordinary numbers alone: dates, times, prices,
version numbers, IP addresses, order numbers and digit runs that fail the
Luhn check are not touched.
"""

from __future__ import annotations

import re

EMAIL_PLACEHOLDER = "[email]"
PHONE_PLACEHOLDER = "[phone]"
CARD_PLACEHOLDER = "[card]"

_EMAIL = re.compile(
    r"""
    (?<![\w.%+-])                               # not in the middle of a word
    [\w%+-]+ (?:\.[\w%+-]+)*                    # local part, dots only inside
    @
    (?:[^\W_] (?:[\w-]{0,61}[^\W_])? \.)+       # domain labels
    [^\W\d_]{2,63}                              # top-level domain
    (?![\w@-])
    """,
    re.VERBOSE,
)

# A run of digit groups joined by single spaces or dashes ("4111 1111 1111 1111",
# "4111-1111-1111-1111", "4111111111111111"). Atomic, so a run glued to letters or
# a decimal point is skipped as a whole instead of being shortened until it fits.
_DIGIT_RUN = re.compile(
    r"""
    (?<![\w+])(?<!\d[.,])
    (?>\d+(?:[ -]\d+)*)
    (?!\w|[.,]\d)
    """,
    re.VERBOSE,
)
_DIGIT_GROUP = re.compile(r"\d+")

CARD_MIN_DIGITS = 13
CARD_MAX_DIGITS = 19

_PHONE = re.compile(
    r"""
    (?<![\w+])
    (?:
        # international: +49 30 1234567, +44 (0)20 7946 0958, 0044 20 7946 0958
        (?:\+|00)\d{1,3} (?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}
      |
        # North American: (415) 555-2671, 415-555-2671, 415.555.2671, 1-800-555-0199
        (?:1[ .-])? (?:\(\d{3}\)\ ?|\d{3}[ .-]) \d{3}[ .-]\d{4}
      |
        # national numbers with a trunk 0 and one kind of separator:
        # 030 1234567, 020 7946 0958, 0151-23456789, 06 12 34 56 78
        0\d{1,4} (?P<sep>[ /-]) \d{2,8} (?:(?P=sep)\d{2,8}){0,3}
    )
    (?!\w|[.,-]?\d)
    """,
    re.VERBOSE,
)

PHONE_MIN_DIGITS = 7
PHONE_MAX_DIGITS = 15  # the longest number E.164 allows
# A date such as 05-11-2023 has at most eight digits; national numbers have more.
NATIONAL_PHONE_MIN_DIGITS = 9


def luhn_valid(digits: str) -> bool:
    """Return whether a string of digits passes the Luhn (mod 10) check."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def redact_emails(text: str, placeholder: str = EMAIL_PLACEHOLDER) -> str:
    """Replace e-mail addresses by ``placeholder``."""
    return _EMAIL.sub(lambda _: placeholder, text)  # a function: no backslash escapes in the placeholder


def _redact_cards_in_run(run: str, placeholder: str) -> str:
    """Replace the card numbers inside one run of digit groups.

    The whole run is tried first; when it is not a card (too long, or not
    Luhn-valid) the longest stretch of whole groups that is one wins, so a
    card followed by an expiry date ("4111111111111111 12 27") is still found.
    """
    groups = [(m.start(), m.end()) for m in _DIGIT_GROUP.finditer(run)]
    pieces: list[str] = []
    copied_up_to = 0
    first = 0
    while first < len(groups):
        best_last: int | None = None
        digits = ""
        for last in range(first, len(groups)):
            start, end = groups[last]
            digits += run[start:end]
            if len(digits) > CARD_MAX_DIGITS:
                break
            if len(digits) >= CARD_MIN_DIGITS and luhn_valid(digits):
                best_last = last
        if best_last is None:
            first += 1
            continue
        pieces.append(run[copied_up_to : groups[first][0]])
        pieces.append(placeholder)
        copied_up_to = groups[best_last][1]
        first = best_last + 1
    pieces.append(run[copied_up_to:])
    return "".join(pieces)


def redact_cards(text: str, placeholder: str = CARD_PLACEHOLDER) -> str:
    """Replace payment card numbers by ``placeholder``.

    A card number is 13 to 19 digits, optionally grouped by single spaces or
    dashes, that passes the Luhn check.
    """
    return _DIGIT_RUN.sub(lambda match: _redact_cards_in_run(match.group(), placeholder), text)


def redact_phones(text: str, placeholder: str = PHONE_PLACEHOLDER) -> str:
    """Replace phone numbers by ``placeholder``.

    Recognised: international numbers (``+`` or ``00`` and a country code),
    North American numbers written with separators, and national numbers
    starting with a trunk ``0`` grouped by one kind of separator.
    """

    def phone_or_original(match: re.Match[str]) -> str:
        found = match.group()
        digits = sum(char.isdigit() for char in found)
        minimum = NATIONAL_PHONE_MIN_DIGITS if match.group("sep") else PHONE_MIN_DIGITS
        return placeholder if minimum <= digits <= PHONE_MAX_DIGITS else found

    return _PHONE.sub(phone_or_original, text)


def redact_text(
    text: str,
    *,
    emails: str | None = EMAIL_PLACEHOLDER,
    cards: str | None = CARD_PLACEHOLDER,
    phones: str | None = PHONE_PLACEHOLDER,
) -> str:
    """Replace e-mail addresses, card numbers and phone numbers in ``text``.

    Each keyword is the placeholder of its kind, or ``None`` to leave that
    kind alone. E-mail addresses go first (they may hold digits), then card
    numbers (longer than any phone number), then phone numbers.

    >>> redact_text("Mail ann@example.org or call +44 20 7946 0958.")
    'Mail [email] or call [phone].'
    >>> redact_text("Mail ann@example.org or call +44 20 7946 0958.", emails=None, phones="(number)")
    'Mail ann@example.org or call (number).'
    """
    if not any(char == "@" or char.isdigit() for char in text):
        return text
    if emails is not None:
        text = redact_emails(text, emails)
    if cards is not None:
        text = redact_cards(text, cards)
    if phones is not None:
        text = redact_phones(text, phones)
    return text
