"""Where a command may run and which program it is: the checks made before anything runs.

Each check raises :class:`ShellRefused` with a message saying what is wrong
and how to change it, so a refused caller (a model, a user at the command
line) can correct itself.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class ShellRefused(PermissionError):
    """A command that will not run: not allowed, or asked to run outside the root."""


def check_argv(argv: Any) -> list[str]:
    """``argv`` as a list of strings, or a ``ValueError`` saying what it is instead."""
    if not isinstance(argv, list | tuple) or not argv:
        raise ValueError(f"argv must be a non-empty list of strings (program first), got {argv!r}")
    for index, item in enumerate(argv):
        if not isinstance(item, str):
            raise ValueError(f"argv[{index}] must be a string, got {type(item).__name__} {item!r}")
        if "\0" in item:
            raise ValueError(f"argv[{index}] contains a NUL byte")
    if not argv[0]:
        raise ValueError("argv[0], the program, is empty")
    return list(argv)


def confine(root: Path, cwd: str | None) -> Path:
    """The working directory ``cwd`` (relative to ``root``, or absolute inside it), resolved.

    Symbolic links are resolved before the check, so neither ``..`` nor an
    absolute path nor a link pointing out of the root gets a command
    outside it.
    """
    if cwd is None or cwd == "":
        return root
    if not isinstance(cwd, str):
        raise ValueError(f"cwd must be a string, got {type(cwd).__name__} {cwd!r}")
    resolved = (root / cwd).resolve()
    if not resolved.is_relative_to(root):
        raise ShellRefused(
            f"cwd {cwd!r} is outside the shell root {str(root)!r} ([service.shell] root);"
            " give a folder inside it, relative to it"
        )
    if not resolved.is_dir():
        raise ValueError(f"cwd {cwd!r} is not a directory under the shell root {str(root)!r}")
    return resolved


def find_program(name: str, env: Mapping[str, str], cwd: Path) -> str:
    """The absolute path of the program ``name`` names, as it will be executed.

    A name with a ``/`` is a path (relative ones against ``cwd``); a bare
    name is looked up in the command's own ``PATH`` (its relative entries
    are skipped, so a file in the working directory never shadows a
    system program). The path is normalised but symlinks are kept: a
    multi-call binary (busybox) is told apart by the name it was reached by.
    """
    if "/" in name:
        candidates = [os.path.normpath(cwd / name)]
    else:
        directories = [d for d in env.get("PATH", "").split(os.pathsep) if os.path.isabs(d)]
        candidates = [os.path.normpath(os.path.join(d, name)) for d in directories]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    where = "" if "/" in name else f" on PATH {env.get('PATH', '')!r}"
    raise FileNotFoundError(f"program {name!r} not found{where}")


def allowed(allow: Sequence[str], name: str, program: str) -> bool:
    """Whether ``[service.shell] allow`` lets ``name`` (``argv[0]``), found at ``program``, run.

    An entry without ``/`` matches a program named without a path (found on
    ``PATH``); an entry with ``/`` matches the program's absolute path;
    ``"*"`` matches every program. Entries are shell-style patterns.
    """
    bare = "/" not in name
    for entry in allow:
        if entry == "*":
            return True
        if "/" in entry:
            if fnmatch.fnmatchcase(program, entry):
                return True
        elif bare and fnmatch.fnmatchcase(name, entry):
            return True
    return False


def refusal(allow: Sequence[str], name: str, program: str, source: str) -> str:
    """Why the ``allow`` policy refuses ``name``, and how to allow it."""
    if not allow:
        return (
            f"{name!r} is not allowed: the shell service runs no program by default."
            f" To allow it, add it to [service.shell] allow in {source}"
            f' (e.g. allow = ["{os.path.basename(name)}"]), or set allow = ["*"] and decide'
            " per command in a shell_authorize plugin"
        )
    return (
        f"{name!r} ({program}) is not allowed by [service.shell] allow = {list(allow)!r} in {source};"
        " add its name or a pattern matching its path to allow it"
    )
