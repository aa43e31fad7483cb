"""The chat service. Conversations over channels (terminal, HTTP, Telegram): the chat main path.

Its main path and actions arrive with their own issue; today it registers
itself so that discovery, start order and `turnkit plugins` see it.
"""

from turnkit_hookspecs import Service


class ChatService(Service):
    """Conversations over channels (terminal, HTTP, Telegram): the chat main path."""

    name = "chat"
