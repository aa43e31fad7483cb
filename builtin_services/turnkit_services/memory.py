"""The memory service. Memories scoped to the agent, a session or a principal, with search.

Its main path and actions arrive with their own issue; today it registers
itself so that discovery, start order and `turnkit plugins` see it.
"""

from turnkit_hookspecs import Service


class MemoryService(Service):
    """Memories scoped to the agent, a session or a principal, with search."""

    name = "memory"
