"""Which model answers an agent's turns, checked at start so that the agent never claims another.

The model plugin says which names it serves (the ``model_names`` resolve
point; the echo model answers ``["echo"]``). ``[model] name`` must be one of
them, or the agent refuses to start naming the setting: a configuration
asking for ``gpt-4o`` must not be answered by the echo model without a word.
Left unset, the name is the first one served, so a configured model plugin
needs no second setting. When the echo model answers only because nothing
else is configured, the one-shot commands say so (:func:`echo_notice`).
"""

from __future__ import annotations

import attrs

from .config import Config
from .defaults import ECHO_MODEL
from .errors import ConfigError, TurnkitError
from .points import Points

#: What a user does about the echo model; named in the start error and the notice.
GET_A_MODEL = "pip install turnkit-openai and set [plugin.openai] model = …"


@attrs.frozen
class ModelChoice:
    """The model of a started agent.

    ``name`` is its name, ``served`` every name the model plugin serves,
    ``echo`` whether it is the built-in echo model, and ``named`` whether
    ``[model] name`` chose it (else it is the first served).
    """

    name: str
    served: tuple[str, ...]
    echo: bool
    named: bool


async def choose_model(config: Config, points: Points, echo: bool) -> ModelChoice:
    """The model ``config`` asks for, among those the model plugin serves.

    ``echo`` says whether the built-in echo model is the only answer to
    ``turn_reply``. Raises :class:`ConfigError` naming ``$.model.name`` when
    the configured name is not served, and :class:`TurnkitError` when the
    model plugin names no model at all.
    """
    answer = await points.model_names()
    served = tuple(dict.fromkeys(name for name in answer if isinstance(name, str) and name.strip()))
    if not served:
        raise TurnkitError(f"the model plugin serves no model: model_names answered {answer!r}")
    echo = echo and served == (ECHO_MODEL,)  # else a plugin named models it does not answer with
    wanted = config.model.name
    if wanted is None:
        return ModelChoice(served[0], served, echo, named=False)
    if wanted not in served:
        if echo:
            why = f"no model plugin is configured, so the built-in echo model answers ({GET_A_MODEL})"
        else:
            why = f"the model plugin serves {', '.join(map(repr, served))}"
        raise ConfigError(f"{config.source}: no model {wanted!r}: {why} @ $.model.name")
    return ModelChoice(wanted, served, echo, named=True)


def echo_notice(config: Config, model: ModelChoice) -> str | None:
    """The line a command prints when the echo model answers by default, else ``None``.

    Nobody chose the echo model when ``[model]`` neither names it nor
    scripts it: a first turn that comes back as an echo needs saying why.
    """
    if not model.echo or model.named or config.model.script:
        return None
    return (
        "turnkit: the built-in echo model answers, repeating each message (no model plugin is"
        f' configured): {GET_A_MODEL}, or set [model] name = "{ECHO_MODEL}" to silence this'
    )
