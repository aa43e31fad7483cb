"""``[service.chat]``: which channels run, what a refused or failed turn answers, and each channel's table."""

from __future__ import annotations

from typing import Any

import attrs
from attrs.validators import ge, gt, le


@attrs.frozen
class HttpSettings:
    """``[service.chat.http]``: the HTTP API and the OpenAI-compatible endpoint.

    It binds ``host`` (loopback unless told otherwise) on ``port`` (``0``
    picks a free port, printed at start). With ``token`` (or the
    environment variable named by ``token_env``) set, every request must
    carry ``Authorization: Bearer <token>``. Request bodies above
    ``max_body`` bytes are refused with 413, and a body not whole
    ``read_timeout`` seconds (at most an hour) after the request's head,
    such as one shorter than its ``Content-Length``, with 408. ``openai`` serves the
    OpenAI-compatible ``/v1`` endpoints next to the ``/api`` ones. When the
    agent stops, requests still running get ``shutdown_timeout`` seconds to
    finish (at most an hour); ``max_body`` is at most 1 GiB.

    ``reuse_port`` sets ``SO_REUSEPORT`` on the listening socket, so that
    several ``turnkit serve`` workers with the same configuration can listen
    on one ``host:port`` and the kernel (Linux) spreads the connections among
    them: each worker answers the requests it receives, whichever process
    runs their turns. It needs a fixed ``port``: with ``0`` each worker
    would get a port of its own.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8321, validator=[ge(0), le(65535)])
    token: str | None = None
    token_env: str | None = None
    max_body: int = attrs.field(default=1_000_000, validator=[ge(1), le(2**30)])
    read_timeout: float = attrs.field(default=10.0, validator=[gt(0), le(3600)])
    openai: bool = True
    shutdown_timeout: int = attrs.field(default=10, validator=[ge(0), le(3600)])
    reuse_port: bool = attrs.field(default=False)

    @reuse_port.validator
    def _fixed_port(self, attribute: attrs.Attribute[bool], value: bool) -> None:
        """Refuse ``reuse_port`` with ``port = 0``, which would share nothing and say nothing."""
        if value and self.port == 0:
            raise ValueError("'reuse_port' needs a fixed 'port': with port = 0 each worker gets its own port")


@attrs.frozen
class TelegramSettings:
    """``[service.chat.telegram]``: the Telegram Bot API channel (long polling).

    The bot token is ``token`` or the environment variable ``token_env``
    (default ``TELEGRAM_BOT_TOKEN``); ``base_url`` is the Bot API server
    (change it for a local Bot API server or a test double);
    ``poll_timeout`` is how long, in seconds, one ``getUpdates`` call waits
    for updates (long polling); ``retry_delay`` is how long to wait, in
    seconds, before retrying after a network error or a Bot API server error.

    Several workers (``turnkit serve`` processes on one store) may run the
    same bot; one at a time polls it, holding a lease in the store that it
    renews every ``leader_ttl / 3`` seconds, while the others try to take
    it as often. ``leader_ttl`` is how long, in seconds, the lease outlives
    its holder's last renewal: a worker that dies is replaced within
    ``leader_ttl * 4 / 3`` seconds, one that stops within ``leader_ttl / 3``.
    It must exceed the clock skew between the workers' machines, and be at
    most a day; ``poll_timeout`` and ``retry_delay`` are at most an hour.
    """

    token: str | None = None
    token_env: str = "TELEGRAM_BOT_TOKEN"
    base_url: str = attrs.field(
        default="https://api.telegram.org", validator=attrs.validators.matches_re(r"https?://\S+")
    )
    poll_timeout: int = attrs.field(default=30, validator=[ge(1), le(3600)])
    retry_delay: float = attrs.field(default=2.0, validator=[gt(0), le(3600)])
    leader_ttl: float = attrs.field(default=10.0, validator=[gt(0), le(86_400)])


@attrs.frozen
class TerminalSettings:
    """``[service.chat.terminal]``: the REPL of ``turnkit chat``.

    ``history_file`` keeps line-editing history between runs (relative to
    the configuration file's folder; empty to keep none).
    """

    history_file: str = "~/.turnkit_history"
    prompt: str = "you> "


@attrs.frozen
class ChatSettings:
    """``[service.chat]``.

    ``channels`` run while the agent serves (``turnkit serve``; ``turnkit
    chat`` runs the terminal alone). ``denied_reply`` is what the user reads
    when a guard refuses the turn (the reason stays in the store), and
    ``failed_reply`` when the turn fails (the message stays stored).
    ``channel`` holds the tables of channels from other distributions
    (``[service.chat.channel.matrix]``).
    """

    channels: list[str] = attrs.field(factory=lambda: ["http"])
    denied_reply: str = "Sorry, I can't help with that here."
    failed_reply: str = "Sorry, something went wrong. Your message is saved; please try again later."
    http: HttpSettings = attrs.field(factory=HttpSettings)
    telegram: TelegramSettings = attrs.field(factory=TelegramSettings)
    terminal: TerminalSettings = attrs.field(factory=TerminalSettings)
    channel: dict[str, dict[str, Any]] = attrs.field(factory=dict)
