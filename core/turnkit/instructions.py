"""Instructions: the system prompt a turn's model gets first.

A turn's instructions are, in this order of precedence:

1. the session's own, set through ``SessionAccess.set_instructions`` (the
   HTTP API's ``PUT /api/sessions/{id}/instructions``, the OpenAI
   endpoint's ``system`` messages); ``""`` there means "none at all";
2. else the agent's: ``[agent] instructions``, or the text of
   ``[agent] instructions_file`` (read once, when the agent starts);
3. then the ``turn_instructions`` pipeline shapes the result.

Text left empty or blank means no instructions: the prompt then starts with
the history as before. Otherwise the prompt's first message is a ``system``
message marked ``{"instructions": true}`` in its metadata, ahead of any
summary, so plugins and models can tell it from the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs
from turnkit_hookspecs import Message

from .errors import ConfigError, TurnkitError
from .ranges import setting_error

if TYPE_CHECKING:
    from .config import Config

#: Metadata key marking the prompt's instructions message.
MARK = "instructions"

#: The longest instructions accepted, in characters (a system prompt, not a document store).
MAX_CHARS = 1_000_000


def problem(text: str) -> str | None:
    """What makes ``text`` unusable as instructions, or ``None``.

    A NUL cannot be stored in a PostgreSQL text column: a turn using such
    text could never be committed, so it is refused where it comes in.
    """
    if len(text) > MAX_CHARS:
        return f"is longer than {MAX_CHARS} characters ({len(text)})"
    if "\x00" in text:
        return f"holds a NUL character (at character {text.index(chr(0))})"
    return None


def usable_instructions(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    """A validator: text :func:`problem` finds nothing wrong with."""
    wrong = problem(value)
    if wrong is not None:
        raise setting_error(attribute.name, wrong)


def agent_instructions(config: Config) -> str:
    """The agent's instructions: ``[agent] instructions``, or the file ``instructions_file`` names.

    The file is taken relative to the configuration file's folder; one that
    cannot be read, is not UTF-8 or holds unusable text is a
    :class:`ConfigError` naming the key.
    """
    agent = config.agent
    if agent.instructions_file is None:
        return agent.instructions
    where = "@ $.agent.instructions_file"
    path = Path(config.base_dir) / Path(agent.instructions_file).expanduser()
    try:
        # A FIFO or a device would block or never end; a huge file is not a system prompt.
        if path.exists() and not path.is_file():
            raise ConfigError(f"{config.source}: {path} is not a regular file {where}")
        if path.is_file() and path.stat().st_size > 4 * MAX_CHARS:
            raise ConfigError(f"{config.source}: {path} is larger than {4 * MAX_CHARS} bytes {where}")
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{config.source}: cannot read {path}: {exc.strerror or exc} {where}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config.source}: {path} is not UTF-8 text ({exc.reason}) {where}") from exc
    wrong = problem(text)
    if wrong is not None:
        raise ConfigError(f"{config.source}: {path} {wrong} {where}")
    return text


def chosen(override: str | None, agent: str) -> str:
    """What a turn's instructions start from: the session's own, else the agent's."""
    return agent if override is None else override


def used(text: str) -> str | None:
    """The instructions a turn uses (and records), from what ``turn_instructions`` left.

    ``None`` when the text is empty or blank: the turn has none. Text that
    could not be stored fails the turn, naming the point.
    """
    wrong = problem(text)
    if wrong is not None:
        raise TurnkitError(f"the text turn_instructions left {wrong}")
    return text if text.strip() else None


def prompt_message(text: str) -> Message:
    """The prompt's first message, holding the turn's instructions."""
    return Message.of("system", text, metadata={MARK: True})
