"""The memory service: memories scoped to the agent, a session or a principal, with search.

Full-text search (the store's index, bm25 ranking) always; vector search
when a plugin answers ``memory_embed``; recall into the prompt when
``[service.memory] recall`` is on. See :mod:`turnkit_services.memory.service`.
"""

from .model import SCOPES, Memory, Scope
from .service import MemoryService
from .settings import MemorySettings

__all__ = ["SCOPES", "Memory", "MemoryService", "MemorySettings", "Scope"]
