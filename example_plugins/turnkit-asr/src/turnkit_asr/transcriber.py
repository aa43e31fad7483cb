"""Messages with voice attachments rewritten as text the model can read.

Each audio attachment becomes a text block: ``prefix`` + the transcript, or a
note in brackets saying why there is none. The notes cover everything the
sender controls — a format other than WAV, a damaged file, a recording over
``max_seconds``, audio given by URL or by a path on the agent's host, no
speech heard — because a turnkit pipeline that raises fails the whole turn:
the sender would get no answer at all, where the model, reading the note,
can tell them what to send instead. Only a failure of the recognizer itself
(:class:`~turnkit_asr.recognizer.RecognizerError`) or of the store
propagates, failing the turn; the inbound message stays stored as received.

Transcripts are kept in the agent's store, keyed by the SHA-256 of the
audio. The runtime stores the inbound message as received, so the history of
later turns holds the audio again, not its transcript; the plugin rewrites
those messages too (``turn_prompt``), from the store, without decoding again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import PurePosixPath
from typing import TypeGuard

import attrs
from turnkit_hookspecs import AttachmentBlock, Block, Message, Storage, TextBlock, UrlSource

from .audio import AudioError, read_wav
from .recognizer import Recognizer
from .settings import ASRSettings

#: The storage namespace and collection of the transcripts.
NAMESPACE = "asr"
COLLECTION = "transcripts"
#: Metadata key of a message this plugin rewrote: the names of the attachments it transcribed.
MARK = "asr"
#: File name endings taken for audio when the media type does not say so.
AUDIO_SUFFIXES = frozenset(
    {".wav", ".wave", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".flac", ".webm", ".weba", ".amr"}
)


def is_audio(block: Block) -> TypeGuard[AttachmentBlock]:
    """Whether ``block`` is an audio file: an ``audio/*`` media type, or an audio file name."""
    if not isinstance(block, AttachmentBlock) or block.kind != "file":
        return False
    media_type = block.source.media_type if block.source is not None else None
    if media_type and media_type.lower().startswith("audio/"):
        return True
    return PurePosixPath(block.name).suffix.lower() in AUDIO_SUFFIXES


def attachment_bytes(block: AttachmentBlock) -> bytes:
    """The audio carried inline by ``block``; :class:`AudioError` for anything else.

    URLs (``file:`` included) and host paths are not read: they come from the
    sender, and reading them would let anyone who can message the agent make
    it fetch addresses on its network or open files on its disk.
    """
    source = block.source
    if isinstance(source, UrlSource):
        raise AudioError("audio given by URL is not fetched; send the file itself")
    if source is None:
        if block.path is not None:
            raise AudioError("audio given as a path on the agent's host is not read; send the file itself")
        raise AudioError("the attachment holds no data")
    try:
        return base64.b64decode(source.data, validate=True)
    except binascii.Error as exc:
        raise AudioError(f"its data is not valid base64 ({exc})") from exc


def note(name: str, reason: str) -> str:
    """The text standing for an attachment that was not transcribed."""
    return f"[voice message {name!r} not transcribed: {reason}]"


class Transcriber:
    """Rewrites messages for one agent: its settings, its store, its recognizer."""

    def __init__(self, settings: ASRSettings, recognizer: Recognizer, storage: Storage) -> None:
        self.settings = settings
        self.recognizer = recognizer
        self.storage = storage

    async def rewrite(self, message: Message) -> Message | None:
        """``message`` with its audio attachments as text, or ``None`` if it has none (or was done)."""
        if MARK in message.metadata or not any(is_audio(block) for block in message.blocks):
            return None
        blocks: list[Block] = []
        names: list[str] = []
        for block in message.blocks:
            if is_audio(block):
                if self.settings.keep_audio:
                    blocks.append(block)
                blocks.append(TextBlock(await self.text_for(block)))
                names.append(block.name)
            else:
                blocks.append(block)
        return attrs.evolve(message, blocks=blocks, metadata={**message.metadata, MARK: names})

    async def text_for(self, block: AttachmentBlock) -> str:
        """The transcript of ``block`` after the prefix, or a note saying why there is none."""
        try:
            data = attachment_bytes(block)
            transcript = await self.transcript(data)
        except AudioError as exc:
            return note(block.name, str(exc))
        if not transcript:
            heard = "none of the phrases this agent knows" if self.settings.phrases else "no speech"
            return note(block.name, f"{heard} was recognized")
        return f"{self.settings.prefix}{transcript}"

    async def transcript(self, data: bytes) -> str:
        """The words in the WAV file ``data``: from the store, else recognized and then stored."""
        key = hashlib.sha256(data).hexdigest()
        stored = await self.storage.get(COLLECTION, key)
        if stored is not None:
            return str(stored.value["transcript"])
        transcript = await self.recognizer.transcribe(read_wav(data, self.settings.max_seconds))
        await self.storage.put(COLLECTION, key, {"transcript": transcript})
        return transcript
