"""The plugin: the agent's model is an OpenAI-compatible Chat Completions server."""

from __future__ import annotations

from urllib.parse import urlsplit

from turnkit_hookspecs import ExecutionContext, Message, Plugin, Prompt, ReplyStream, hookimpl

from .client import CompletionsClient
from .errors import MissingKeyError
from .names import FunctionNames
from .request import chat_request
from .settings import OpenAISettings


class OpenAIPlugin(Plugin):
    """Answers ``turn_reply`` with the model named in ``[plugin.openai]``, and ``model_names`` with it.

    The key is read once, at start, from the environment variable that
    ``api_key_env`` names; an agent whose key is missing does not start,
    rather than fail every turn later. A server on this machine may go
    without one. A server's error quoting the key reaches the turn's error
    and the log with ``[secret]`` in its place. The client's connections
    are kept from :meth:`configure` to :meth:`close`, the agent's life.
    """

    settings_class = OpenAISettings
    settings: OpenAISettings
    #: Made in :meth:`configure`, once the key is known; closed in :meth:`close`.
    _client: CompletionsClient | None = None

    def configure(self, context: ExecutionContext) -> None:
        """Find the key and prepare the client; a missing key stops the agent's start."""
        super().configure(context)
        settings = self.settings
        logger = context.logger.getChild("openai")
        headers = dict(settings.headers)
        key = context.env.get(settings.api_key_env) if settings.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
            if urlsplit(settings.base_url).scheme == "http" and not settings.loopback:
                logger.warning("the API key goes to %s unencrypted (http://)", settings.base_url)
        elif settings.api_key_env and not settings.loopback:
            raise MissingKeyError(
                f"api_key_env: the environment variable {settings.api_key_env} is not set (or empty); "
                f'set it to the key for {settings.base_url}, or set api_key_env = "" '
                "if that server takes no key"
            )
        self._client = CompletionsClient(settings, headers, logger, key)

    async def close(self) -> None:
        """Close the client's connections (the agent is stopping)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    @hookimpl
    def model_names(self) -> list[str]:
        """The one model this plugin asks for: ``[model] name`` may only name it."""
        return [self.settings.model]

    @hookimpl
    async def turn_reply(self, prompt: Prompt, stream: ReplyStream) -> Message:
        """Ask the server; stream when the settings say so or, by default, when someone listens."""
        if self._client is None:
            raise RuntimeError("the openai plugin has no client: its agent has not started, or has stopped")
        streaming = stream.active if self.settings.stream is None else self.settings.stream
        names = FunctionNames(tool.name for tool in prompt.tools)
        body = chat_request(prompt, self.settings, stream=streaming)
        return await self._client.complete(body, names, stream)
