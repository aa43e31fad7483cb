"""The data model every service and plugin exchanges.

All classes are frozen, slotted attrs classes, and their container fields
(``metadata``, tool call ``args``, a record's ``value`` …) are deep-frozen
when a value is built (:mod:`turnkit_hookspecs.frozen`), so that a value
handed to one plugin cannot be changed behind the back of the next, of the
store or of the caller; pipelines return new values instead
(``attrs.evolve``). JSON (un)structuring lives in
:mod:`turnkit_hookspecs.convert`; the ``type`` tag of each block and source
is the class's ``TYPE``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeAlias

from attrs import field, frozen

from .frozen import EMPTY, FrozenDict, freeze, freeze_mapping

Role: TypeAlias = Literal["user", "assistant", "system", "tool"]
Initiator: TypeAlias = Literal["user", "extension", "system", "agent"]
Level: TypeAlias = Literal["ok", "warn", "critical"]
#: ``queued``: accepted and stored, waiting for the session's earlier turns.
TurnStatus: TypeAlias = Literal["queued", "running", "completed", "denied", "failed", "interrupted"]


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


# ---------------------------------------------------------------- sources


@frozen
class Base64Source:
    """Binary content carried inline, base64-encoded."""

    TYPE: ClassVar[str] = "base64"
    media_type: str
    data: str


@frozen
class UrlSource:
    """Binary content referenced by URL (``https:``, ``file:`` …)."""

    TYPE: ClassVar[str] = "url"
    url: str
    media_type: str | None = None


Source: TypeAlias = Base64Source | UrlSource


# ---------------------------------------------------------------- blocks


@frozen
class TextBlock:
    """Plain text."""

    TYPE: ClassVar[str] = "text"
    text: str


@frozen
class ImageBlock:
    """An image, inline or by URL."""

    TYPE: ClassVar[str] = "image"
    source: Source
    alt: str | None = None


@frozen
class DocumentBlock:
    """A document (PDF, text file …) the model may read."""

    TYPE: ClassVar[str] = "document"
    source: Source
    title: str | None = None


@frozen
class AttachmentBlock:
    """A file or a directory handed along with a message (audio, an archive …)."""

    TYPE: ClassVar[str] = "attachment"
    kind: Literal["file", "directory"]
    name: str
    source: Source | None = None
    path: str | None = None


@frozen
class ReasoningBlock:
    """The model's reasoning, kept apart from the visible answer."""

    TYPE: ClassVar[str] = "reasoning"
    text: str


@frozen
class ToolCallBlock:
    """The model asks for a tool (a service action) to be run."""

    TYPE: ClassVar[str] = "tool_call"
    tool_call_id: str
    name: str
    args: FrozenDict[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)


@frozen
class ToolOutputBlock:
    """The result of a tool call, returned to the model."""

    TYPE: ClassVar[str] = "tool_output"
    tool_call_id: str
    output: str
    is_error: bool = False
    #: Images the tool returned besides its text (a screenshot, a chart), for models that take them.
    images: tuple[ImageBlock, ...] = field(default=(), converter=_tuple)


Block: TypeAlias = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | AttachmentBlock
    | ReasoningBlock
    | ToolCallBlock
    | ToolOutputBlock
)


# ---------------------------------------------------------------- messages


@frozen
class Message:
    """One message of a session's history.

    ``id`` is given by the store when the message is written; ``author`` names
    the principal, agent or extension that produced it. ``metadata`` is
    read-only (a :class:`~turnkit_hookspecs.frozen.FrozenDict`): a pipeline
    changes it by returning ``attrs.evolve(message, metadata={**message.metadata, ...})``.
    """

    role: Role
    blocks: tuple[Block, ...] = field(converter=_tuple)
    id: str | None = None
    author: str | None = None
    metadata: FrozenDict[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)

    @classmethod
    def of(cls, role: Role, text: str, **kwargs: Any) -> Message:
        """A message holding one text block: ``Message.of("user", "hi")``."""
        return cls(role, (TextBlock(text),), **kwargs)

    @property
    def text(self) -> str:
        """The text blocks joined by newlines (other blocks are skipped)."""
        return "\n".join(b.text for b in self.blocks if isinstance(b, TextBlock))

    @property
    def tool_calls(self) -> tuple[ToolCallBlock, ...]:
        """The tool calls this message asks for."""
        return tuple(b for b in self.blocks if isinstance(b, ToolCallBlock))


#: The schema of a tool that takes no arguments.
_NO_PARAMETERS: FrozenDict[str, Any] = FrozenDict({"type": "object", "properties": {}})


@frozen
class ToolSpec:
    """A tool offered to the model: a service action or a plugin's tool, with a JSON schema.

    ``plugin`` is filled in by the runtime: ``None`` for a service's action,
    else the plugin whose ``turn_tools`` offered it, which is the one
    ``tool_call`` asks to run it.
    """

    name: str
    description: str
    parameters: FrozenDict[str, Any] = field(default=_NO_PARAMETERS, converter=freeze_mapping, hash=False)
    plugin: str | None = None


@frozen
class Prompt:
    """What the model is asked: the assembled messages and the tools on offer."""

    messages: tuple[Message, ...] = field(converter=_tuple)
    tools: tuple[ToolSpec, ...] = field(default=(), converter=_tuple)


# ---------------------------------------------------------------- sessions


@frozen
class Deny:
    """A guard's refusal. ``plugin`` is filled in by the runtime."""

    reason: str
    plugin: str | None = None


