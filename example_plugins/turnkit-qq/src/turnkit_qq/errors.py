"""What the platform answers when it refuses a call, and which refusals mean what.

The OpenAPI refuses with an HTTP status and, mostly, a JSON body
``{"code": N, "message": "…"}`` (some answers say ``err_code`` too). Most
codes only tell the operator what went wrong, and the inbox retries the
reply a bounded number of times. Two kinds are answers of their own:

- ``40054005``, "message deduplicated, check msg_seq": a reply with this
  ``msg_id`` and ``msg_seq`` was delivered already. The channel sends one
  again only when it does not know whether the first arrived (it died or
  timed out waiting for the answer), so for the channel this is success.
  The code is not in the platform's published error table; it is what the
  platform answers in practice, and the tests' emulator answers it so.
- ``304027`` (the message to reply to has expired) and ``22009`` (too many
  messages): the platform will refuse this reply however often it is sent,
  so the channel logs it as undelivered instead of retrying.
"""

from __future__ import annotations

from typing import Any

import httpx

#: A reply with this ``msg_id`` and ``msg_seq`` is there already.
DUPLICATE_SEQ = 40054005
#: Refusals that no retry changes: the message to reply to expired; too many messages.
FOR_GOOD = frozenset({304027, 22009})


class QQApiError(Exception):
    """The platform refused a call: its HTTP status, and its error code (0 if it gave none)."""

    def __init__(self, what: str, status: int, code: int, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        refused = status == 401 or what == "getAppAccessToken"
        hint = " (check [service.chat.channel.qq] app_id and the bot secret)" if refused else ""
        super().__init__(f"QQ {what}: HTTP {status}, code {code}: {message or 'no message'}{hint}")

    @classmethod
    def of(cls, what: str, response: httpx.Response) -> QQApiError:
        """The error a refusing ``response`` carries."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return cls(what, response.status_code, 0, response.text[:200])
        code = body.get("code") or body.get("err_code")
        number = (
            code if isinstance(code, int) else int(code) if isinstance(code, str) and code.isdigit() else 0
        )
        return cls(what, response.status_code, number, str(body.get("message") or ""))

    @property
    def transient(self) -> bool:
        """Worth trying again soon: too many requests (429) or a server error (5xx)."""
        return self.status == 429 or self.status >= 500
