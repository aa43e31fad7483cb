"""The Telegram channel: a bot that long-polls the Bot API and answers with ``sendMessage``.

How an update travels, and why in this order:

1. ``getUpdates`` (long polling from the stored offset) returns updates.
   The ones the agent answers (text messages) are written to the chat
   service's storage first (collection ``telegram_pending``); then the
   offset past the whole batch is stored, and the next ``getUpdates``
   confirms the batch to Telegram. At any moment an update is at Telegram,
   in the store, or answered: a restart neither loses nor repeats one.
   Other updates (stickers, edited messages, joins …) are skipped, and
   confirmed with the batch.
2. Every chat (and forum topic) has its own worker answering its updates in
   order through the chat main path, whose turn stores the message before
   anything else happens; a slow turn in one chat does not hold up another.
3. Once the reply is sent, the pending record is deleted.

At start, the pending records a stop or a crash left behind are taken up
before polling. An update whose message never reached a session is answered
as a new one. One whose message is stored is not run a second time: its
reply is sent as soon as the session has it (the turn completed after the
channel stopped, or the orchestrator re-runs the interrupted turn at
start). A reply is sent twice only if the process dies between
``sendMessage`` and deleting the pending record.

Several workers (``turnkit serve`` processes on one store) may run the same
bot, but Telegram serves one poller per bot, and two would answer the same
updates. So a worker polls only while it holds the bot's lease
(:class:`~turnkit_services.leader.LeaderLease`, key
``telegram-poller:<bot id>`` in the chat storage's ``leases`` collection);
the others stand by, trying to take it every ``leader_ttl / 3`` seconds.
The leader renews it as often. A leader that loses it (another worker took
it over, or the store failed its renewals until too little of it was left)
stops at once: the ``getUpdates`` in flight is cancelled, a batch already
fetched is still stored (not answered), and the chat workers are
cancelled, as at a stop. Whoever leads next takes up the pending updates
as after a restart. The old leader must stop answering, not just polling:
the take-up cannot tell an update a live worker is still answering from
one a dead worker left, and both would send the reply (or run the message
twice). So a reply is sent twice only if a worker dies, or loses the
lease, between ``sendMessage`` and deleting the pending record. A clean
stop releases the lease, so that a standby takes over at its next try; a
worker that dies without releasing it is replaced once the lease expires.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import httpx
from turnkit_hookspecs import ChannelMessage, Message, Principal

from ..leader import LeaderLease
from .channel import Channel, split_text
from .service import CHAT_METADATA, chat_key
from .settings import TelegramSettings

if TYPE_CHECKING:
    from .service import ChatService

#: The chat storage collection of the channel's state: ``offset:<bot id>`` → ``{"offset": N}``.
STATE = "telegram"
#: Updates taken from Telegram and not answered yet: ``<bot id>:<update id>`` → ``{"update": …}``.
PENDING = "telegram_pending"
#: Seconds the HTTP client waits for ``getUpdates`` beyond its long-polling timeout.
POLL_SLACK = 10.0
#: Timeout, in seconds, of the other Bot API calls.
CALL_TIMEOUT = 30.0
#: Telegram shows "typing…" for five seconds; it is renewed this often while a turn runs.
TYPING_EVERY = 4.0
#: How long a taken-up update waits for the re-run of its interrupted turn, and how often it looks.
RERUN_WAIT = 600.0
RERUN_POLL = 0.2
#: What a chat reads after ``/new``.
NEW_SESSION_REPLY = "Started a new conversation."
#: The chat storage collection of leases, and the prefix of the bot's lease key (``<prefix>:<bot id>``).
LEASES = "leases"
POLLER_LEASE = "telegram-poller"


class TelegramError(Exception):
    """The Bot API refused a call (``"ok": false``, or not a Bot API answer at all)."""

    def __init__(self, method: str, code: int, description: str, retry_after: float | None = None) -> None:
        self.method = method
        self.code = code
        self.description = description
        self.retry_after = retry_after
        hint = {
            401: " (the bot token was refused: check [service.chat.telegram] token, or the variable"
            " named by token_env)",
            404: " (no such bot or method: check the bot token and [service.chat.telegram] base_url)",
        }.get(code, "")
        super().__init__(f"Telegram {method}: {code} {description}{hint}")

    @property
    def transient(self) -> bool:
        """Worth retrying: flood control (429), another poller (409) or a server error (5xx)."""
        return self.code in (409, 429) or self.code >= 500


class BotApi:
    """A minimal Bot API client: one method call in, its ``result`` out, or :class:`TelegramError`."""

    def __init__(self, base_url: str, token: str) -> None:
        self._client = httpx.AsyncClient(base_url=f"{base_url.rstrip('/')}/bot{token}/", timeout=CALL_TIMEOUT)

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float = CALL_TIMEOUT
    ) -> Any:
        """POST ``params`` as JSON to ``method``; raises ``httpx.TransportError`` on network errors."""
        response = await self._client.post(method, json=dict(params or {}), timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "ok" not in body:
            raise TelegramError(
                method, response.status_code, f"HTTP {response.status_code} without a Bot API answer"
            )
        if body["ok"]:
            return body.get("result")
        parameters = body.get("parameters") or {}
        raise TelegramError(
            method,
            int(body.get("error_code") or response.status_code),
            str(body.get("description") or ""),
            parameters.get("retry_after"),
        )

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()


class TelegramChannel(Channel):
    """Talks to Telegram users as a bot; see the module docstring for the delivery guarantees."""

    name = "telegram"
    settings_class = TelegramSettings
    max_length = 4096
    chat: ChatService
    settings: TelegramSettings

    def __init__(self, chat: ChatService, settings: TelegramSettings) -> None:
        super().__init__(chat, settings)
        self.log = chat.context.logger
        self._api: BotApi | None = None
        self._bot_id = ""
        self._username = ""
        #: Updates waiting for their chat's worker, per chat: (message, taken up after a restart).
        self._queues: dict[str, deque[tuple[ChannelMessage, bool]]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._typing: dict[str, asyncio.Task[None]] = {}
        #: Who polls the bot; made once the bot's id is known.
        self.lease: LeaderLease | None = None
        #: Whether this worker polls now (it holds the lease and has not lost it).
        self._leading = False
        #: The ``getUpdates`` call in flight, cancelled when the lease is lost.
        self._fetch: asyncio.Task[Any] | None = None

    @property
    def api(self) -> BotApi:
        """The Bot API client, while the channel runs."""
        if self._api is None:
            raise RuntimeError("the Telegram channel is not running")
        return self._api

    # ------------------------------------------------------------------ receiving

    async def run(self) -> None:
        """Poll and answer (or stand by) until cancelled; a refused token ends it with :class:`TelegramError`.

        The Bot API client is there from the start, standing by too, so that
        ``chat.deliver`` sends from every worker.
        """
        # The token is part of every Bot API URL, so of httpx's request log lines: the
        # runtime scrubs it (a ``token`` / ``token_env`` setting) from every log record.
        self._api = BotApi(self.settings.base_url, self._token())
        try:
            me = await self._call("getMe")
            self._bot_id, self._username = str(me["id"]), str(me.get("username") or "")
            self.lease = LeaderLease(
                self.chat.storage,
                f"{POLLER_LEASE}:{self._bot_id}",
                ttl=self.settings.leader_ttl,
                collection=LEASES,
            )
            while True:
                await self._stand_by(self.lease)
                await self._lead(self.lease)
        except TelegramError as exc:
            self.log.error("telegram: %s", exc)
            raise
        finally:
            await self._stop_answering()
            await self._release()
            await self._api.aclose()
            self._api = None

    def _token(self) -> str:
        token = self.settings.token or self.chat.context.env.get(self.settings.token_env)
        if not token:
            raise ValueError(
                "[service.chat.telegram]: no bot token: set token, or the environment variable"
                f" {self.settings.token_env}"
            )
        return token

    # ------------------------------------------------------------------ leading

    async def _stand_by(self, lease: LeaderLease) -> None:
        """Return once this worker holds the bot's lease, trying every ``renew_every`` seconds."""
        told = False
        while True:
            try:
                if await lease.acquire():
                    return
                if not told:
                    self.log.info(
                        "telegram: bot @%s is polled by worker %s; worker %s stands by",
                        self._username,
                        await lease.holder(),
                        lease.owner,
                    )
                    told = True
            except Exception as exc:  # the store: try again, as a standby would anyway
                self.log.warning(
                    "telegram: taking the lease of bot @%s failed (%r); retrying", self._username, exc
                )
            await asyncio.sleep(lease.renew_every)

    async def _lead(self, lease: LeaderLease) -> None:
        """Take up, poll and answer while ``lease`` is held; once it is lost, stop answering and return."""
        self.log.info(
            "telegram: worker %s leads bot @%s: it polls %s",
            lease.owner,
            self._username,
            self.settings.base_url,
        )
        self._leading = True
        poller = asyncio.create_task(self._take_up_and_poll(), name=f"telegram poller @{self._username}")
        keeper = asyncio.create_task(self._keep(lease), name=f"telegram lease @{self._username}")
        try:
            await asyncio.wait([poller, keeper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._leading = False
            keeper.cancel()
            if self._fetch is not None:  # stop polling now; a batch being stored is stored
                self._fetch.cancel()
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # a stop: the poller ends at once
                poller.cancel()
            await asyncio.gather(poller, keeper, return_exceptions=True)
        error = poller.exception() if not poller.cancelled() else None
        if error is not None:
            raise error
        why = keeper.result() if not keeper.cancelled() else "?"
        await self._stop_answering()
        self.log.info(
            "telegram: worker %s lost the lease of bot @%s (%s); it stands by",
            lease.owner,
            self._username,
            why,
        )

    async def _keep(self, lease: LeaderLease) -> str:
        """Renew ``lease`` every ``renew_every`` seconds; return why it was lost.

        A renewal the store fails is retried; the lease is given up when too
        little of it is left to try again, before a standby can take it.
        """
        while True:
            await asyncio.sleep(lease.renew_every)
            try:
                if await lease.renew():
                    continue
                return "another worker took it"
            except Exception as exc:
                if lease.remaining <= lease.renew_every:
                    return f"it could not be renewed in time: {exc!r}"
                self.log.warning(
                    "telegram: renewing the lease of bot @%s failed (%r); retrying", self._username, exc
                )

    async def _release(self) -> None:
        """Give the lease up on a stop, so that a standby worker takes over at its next try."""
        lease = self.lease
        if lease is None or lease.expires is None:
            return
        try:
            if await lease.release():
                self.log.info(
                    "telegram: worker %s released the lease of bot @%s", lease.owner, self._username
                )
        except Exception as exc:  # it expires on its own
            self.log.warning("telegram: releasing the lease of bot @%s failed (%r)", self._username, exc)

    async def _stop_answering(self) -> None:
        """Cancel the chat workers; their updates stay pending for whoever leads next."""
        tasks = [*self._workers, *self._typing.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A worker cancelled before it ran never reached its ``finally``.
        self._queues.clear()
        self._typing.clear()

    async def _take_up_and_poll(self) -> None:
        await self._poll(await self._take_up())

    # ------------------------------------------------------------------ polling

    async def _take_up(self) -> int:
        """Queue the updates a stop or crash left unanswered; return the offset to poll from."""
        storage = self.chat.storage
        state = await storage.get(STATE, self._state_key)
        offset = int(state.value["offset"]) if state is not None else 0
        left = await storage.list(PENDING, prefix=f"{self._bot_id}:")
        for record in left:
            update = record.value["update"]
            offset = max(offset, update["update_id"] + 1)
            self._queue(self._inbound(update), taken_up=True)
        if left:
            self.log.warning("telegram: taking up %d update(s) left unanswered", len(left))
            await storage.put(STATE, self._state_key, {"offset": offset})
        return offset

    async def _poll(self, offset: int) -> None:
        """Fetch, store and queue batches while leading (a lost lease cancels the call in flight)."""
        storage = self.chat.storage
        timeout = self.settings.poll_timeout
        while self._leading:
            params = {"offset": offset, "timeout": timeout}
            self._fetch = asyncio.create_task(self._call("getUpdates", params, timeout=timeout + POLL_SLACK))
            try:
                updates = await self._fetch
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if self._leading or (current is not None and current.cancelling()):
                    raise
                return  # the lease was lost: only the call was cancelled
            finally:
                self._fetch = None
            if not updates:
                continue
            taken = []
            for update in sorted(updates, key=lambda u: int(u["update_id"])):
                # A server ignoring the offset must not make the bot answer a message twice.
                if update["update_id"] < offset:
                    continue
                if not _is_text_message(update):
                    kinds = sorted(set(update) - {"update_id"})
                    self.log.debug("telegram: update %s (%s) is skipped", update["update_id"], kinds)
                    continue
                await storage.put(PENDING, self._pending_key(update["update_id"]), {"update": update})
                taken.append(update)
            offset = max(offset, max(int(u["update_id"]) for u in updates) + 1)
            await storage.put(STATE, self._state_key, {"offset": offset})
            if not self._leading:  # lost while storing: the next leader takes the batch up
                return
            for update in taken:
                self._queue(self._inbound(update), taken_up=False)

    def _inbound(self, update: Mapping[str, Any]) -> ChannelMessage:
        """The channel message of a text-message update."""
        message = update["message"]
        chat, sender = message["chat"], message.get("from") or {}
        name = " ".join(filter(None, (sender.get("first_name"), sender.get("last_name"))))
        # Replies in ordinary groups carry a thread id too; only forum topics are separate chats.
        thread = message.get("message_thread_id") if message.get("is_topic_message") else None
        return ChannelMessage(
            channel=self.name,
            chat_id=str(chat["id"]),
            principal=Principal(self.name, str(sender.get("id", chat["id"])), name or sender.get("username")),
            message=Message.of("user", message["text"]),
            thread_id=str(thread) if thread is not None else None,
            metadata={
                "update_id": update["update_id"],
                "message_id": message["message_id"],
                "chat_type": chat.get("type"),
                "username": sender.get("username"),
            },
        )

    def _queue(self, inbound: ChannelMessage, *, taken_up: bool) -> None:
        """Hand ``inbound`` to its chat's worker, starting one if the chat has none."""
        key = _chat_key(inbound)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            task = asyncio.create_task(self._work(key, queue), name=f"telegram chat {key}")
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        queue.append((inbound, taken_up))

    async def _work(self, key: str, queue: deque[tuple[ChannelMessage, bool]]) -> None:
        try:
            while queue:
                inbound, taken_up = queue.popleft()
                update_id = inbound.metadata["update_id"]
                try:
                    if taken_up:
                        await self._answer_again(inbound)
                    else:
                        await self._answer(inbound)
                except Exception:
                    self.log.exception(
                        "telegram: update %s of chat %s could not be answered; it is dropped",
                        update_id,
                        inbound.chat_id,
                    )
                    await self._forget(update_id)
                # answered: deliver() forgot it as soon as the reply was sent
        finally:
            del self._queues[key]

    async def _forget(self, update_id: int) -> None:
        """Delete the pending record of an answered (or dropped) update, even if a stop cancels
        the worker meanwhile: the worker waits for the delete before it ends, so a standby
        taking the lead over never finds the record of a reply already sent, and sends it again."""
        delete = asyncio.ensure_future(self.chat.storage.delete(PENDING, self._pending_key(update_id)))
        try:
            await asyncio.shield(delete)
        except asyncio.CancelledError:
            await delete
            raise

    # ------------------------------------------------------------------ answering

    async def _answer(self, inbound: ChannelMessage) -> None:
        """Run ``inbound`` through the chat main path (``/new`` starts a fresh session instead)."""
        command = inbound.message.text.strip().lower()
        if command == "/new" or (self._username and command == f"/new@{self._username.lower()}"):
            await self.chat.new_session(self.name, inbound.chat_id, inbound.thread_id)
            await self.deliver(inbound, [NEW_SESSION_REPLY])
            return
        key = _chat_key(inbound)
        self._typing[key] = asyncio.create_task(self._show_typing(inbound))
        try:
            await self.chat.handle(inbound, self)
        finally:
            self._stop_typing(key)

    async def _answer_again(self, inbound: ChannelMessage) -> None:
        """Answer an update taken before a stop or crash without running its message twice."""
        session_id = await self._session_holding(inbound)
        if session_id is None:  # the message never reached a session
            await self._answer(inbound)
            return
        reply = await self._stored_reply(session_id, inbound.metadata["update_id"])
        if reply is None:
            self.log.warning(
                "telegram: the interrupted turn of update %s in session %s has no reply",
                inbound.metadata["update_id"],
                session_id,
            )
            reply = Message.of("assistant", self.chat.settings.failed_reply)
        else:
            plugins = self.chat.context.plugins
            role = await plugins.resolve("chat_principal_role", principal=inbound.principal, inbound=inbound)
            inbound = attrs.evolve(inbound, principal=attrs.evolve(inbound.principal, role=role))
            reply = await plugins.pipeline(
                "chat_outbound", inbound=inbound, session_id=session_id, reply=reply
            )
        await self.deliver(inbound, split_text(reply.text, self.max_length))

    async def _session_holding(self, inbound: ChannelMessage) -> str | None:
        """The session of this chat whose history holds the message of ``inbound``, if any."""
        where = {"channel": self.name, "chat_id": inbound.chat_id, "thread_id": inbound.thread_id}
        update_id = inbound.metadata["update_id"]
        sessions = self.chat.context.session
        for info in await sessions.list_sessions(kind="chat"):
            mine = all(info.metadata.get(k) == v for k, v in where.items())
            if mine and _position(await sessions.history(info.session_id), update_id) is not None:
                return info.session_id
        return None

    async def _stored_reply(self, session_id: str, update_id: int) -> Message | None:
        """The reply to the stored message, waiting for the re-run of an interrupted turn."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RERUN_WAIT
        rerun = self.chat.context.config.turns.interrupted == "rerun"
        while True:
            reply = _reply_to(await self.chat.context.session.history(session_id), update_id)
            if reply is not None or not rerun or loop.time() >= deadline:
                return reply
            await asyncio.sleep(RERUN_POLL)

    async def deliver(self, inbound: ChannelMessage, parts: Sequence[str]) -> None:
        """Send each part with ``sendMessage``; in groups the first part replies to the user's message.

        Empty parts are not sent (Telegram refuses empty messages). Network
        and server errors are retried; a refusal raises :class:`TelegramError`.
        """
        self._stop_typing(_chat_key(inbound))
        in_group = inbound.metadata.get("chat_type") != "private"
        reply_to = inbound.metadata.get("message_id") if in_group else None
        for part in parts:
            if not part.strip():
                continue
            params: dict[str, Any] = {**_target(inbound), "text": part}
            if reply_to is not None:
                params["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
                reply_to = None
            await self._call("sendMessage", params)
        update_id = inbound.metadata.get("update_id")
        if update_id is not None:  # sent: from now on a stop must not leave it pending
            await self._forget(update_id)

    async def _show_typing(self, inbound: ChannelMessage) -> None:
        """Keep "typing…" on while the turn runs (best effort: failures are only logged)."""
        params = {**_target(inbound), "action": "typing"}
        while True:
            try:
                await self.api.call("sendChatAction", params)
            except (httpx.TransportError, TelegramError) as exc:
                self.log.debug("telegram: sendChatAction failed: %s", exc)
            await asyncio.sleep(TYPING_EVERY)

    def _stop_typing(self, key: str) -> None:
        task = self._typing.pop(key, None)
        if task is not None:
            task.cancel()

    # ------------------------------------------------------------------ Bot API calls

    async def _call(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float = CALL_TIMEOUT
    ) -> Any:
        """Call ``method`` until it succeeds or is refused for good.

        Network errors and transient refusals (flood control, another poller,
        server errors) are logged and retried after ``retry_delay`` seconds
        (or the ``retry_after`` Telegram asks for); other refusals raise.
        """
        while True:
            try:
                return await self.api.call(method, params, timeout=timeout)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                wait = self.settings.retry_delay
            except TelegramError as exc:
                if not exc.transient:
                    raise
                problem, wait = str(exc), exc.retry_after or self.settings.retry_delay
            self.log.warning("telegram: %s failed (%s); retrying in %g s", method, problem, wait)
            await asyncio.sleep(wait)

    @property
    def _state_key(self) -> str:
        return f"offset:{self._bot_id}"

    def _pending_key(self, update_id: int) -> str:
        return f"{self._bot_id}:{update_id:015d}"


def _is_text_message(update: Mapping[str, Any]) -> bool:
    """Whether the update is a new text message (not a sticker, an edit, a join …)."""
    message = update.get("message")
    return isinstance(message, Mapping) and isinstance(message.get("text"), str)


def _chat_key(inbound: ChannelMessage) -> str:
    return chat_key(inbound.channel, inbound.chat_id, inbound.thread_id)


def _target(inbound: ChannelMessage) -> dict[str, Any]:
    """``chat_id`` (and ``message_thread_id`` in a forum topic) of a reply to ``inbound``."""
    target: dict[str, Any] = {"chat_id": inbound.chat_id}
    if inbound.thread_id is not None:
        target["message_thread_id"] = int(inbound.thread_id)
    return target


def _position(history: Sequence[Message], update_id: int) -> int | None:
    """Where the user message of ``update_id`` is in ``history`` (searched from the end)."""
    for index in range(len(history) - 1, -1, -1):
        message = history[index]
        where = message.metadata.get(CHAT_METADATA)
        if (
            message.role == "user"
            and isinstance(where, Mapping)
            and (where.get("metadata") or {}).get("update_id") == update_id
        ):
            return index
    return None


def _reply_to(history: Sequence[Message], update_id: int) -> Message | None:
    """The reply to the message of ``update_id``: the next assistant message that calls no tool."""
    position = _position(history, update_id)
    if position is None:
        return None
    for message in history[position + 1 :]:
        if message.role == "user":
            break
        if message.role == "assistant" and not message.tool_calls:
            return message
    return None
