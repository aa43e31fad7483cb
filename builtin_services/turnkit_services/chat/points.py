"""Extension points of the chat service, fired around every message a channel receives.

Order for one message: ``chat_principal_seen`` (effect) → ``chat_principal_role``
(resolve) → ``chat_session`` (resolve) → ``chat_inbound`` (pipeline, before the
turn is queued) → the session turn, whose ``turn_authorize`` includes
``chat_authorize`` (guard on the sender) → ``chat_outbound`` (pipeline, before the
reply is delivered) → delivery on the channel → ``chat_replied`` (effect).
Implementations may take any subset of the arguments.
"""

from __future__ import annotations

from turnkit_hookspecs import (
    ChannelMessage,
    Deny,
    Message,
    Principal,
    TurnInfo,
    effect,
    guard,
    pipeline,
    resolve,
)


@effect
def chat_principal_seen(principal: Principal, inbound: ChannelMessage) -> None:
    """Observe who wrote to the agent, on which channel, before anything else happens.

    Example::

        @hookimpl
        def chat_principal_seen(principal):
            directory.touch(principal.channel, principal.id, principal.name)
    """


@resolve
def chat_principal_role(principal: Principal, inbound: ChannelMessage) -> str | None:
    """Name the role of the sender (``admin``, ``user`` …); the first answer wins.

    The role is set on ``inbound.principal`` for every later point, and
    stored with the message. With no answer the role stays ``None``.

    Example::

        @hookimpl
        def chat_principal_role(principal):
            return "admin" if principal.id in {"42", "alice"} else None
    """


@resolve
def chat_session(inbound: ChannelMessage) -> str | None:
    """Choose the session a channel message goes to; return its id.

    The chat service answers last: one session per channel, chat and
    thread, remembered in the store (a new one after ``/new`` or when the
    remembered one is closed). A session id returned here that does not
    exist yet is created.

    Example::

        @hookimpl
        def chat_session(inbound):
            if inbound.channel == "telegram":
                return f"tg-{inbound.principal.id}"  # one session per person, across chats
    """


@pipeline("inbound")
def chat_inbound(inbound: ChannelMessage, session_id: str) -> ChannelMessage | None:
    """Rewrite a channel message before its turn is queued; ``None`` for unchanged.

    Example::

        @hookimpl
        def chat_inbound(inbound):
            text = inbound.message.text.removeprefix("/ask ").strip()
            return attrs.evolve(inbound, message=Message.of("user", text))
    """


@guard
def chat_authorize(inbound: ChannelMessage, turn: TurnInfo) -> Deny | None:
    """Decide whether the sender may talk to the agent; fires inside the turn's authorization.

    A deny stores the turn as ``denied`` and the channel answers with the
    polite ``[service.chat] denied_reply``, not with the reason (which is
    stored with the turn). Raising counts as a deny.

    Example::

        @hookimpl
        def chat_authorize(inbound):
            if inbound.principal.role != "admin" and inbound.channel == "telegram":
                return Deny("only admins may use the Telegram bot")
    """


@pipeline("reply")
def chat_outbound(inbound: ChannelMessage, session_id: str, reply: Message) -> Message | None:
    """Rewrite the reply before the channel delivers it; ``None`` for unchanged.

    The stored reply is not changed: this is per-channel presentation.

    Example::

        @hookimpl
        def chat_outbound(inbound, reply):
            if inbound.channel == "telegram":
                return Message.of("assistant", reply.text.replace("**", ""))
    """


@effect
def chat_replied(inbound: ChannelMessage, session_id: str, turn: TurnInfo, reply: Message) -> None:
    """Observe a reply delivered on its channel (also a denial's or a failure's polite reply).

    Example::

        @hookimpl
        def chat_replied(inbound, turn, reply):
            metrics.count("replies", channel=inbound.channel, status=turn.status)
    """
