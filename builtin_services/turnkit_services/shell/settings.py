"""``[service.shell]``: which programs may run, where, for how long, with what environment."""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs
from attrs.validators import ge, gt, le

#: ``[service.shell] sandbox``: run commands as they are, or each in a bubblewrap sandbox.
SandboxKind: TypeAlias = Literal["none", "bwrap"]

#: The ``PATH`` of every command unless ``[service.shell] env`` or ``base_env`` says otherwise.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

#: The longest time setting: a larger one is a typo that would never come round.
DAY = 86_400.0


@attrs.frozen
class ShellSettings:
    """``[service.shell]``.

    Nothing runs until ``allow`` names it (or is ``["*"]`` and a
    ``shell_authorize`` plugin decides): an entry without ``/`` is matched
    against a program named without a path (``"git"``, ``"python3*"``),
    an entry with ``/`` against the absolute path of the program
    (``"/usr/bin/*"``); ``"*"`` alone allows every program.
    ``allow_shell_string`` lets callers pass one string run by
    ``shell_program -c``. ``root`` confines working directories (relative
    to the configuration file's folder; empty means that folder).
    ``timeout`` is a command's default limit in seconds and ``max_timeout``
    the most a caller may ask; ``kill_grace`` is how long a process group
    gets between SIGTERM and SIGKILL. ``max_output`` caps each of stdout and
    stderr in bytes (of one ``exec``, or of a process's unread output).
    The environment is ``PATH=path`` and ``LANG=lang``, then the host
    variables named in ``base_env``, then ``env``. ``max_processes`` bounds
    the long-running processes kept at once. ``sandbox = "bwrap"`` runs
    every command in a bubblewrap sandbox (:mod:`.sandbox`: other processes
    invisible, only ``root`` writable, no network unless ``network`` is
    true); ``network`` means nothing without a sandbox.

    Times are more than 0 and at most a day (``kill_grace`` an hour);
    ``max_output`` is at most 1 GiB and ``max_processes`` at most 1024.
    """

    allow: list[str] = attrs.field(factory=list)
    allow_shell_string: bool = False
    shell_program: str = "sh"
    root: str = ""
    timeout: float = attrs.field(default=30.0, validator=[gt(0), le(DAY)])
    max_timeout: float = attrs.field(default=600.0, validator=[gt(0), le(DAY)])
    kill_grace: float = attrs.field(default=2.0, validator=[gt(0), le(3600)])
    max_output: int = attrs.field(default=65_536, validator=[ge(1), le(2**30)])
    path: str = DEFAULT_PATH
    lang: str = "C.UTF-8"
    base_env: list[str] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict)
    max_processes: int = attrs.field(default=8, validator=[ge(1), le(1024)])
    sandbox: SandboxKind = "none"
    network: bool = False
