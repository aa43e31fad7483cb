"""Commands other distributions add to ``turnkit``: the ``turnkit.commands`` entry point group.

A distribution adds ``turnkit NAME`` by naming a ``click`` command (or
group) under the group; the entry point's name is the command's::

    [project.entry-points."turnkit.commands"]
    greet = "turnkit_greet.cli:greet"

The command is imported only when it runs or shows its own help: ``turnkit
--help`` lists it from the distribution's metadata, so a slow or broken
module costs nothing to the other commands. A name already taken (by
turnkit's own commands, by an installed service's command group, or by
another distribution) is refused: the command is left out, and ``turnkit
--help`` says which two distributions want the name. Only ``click`` is
imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .discovery import Candidate

#: The entry point group of the commands other distributions add.
COMMANDS_GROUP = "turnkit.commands"


def added_commands(taken: Mapping[str, str]) -> tuple[dict[str, AddedCommand], dict[str, str]]:
    """The commands of the ``turnkit.commands`` group by name, and why others are left out, by name.

    ``taken`` maps each name already in use to who uses it (``"turnkit's
    own command"``, ``"the task service (turnkit-services)"``).
    """
    from .discovery import find

    offered: dict[str, list[Candidate]] = {}
    for candidate in find(COMMANDS_GROUP):
        offered.setdefault(candidate.name, []).append(candidate)
    commands, refused = {}, {}
    for name, candidates in offered.items():
        owners = " and ".join(_owner(candidate) for candidate in candidates)
        if name in taken:
            refused[name] = f"the command {name!r} of {owners} is left out: {taken[name]} has that name"
        elif len(candidates) > 1:
            refused[name] = f"the command {name!r} is left out: both {owners} add one by that name"
        else:
            commands[name] = AddedCommand(name, candidates[0])
    return commands, refused


class AddedCommand(click.Command):
    """Stands for a command of another distribution in ``turnkit --help``, until it is loaded."""

    def __init__(self, name: str, candidate: Candidate) -> None:
        dist = candidate.entry_point.dist
        summary = (dist.metadata["Summary"] or "") if dist is not None else ""
        source = candidate.distribution or "an unnamed distribution"
        super().__init__(name, help=f"From {source}: {summary}" if summary else f"From {source}.")
        self.candidate = candidate

    def load(self) -> click.Command:
        """The command itself; an import failure or an object that is no command is a CLI error."""
        owner = _owner(self.candidate)
        try:
            command = self.candidate.load()
        except Exception as exc:
            raise click.ClickException(
                f"the command {self.name!r} of {owner} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(command, click.Command):
            raise click.ClickException(
                f"the command {self.name!r} of {owner} is not a click command"
                f" ({self.candidate.value} is a {type(command).__name__})"
            )
        return command


def _owner(candidate: Candidate) -> str:
    if candidate.distribution is None:
        return candidate.value
    return f"{candidate.distribution} {candidate.version}".strip()
