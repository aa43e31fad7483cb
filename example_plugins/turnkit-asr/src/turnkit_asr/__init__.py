"""turnkit-asr: voice messages turned into text, offline, before the model reads them.

Registered through the ``turnkit.plugins`` entry point ``asr`` as
:class:`ASRPlugin` (one instance per agent, configured from ``[plugin.asr]``,
see :class:`~turnkit_asr.settings.ASRSettings`). It implements two pipeline
points of the turnkit contract:

* ``turn_inbound`` -- each audio attachment of the inbound message becomes a
  text block: the transcript after ``prefix``, or a note saying why there is
  none (:mod:`turnkit_asr.transcriber` explains which problems are notes and
  which fail the turn);
* ``turn_prompt`` -- voice messages of earlier turns, which the history holds
  as received, are shown to the model as their stored transcripts.

Both run first (``tryfirst``) so that other plugins on those points — a
redaction, a command parser — see the transcript, not the audio.
Recognition is pocketsphinx with the US-English model inside its wheel,
in worker processes (:mod:`turnkit_asr.recognizer`): nothing is downloaded
and the agent's event loop keeps running while a message is decoded. The
workers belong to the agent's plugin and end when the agent stops
(:meth:`ASRPlugin.close`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import attrs
from turnkit_hookspecs import ExecutionContext, Message, Plugin, Prompt, hookimpl

from .audio import AudioError, read_wav
from .evaluation import synthesize, word_error_rate
from .recognizer import Recognizer, RecognizerError
from .settings import ASRSettings
from .transcriber import NAMESPACE, Transcriber, is_audio, note

try:
    __version__ = version("turnkit-asr")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"


class ASRPlugin(Plugin):
    """Transcribes the audio attachments of user messages; see the module docstring."""

    settings_class = ASRSettings
    settings: ASRSettings
    _transcriber: Transcriber | None = None

    # the contract allows ``async def`` here, though turnkit-hookspecs 0.1.3 types the method as sync
    async def configure(self, context: ExecutionContext) -> None:
        """Take the agent's store for transcripts; with ``phrases``, load the recognizer now.

        A phrase the recognizer cannot hear (a word missing from its
        dictionary) then stops the agent from starting, naming the phrase.
        Without phrases the recognizer starts with the first voice message,
        so an agent that never gets one never pays for it.
        """
        super().configure(context)
        recognizer = Recognizer(self.settings.phrases, self.settings.workers)
        if self.settings.phrases:
            try:
                await recognizer.start()
            except BaseException:
                await recognizer.aclose()  # a failed configure is never closed: end its threads here
                raise
        self._transcriber = Transcriber(self.settings, recognizer, context.storage(NAMESPACE))

    async def close(self) -> None:
        """End the recognizer's worker processes (the agent is stopping)."""
        if self._transcriber is not None:
            transcriber, self._transcriber = self._transcriber, None
            await transcriber.recognizer.aclose()

    @property
    def transcriber(self) -> Transcriber:
        """What rewrites messages, once the agent has configured the plugin."""
        if self._transcriber is None:
            raise RuntimeError("ASRPlugin is not configured: its agent has not started")
        return self._transcriber

    @hookimpl(tryfirst=True)
    async def turn_inbound(self, message: Message) -> Message | None:
        """Replace the inbound message's audio attachments by their transcripts."""
        return await self.transcriber.rewrite(message)

    @hookimpl(tryfirst=True)
    async def turn_prompt(self, prompt: Prompt) -> Prompt | None:
        """Show earlier voice messages of the history window by their transcripts too."""
        messages = []
        changed = False
        for message in prompt.messages:
            rewritten = await self.transcriber.rewrite(message)
            changed = changed or rewritten is not None
            messages.append(rewritten or message)
        return attrs.evolve(prompt, messages=messages) if changed else None


__all__ = [
    "ASRPlugin",
    "ASRSettings",
    "AudioError",
    "Recognizer",
    "RecognizerError",
    "Transcriber",
    "__version__",
    "is_audio",
    "note",
    "read_wav",
    "synthesize",
    "word_error_rate",
]
