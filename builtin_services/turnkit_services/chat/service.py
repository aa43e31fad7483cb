"""The chat service: channel messages in, session turns through the chat points, replies out.

See :mod:`turnkit_services.chat.points` for the order of the points and
:mod:`turnkit_services.chat.channel` for what a channel is. The service
itself answers two points last (``trylast``), so that a plugin may replace
them: ``chat_session`` (one remembered session per channel, chat and
thread) and ``chat_principal_role`` (``"user"``). It also takes part in
``turn_authorize`` to run ``chat_authorize`` for the turns it queued, so
that a refused sender leaves a ``denied`` turn in the store.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
from collections.abc import Mapping
from importlib.metadata import EntryPoint
from typing import Any

import attrs
from turnkit_hookspecs import (
    ChannelMessage,
    ChunkListener,
    Deny,
    ExecutionContext,
    Message,
    Origin,
    PayloadError,
    Principal,
    Service,
    StorageConflict,
    TurnInfo,
    action,
    hookimpl,
    structure,
    unstructure,
)

from . import points
from .channel import CHANNELS_GROUP, Channel, ChatOutcome, split_text
from .settings import ChatSettings

#: The built-in channels: name → "module:class" inside this package, imported when used.
BUILTIN_CHANNELS = {
    "terminal": "turnkit_services.chat.terminal:TerminalChannel",
    "http": "turnkit_services.chat.http:HttpChannel",
    "telegram": "turnkit_services.chat.telegram:TelegramChannel",
}
#: The metadata key under which a stored inbound message keeps where it came from.
CHAT_METADATA = "chat"
#: The storage collection of remembered sessions: chat key → session id.
BINDINGS = "bindings"


class ChatService(Service):
    """Conversations over channels (terminal, HTTP, Telegram): the chat main path."""

    name = "chat"
    hookspecs = (points,)
    settings_class = ChatSettings
    settings: ChatSettings

    def __init__(self) -> None:
        #: The channels of ``[service.chat] channels``, made at start and run while serving.
        self.channels: dict[str, Channel] = {}
        #: The channels other distributions register, read once at start (it scans every distribution).
        self.plugin_channels: dict[str, EntryPoint] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, context: ExecutionContext) -> None:
        """Check the configured channel names (an unknown one fails the start)."""
        self.context = context
        if self.settings is None:
            self.settings = ChatSettings()
        self.plugin_channels = _plugin_channels()
        known = {*BUILTIN_CHANNELS, *self.plugin_channels}
        unknown = [name for name in self.settings.channels if name not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            listed = ", ".join(sorted(known))
            raise ValueError(
                f"[service.chat] channels: unknown channel {unknown[0]!r} ({hint}known: {listed})"
            )

    async def serve(self, context: ExecutionContext) -> None:
        """Make and run the channels; returns when one of them ends (the terminal's user quit).

        Channels are made here, not at start, so that commands which do not
        serve (``turnkit send``) never import a web server.
        """
        self.channels = {name: self._make_channel(name) for name in self.settings.channels}
        self._mount_routes()
        if not self.channels:
            await asyncio.Event().wait()  # nothing to run: serve until cancelled
        tasks = [asyncio.create_task(c.run(), name=f"chat channel {n}") for n, c in self.channels.items()]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.channels = {}
        for task in done:
            error = task.exception() if not task.cancelled() else None
            if error is not None:
                raise error

    def _mount_routes(self) -> None:
        """Give the channels' HTTP routes to the ``http`` channel's server, which serves them all.

        A channel with routes needs ``http`` running beside it; a path two
        channels claim stops the start with both named.
        """
        from .http import HttpChannel  # channels without routes never import the web server

        server = self.channels.get("http")
        for name, channel in self.channels.items():
            routes = channel.routes()
            if not routes:
                continue
            if not isinstance(server, HttpChannel):
                raise ValueError(
                    f"[service.chat] channels: {name!r} receives over HTTP, on the http channel's"
                    f" server: add 'http' to channels (listed: {', '.join(self.settings.channels)})"
                )
            entry_point = self.plugin_channels.get(name)
            distribution = entry_point.dist.name if entry_point and entry_point.dist else "turnkit-services"
            server.mount(f"{name} ({distribution})", routes, public=not channel.routes_need_token)

    def _make_channel(self, name: str) -> Channel:
        target = BUILTIN_CHANNELS.get(name) or self.plugin_channels[name].value
        module, _, attribute = target.partition(":")
        try:
            channel_class: type[Channel] = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:  # a channel distribution that does not load
            raise ValueError(
                f"[service.chat] channels: channel {name!r} ({target}) does not load: {exc}"
            ) from exc
        if name in BUILTIN_CHANNELS:
            settings = getattr(self.settings, name)
        else:
            settings = _structure_table(channel_class, self.settings.channel.get(name, {}), name)
        return channel_class(self, settings)

    # ------------------------------------------------------------------ the main path

    async def handle(
        self,
        inbound: ChannelMessage,
        channel: Channel,
        stream: ChunkListener | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> ChatOutcome:
        """Run one channel message through the chat points and a turn; deliver and return the reply.

        The message is stored (by the turn) before anything can refuse it.
        The user always gets an answer: the reply, or the polite
        ``denied_reply`` / ``failed_reply``.

        ``idempotency_key`` goes to the turn, so that a transport whose
        client may resend a message (HTTP) stores it once: a resend with the
        same key, here or in another process, gets the first one's turn. The
        chat points still run for the resend (they cannot know it is one),
        and its reply passes ``chat_outbound`` and is delivered again. A key
        already used for another session raises the runtime's
        ``IdempotencyKeyReused``, which the channel answers as it sees fit.
        """
        plugins = self.context.plugins
        principal = inbound.principal
        await plugins.effect("chat_principal_seen", principal=principal, inbound=inbound)
        role = await plugins.resolve("chat_principal_role", principal=principal, inbound=inbound)
        inbound = attrs.evolve(inbound, principal=attrs.evolve(principal, role=role))
        session_id = await plugins.resolve("chat_session", inbound=inbound)
        await self.context.session.open(session_id, kind="chat", metadata=_where(inbound))
        inbound = await plugins.pipeline("chat_inbound", inbound=inbound, session_id=session_id)
        message = attrs.evolve(
            inbound.message,
            author=inbound.message.author or inbound.principal.name or inbound.principal.id,
            metadata={**inbound.message.metadata, CHAT_METADATA: unstructure(_without_message(inbound))},
        )
        result = await self.context.session.turn(
            session_id,
            message,
            initiator="user",
            initiator_id=f"{inbound.channel}:{inbound.principal.id}",
            stream=stream,
            idempotency_key=idempotency_key,
            origin=Origin.of(inbound),
        )
        if result.turn.status == "completed" and result.reply is not None:
            reply = await plugins.pipeline(
                "chat_outbound", inbound=inbound, session_id=session_id, reply=result.reply
            )
        elif result.turn.status == "denied":
            reply = Message.of("assistant", self.settings.denied_reply)
        else:  # the user gets the polite reply: the operator gets the reason
            self.context.logger.warning(
                "chat: turn %s of session %s on %s %s: %s",
                result.turn.turn_id,
                session_id,
                inbound.channel,
                result.turn.status,
                result.turn.error,
            )
            reply = Message.of("assistant", self.settings.failed_reply)
        await channel.deliver(inbound, split_text(reply.text, channel.max_length))
        await plugins.effect(
            "chat_replied", inbound=inbound, session_id=session_id, turn=result.turn, reply=reply
        )
        return ChatOutcome(session_id, result, reply)

    async def new_session(self, channel: str, chat_id: str, thread_id: str | None = None) -> str:
        """Bind this chat to a fresh session (``/new``) and return its id."""
        where = {"channel": channel, "chat_id": chat_id, "thread_id": thread_id}
        session = await self.context.session.open(None, kind="chat", metadata=where)
        await self.storage.put(
            BINDINGS, chat_key(channel, chat_id, thread_id), {"session_id": session.session_id}
        )
        return session.session_id

    async def bind(self, channel: str, chat_id: str, session_id: str, thread_id: str | None = None) -> None:
        """Make this chat continue ``session_id`` (the terminal's ``/switch``)."""
        await self.storage.put(BINDINGS, chat_key(channel, chat_id, thread_id), {"session_id": session_id})

    # ------------------------------------------------------------------ defaults for the chat points

    @hookimpl(trylast=True)
    def chat_principal_role(self) -> str:
        """Everybody is a ``user`` unless a plugin says otherwise."""
        return "user"

    @hookimpl(trylast=True)
    async def chat_session(self, inbound: ChannelMessage) -> str:
        """The session remembered for this channel, chat and thread; a new one if none is active."""
        key = chat_key(inbound.channel, inbound.chat_id, inbound.thread_id)
        while True:
            record = await self.storage.get(BINDINGS, key)
            if record is not None:
                session = await self.context.session.get(record.value["session_id"])
                if session is not None and session.status == "active":
                    return session.session_id
            fresh = await self.context.session.open(None, kind="chat", metadata=_where(inbound))
            try:
                await self.storage.put(
                    BINDINGS,
                    key,
                    {"session_id": fresh.session_id},
                    expect=record.version if record is not None else 0,
                )
            except StorageConflict:  # another message of this chat bound one first: use it
                continue
            return fresh.session_id

    @hookimpl
    async def turn_authorize(self, turn: TurnInfo, message: Message) -> Deny | None:
        """Run ``chat_authorize`` for turns that came from a channel.

        A chat turn is one the chat service submitted with its origin (the
        runtime stores it with the turn and hands it on, in whichever
        process runs the turn); message metadata alone (a message another
        agent or a fork passed on keeps it) never makes a turn a chat turn.
        """
        origin = turn.origin
        if origin is None:
            return None
        inbound = ChannelMessage(
            channel=origin.channel,
            chat_id=origin.chat_id,
            thread_id=origin.thread_id,
            principal=origin.principal,
            message=message,
            metadata=origin.metadata,
        )
        deny = await self.context.plugins.guard("chat_authorize", inbound=inbound, turn=turn)
        return Deny(f"{deny.plugin}: {deny.reason}") if deny is not None else None

    # ------------------------------------------------------------------ actions

    @action
    async def bindings(self) -> list[dict[str, Any]]:
        """Which session each channel chat continues."""
        return [{"chat": r.key, **r.value} for r in await self.storage.list(BINDINGS)]

    @action
    async def deliver(self, channel: str, chat_id: str, text: str, thread_id: str | None = None) -> int:
        """Send ``text`` to a chat on a running channel (e.g. a task's result); returns the parts sent.

        Args:
            channel: a running channel that can send on its own (telegram; not http).
            chat_id: the chat to send to, as the channel names it.
            text: what to send; split at the channel's size limit.
            thread_id: the thread (forum topic) within the chat, if any.
        """
        running = self.channels.get(channel)
        if running is None:
            raise ValueError(
                f"channel {channel!r} is not running (running: {', '.join(self.channels) or 'none'})"
            )
        if not running.can_push:
            raise ValueError(f"channel {channel!r} only answers requests; it cannot send on its own")
        principal = Principal(channel, "agent", name=self.context.agent_id)
        target = ChannelMessage(channel, chat_id, principal, Message.of("assistant", text), thread_id)
        parts = split_text(text, running.max_length)
        await running.deliver(target, parts)
        return len(parts)


def chat_key(channel: str, chat_id: str, thread_id: str | None) -> str:
    """The storage key of a channel chat (and thread)."""
    return f"{channel}:{chat_id}" + (f":{thread_id}" if thread_id else "")


def _where(inbound: ChannelMessage) -> dict[str, Any]:
    return {"channel": inbound.channel, "chat_id": inbound.chat_id, "thread_id": inbound.thread_id}


def _without_message(inbound: ChannelMessage) -> dict[str, Any]:
    return {
        "channel": inbound.channel,
        "chat_id": inbound.chat_id,
        "thread_id": inbound.thread_id,
        "principal": inbound.principal,
        "metadata": inbound.metadata,
    }


def _plugin_channels() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=CHANNELS_GROUP)}


def _structure_table(channel_class: type[Channel], table: Mapping[str, Any], name: str) -> Any:
    if channel_class.settings_class is None:
        return dict(table)
    try:
        return structure(dict(table), channel_class.settings_class)
    except PayloadError as exc:
        raise ValueError(f"[service.chat.channel.{name}]: " + "; ".join(exc.problems)) from exc
