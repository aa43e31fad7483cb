"""turnkit's plugin contract.

Plugin authors need only this package::

    from turnkit_hookspecs import Deny, Message, hookimpl

The contract is versioned on its own (semver); pin it as
``turnkit-hookspecs>=0.1.7,<0.2``.
"""

from importlib.metadata import PackageNotFoundError, version

from . import session_points, turn_points
from .context import (
    AsgiApp,
    ChunkListener,
    Dispatch,
    ExecutionContext,
    IdempotencyKeyReused,
    ReplyStream,
    SessionAccess,
    SessionExtensionContext,
    Storage,
    StorageConflict,
    WebApp,
    current_turn,
)
from .convert import PayloadError, converter, from_json, structure, to_json, unstructure
from .frozen import FrozenDict, FrozenList
from .kinds import Kind, PointKind, effect, guard, kind_of, pipeline, resolve
from .markers import PROJECT_NAME, hookimpl, hookspec
from .model import (
    ActionResult,
    AttachmentBlock,
    Base64Source,
    Block,
    ChannelMessage,
    ContextWindowState,
    Deny,
    DocumentBlock,
    ForkOptions,
    ImageBlock,
    Initiator,
    Level,
    Message,
    Origin,
    Principal,
    Prompt,
    ReasoningBlock,
    SessionInfo,
    Source,
    StoredRecord,
    TextBlock,
    ToolCallBlock,
    ToolOutputBlock,
    ToolSpec,
    TurnInfo,
    TurnResult,
    TurnStatus,
    UrlSource,
)
from .plugin import Configured, Plugin
from .service import ActionSpec, Service, action, action_specs, actions_of

#: The modules declaring the runtime's own extension points.
CORE_HOOKSPECS = (turn_points, session_points)

try:
    __version__ = version("turnkit-hookspecs")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CORE_HOOKSPECS",
    "PROJECT_NAME",
    "ActionResult",
    "ActionSpec",
    "AsgiApp",
    "AttachmentBlock",
    "Base64Source",
    "Block",
    "ChannelMessage",
    "ChunkListener",
    "Configured",
    "ContextWindowState",
    "Deny",
    "Dispatch",
    "DocumentBlock",
    "ExecutionContext",
    "ForkOptions",
    "FrozenDict",
    "FrozenList",
    "IdempotencyKeyReused",
    "ImageBlock",
    "Initiator",
    "Kind",
    "Level",
    "Message",
    "Origin",
    "PayloadError",
    "Plugin",
    "PointKind",
    "Principal",
    "Prompt",
    "ReasoningBlock",
    "ReplyStream",
    "Service",
    "SessionAccess",
    "SessionExtensionContext",
    "SessionInfo",
    "Source",
    "Storage",
    "StorageConflict",
    "StoredRecord",
    "TextBlock",
    "ToolCallBlock",
    "ToolOutputBlock",
    "ToolSpec",
    "TurnInfo",
    "TurnResult",
    "TurnStatus",
    "UrlSource",
    "WebApp",
    "__version__",
    "action",
    "action_specs",
    "actions_of",
    "converter",
    "current_turn",
    "effect",
    "from_json",
    "guard",
    "hookimpl",
    "hookspec",
    "kind_of",
    "pipeline",
    "resolve",
    "structure",
    "to_json",
    "unstructure",
]