@frozen
class ForkOptions:
    """How to fork a child session.

    ``initial_message`` starts the child's first turn; ``inherit_context``
    copies the parent's pending contributed context into the child.
    ``after_turn`` forks at an earlier point: the child sees the history as
    it was when that finished turn of the session ended (its reply, or its
    message if it has none), instead of as it is now; a conversation edited
    at an earlier message branches there. (Contract 0.1.5.)
    """

    reason: str = ""
    initial_message: Message | None = None
    inherit_context: bool = True
    metadata: FrozenDict[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)
    after_turn: str | None = None


@frozen
class ContextWindowState:
    """How full the model's context window is for a session."""

    current_tokens: int
    max_tokens: int
    ratio: float
    level: Level

    WARN_AT: ClassVar[float] = 0.6
    CRITICAL_AT: ClassVar[float] = 0.8

    @classmethod
    def measure(cls, current_tokens: int, max_tokens: int) -> ContextWindowState:
        """Compute ratio and level: ok below 60 %, warn below 80 %, else critical."""
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        ratio = current_tokens / max_tokens
        level: Level = "ok" if ratio < cls.WARN_AT else "warn" if ratio < cls.CRITICAL_AT else "critical"
        return cls(current_tokens, max_tokens, ratio, level)


@frozen
class TurnInfo:
    """One turn of a session, as effects and plugins see it.

    ``origin`` says where the turn's message came from when a channel
    received it (see :class:`Origin`); ``None`` for any other turn.
    """

    turn_id: str
    session_id: str
    number: int
    initiator: Initiator
    initiator_id: str | None = None
    status: TurnStatus = "running"
    error: str | None = None
    origin: Origin | None = None


@frozen
class SessionInfo:
    """A session's identity and place in its tree."""

    session_id: str
    kind: str
    status: Literal["active", "closed", "merged", "abandoned"] = "active"
    parent_session_id: str | None = None
    root_session_id: str | None = None
    fork_point: int | None = None
    metadata: FrozenDict[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)


@frozen
class TurnResult:
    """How a turn ended, as the caller of ``context.session.turn`` sees it.

    ``reply`` is set for a completed turn, ``deny`` for a denied one;
    ``turn.error`` says why a turn failed or was interrupted.
    """

    turn: TurnInfo
    reply: Message | None = None
    deny: Deny | None = None


# ---------------------------------------------------------------- actions


@frozen
class ActionResult:
    """What ``context.invoke("service.action", payload)`` returns.

    An exception inside the action does not propagate to the caller: it comes
    back here with ``ok=False`` and ``error`` naming the action and the
    exception, so one failing action never takes the host down. ``value``
    is deep-frozen like every container of the model, so a caller cannot
    change the state of the service that returned it.
    """

    action: str
    ok: bool
    value: Any = field(default=None, converter=freeze)
    error: str | None = None


# ---------------------------------------------------------------- chat


@frozen
class Principal:
    """Who speaks on a channel: the channel's own id for them, and what the agent makes of them.

    ``role`` is filled in by the ``chat_principal_role`` resolve point
    (``None`` when nobody answered).
    """

    channel: str
    id: str
    name: str | None = None
    role: str | None = None


@frozen
class ChannelMessage:
    """A message as a chat channel received it, before it becomes a session turn.

    ``chat_id`` is the conversation on the channel (a Telegram chat, an HTTP
    client's conversation key, the terminal); ``thread_id`` a thread inside
    it, if the channel has them.
    """

    channel: str
    chat_id: str
    principal: Principal
    message: Message
    thread_id: str | None = None
    metadata: FrozenDict[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)


@frozen
class Origin:
    """Where a turn's message came from: the channel, the chat (and thread) and who sent it.

    The chat service passes it with ``SessionAccess.turn(..., origin=...)``;
    the runtime stores it with the turn, so whichever process runs the turn
    hands it on as ``TurnInfo.origin``. A plugin thus knows a turn came from
    a channel, and from whom, without reading message metadata (which a
    forwarded or forked message keeps, and anyone may write). ``metadata``
    is the channel's own (the ``ChannelMessage``'s). (Contract 0.1.5.)
    """

    channel: str
    chat_id: str
    principal: Principal
    thread_id: str | None = None
    metadata: FrozenDict[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)

    @classmethod
    def of(cls, inbound: ChannelMessage) -> Origin:
        """The origin of a channel's message."""
        return cls(inbound.channel, inbound.chat_id, inbound.principal, inbound.thread_id, inbound.metadata)


# ---------------------------------------------------------------- service storage


@frozen
class StoredRecord:
    """One record of a service's storage (``context.storage(namespace)``).

    ``value`` is the JSON object stored; ``text`` the optional text indexed
    for full-text search; ``version`` counts writes (1 for the first), for
    compare-and-set; ``updated`` is a UNIX time; ``score`` is set by
    ``search`` (higher is a better match).
    """

    collection: str
    key: str
    value: FrozenDict[str, Any] = field(converter=freeze_mapping, hash=False)
    version: int = 1
    text: str | None = None
    updated: float = 0.0
    score: float | None = None


__all__ = [
    "ActionResult",
    "AttachmentBlock",
    "Base64Source",
    "Block",
    "ChannelMessage",
    "ContextWindowState",
    "Deny",
    "DocumentBlock",
    "ForkOptions",
    "ImageBlock",
    "Initiator",
    "Level",
    "Message",
    "Principal",
    "Prompt",
    "ReasoningBlock",
    "Role",
    "SessionInfo",
    "Source",
    "StoredRecord",
    "TextBlock",
    "ToolCallBlock",
    "ToolOutputBlock",
    "ToolSpec",
    "TurnInfo",
    "TurnResult",
    "TurnStatus",
    "UrlSource",
]
