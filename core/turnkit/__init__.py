"""turnkit: a runtime for chat and task agents built on pluggy.

The runtime finds services (``turnkit.services``) and plugins
(``turnkit.plugins``) through entry points and dispatches the contract's
extension points (``turnkit_hookspecs``) by kind.

Names are imported on first use (PEP 562) so that ``turnkit --help``, which
imports this package, does not pay for pluggy, attrs and cattrs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Config": "config",
    "PluginsConfig": "config",
    "load_config": "config",
    "Dispatcher": "dispatch",
    "ConfigError": "errors",
    "DispatchError": "errors",
    "NoResolutionError": "errors",
    "PipelineError": "errors",
    "PluginLoadError": "errors",
    "RequiredPluginError": "errors",
    "ResolveError": "errors",
    "TurnkitError": "errors",
    "UnknownPointError": "errors",
    "Implementation": "registry",
    "PluginManager": "manager",
    "PluginRecord": "manager",
    "MemoryTraceSink": "tracing",
    "TraceRecord": "tracing",
    "TraceSink": "tracing",
    "trace_scope": "tracing",
}

__all__ = [
    "Config",
    "ConfigError",
    "DispatchError",
    "Dispatcher",
    "Implementation",
    "MemoryTraceSink",
    "NoResolutionError",
    "PipelineError",
    "PluginLoadError",
    "PluginManager",
    "PluginRecord",
    "PluginsConfig",
    "RequiredPluginError",
    "ResolveError",
    "TraceRecord",
    "TraceSink",
    "TurnkitError",
    "UnknownPointError",
    "load_config",
    "trace_scope",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'turnkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .config import Config, PluginsConfig, load_config
    from .dispatch import Dispatcher
    from .errors import (
        ConfigError,
        DispatchError,
        NoResolutionError,
        PipelineError,
        PluginLoadError,
        RequiredPluginError,
        ResolveError,
        TurnkitError,
        UnknownPointError,
    )
    from .manager import PluginManager, PluginRecord
    from .registry import Implementation
    from .tracing import MemoryTraceSink, TraceRecord, TraceSink, trace_scope
