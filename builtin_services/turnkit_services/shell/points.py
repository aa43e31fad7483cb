"""Extension points of the shell service, fired around every command it runs.

Order for one command (``shell.exec`` or ``shell.start``): the working
directory is confined to ``[service.shell] root`` and the program is found
→ ``shell_authorize`` (guard; the service's own ``allow`` policy answers
last) → the environment is built and passed through ``shell_env``
(pipeline) → the process runs → ``shell_exited`` (effect) once it has
exited. ``turn`` is the turn that asked for the command (a model's tool
call), or ``None`` when it came from elsewhere (``turnkit shell exec``, a
task). Implementations may take any subset of the arguments.
"""

from __future__ import annotations

from turnkit_hookspecs import Deny, TurnInfo, effect, guard, pipeline


@guard
def shell_authorize(
    argv: list[str], program: str, cwd: str, shell: bool, turn: TurnInfo | None
) -> Deny | None:
    """Decide whether a command may run; the first ``Deny`` refuses it.

    ``program`` is the absolute path of what will run (``argv[0]`` found on
    the command's ``PATH``), ``cwd`` the confined working directory, and
    ``shell`` says ``argv`` is ``[shell_program, "-c", string]`` from a
    caller's shell string. The service's own policy (``[service.shell]
    allow``) answers last, so nothing runs that the configuration does not
    allow; a plugin can only narrow it. An implementation that raises
    counts as a deny (fail closed).

    Example::

        @hookimpl
        def shell_authorize(argv, turn):
            if turn is not None and argv[0] == "git" and "push" in argv:
                return Deny("the model may not push; run git push yourself")
    """


@pipeline("env")
def shell_env(env: dict[str, str], argv: list[str], cwd: str, turn: TurnInfo | None) -> dict[str, str] | None:
    """Adjust the environment a command runs with; return a new dict or ``None`` for unchanged.

    ``env`` arrives built in layers: the minimal base (``PATH``, ``LANG``,
    the host variables named in ``base_env``), then ``[service.shell]
    env``, then ``TURNKIT_AGENT``, ``TURNKIT_SESSION_ID`` and
    ``TURNKIT_TURN_ID`` (the last two only inside a turn). What the last
    implementation returns is exactly the command's environment; every
    value must be a string.

    Example::

        @hookimpl
        def shell_env(env, turn):
            if turn is not None:
                return {**env, "GIT_AUTHOR_NAME": f"agent ({turn.session_id})"}
    """


@effect
def shell_exited(
    argv: list[str],
    cwd: str,
    exit_code: int,
    duration: float,
    timed_out: bool,
    truncated: bool,
    turn: TurnInfo | None,
) -> None:
    """Observe a command that has exited: how, after how long, and whether its output was cut.

    ``exit_code`` is negative when a signal ended the process: ``-15``
    (SIGTERM) or ``-9`` (SIGKILL, ``kill_grace`` later) after a timeout or
    ``shell.close``. ``duration`` is in seconds; ``truncated`` says output
    beyond ``[service.shell] max_output`` was dropped. For a long-running
    process ``timed_out`` is always false (it has no timeout), and nothing
    fires for one still running when the agent stops.

    Example::

        @hookimpl
        def shell_exited(argv, exit_code, duration, timed_out):
            if exit_code != 0:
                log.warning("%s exited %s after %.1fs (timed out: %s)", argv, exit_code, duration, timed_out)
    """
