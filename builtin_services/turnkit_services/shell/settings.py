"""``[service.shell]``: which programs may run, where, for how long, with what environment."""

from __future__ import annotations

import attrs

#: The ``PATH`` of every command unless ``[service.shell] env`` or ``base_env`` says otherwise.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


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
    the long-running processes kept at once.
    """

    allow: list[str] = attrs.field(factory=list)
    allow_shell_string: bool = False
    shell_program: str = "sh"
    root: str = ""
    timeout: float = 30.0
    max_timeout: float = 600.0
    kill_grace: float = 2.0
    max_output: int = 65_536
    path: str = DEFAULT_PATH
    lang: str = "C.UTF-8"
    base_env: list[str] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict)
    max_processes: int = 8
