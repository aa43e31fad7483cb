"""``turnkit plugin new``: a new plugin (or channel) distribution, ready to test, build and publish.

The files are rendered from the templates in ``templates/`` (package data,
``string.Template`` syntax: ``$name``, ``$$`` for a dollar sign) and written
only once all of them rendered, into a folder that must not exist yet, so a
failed run never leaves half a project behind or touches an existing one.

The dependency pins come from the installed distributions: the plugin needs
the contract it was generated against (``turnkit-hookspecs>=X.Y.Z`` up to the
next incompatible release), and its tests the runtime providing the
``turnkit_agent`` fixture. A channel (``--channel``) needs the chat service's
channel kit as well (``turnkit-services``), and its tests the runtime's
``turnkit_served`` and ``turnkit_endpoint`` fixtures.
"""

from __future__ import annotations

import datetime
import getpass
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template

from ..errors import TurnkitError

#: A plugin name: lowercase letters, digits and single dashes, starting with a letter.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")

#: Every file of a new plugin project: its path (``{package}`` is replaced) -> its template.
FILES: Mapping[str, str] = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "LICENSE": "LICENSE.tmpl",
    ".gitignore": "gitignore.tmpl",
    "src/{package}/__init__.py": "plugin.py.tmpl",
    "src/{package}/py.typed": "py.typed.tmpl",
    "tests/test_plugin.py": "test_plugin.py.tmpl",
}
#: Every file of a new channel project: the same skeleton, with a channel's module, tests and README.
CHANNEL_FILES: Mapping[str, str] = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "channel_README.md.tmpl",
    "LICENSE": "LICENSE.tmpl",
    ".gitignore": "gitignore.tmpl",
    "src/{package}/__init__.py": "channel.py.tmpl",
    "src/{package}/py.typed": "py.typed.tmpl",
    "tests/test_channel.py": "test_channel.py.tmpl",
}

#: What differs in ``pyproject.toml`` between a plugin and a channel.
_PLUGIN_DEPENDENCIES = """\
# A plugin depends on the turnkit contract only, never on the runtime; attrs
# (for the settings class) comes with the contract but is used directly.
dependencies = ["{hookspecs}", "attrs>=23.1"]"""
_CHANNEL_DEPENDENCIES = """\
# A channel builds on the chat service's channel kit (turnkit-services) and the
# contract, never on the runtime; the web framework for its routes and the HTTP
# client for its replies come with the kit but are used directly.
dependencies = ["{hookspecs}", "{services}", "attrs>=23.1", "httpx>=0.27", "starlette>=0.37"]"""
_PLUGIN_ENTRY_POINT = """\
# How turnkit finds the plugin: the entry point's name is the plugin's name
# (its [plugin.{name}] table); it names the class turnkit makes one instance of per agent.
[project.entry-points."turnkit.plugins"]"""
_CHANNEL_ENTRY_POINT = """\
# How the chat service finds the channel: the entry point's name is the channel's
# name (in [service.chat] channels, settings in [service.chat.channel.{name}]).
[project.entry-points."turnkit.channels"]"""


class ScaffoldError(TurnkitError):
    """A plugin project cannot be created as asked (bad name, folder taken …)."""


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin name gives rise to.

    ``name`` is the entry point name (the ``[plugin.NAME]`` table),
    ``distribution`` the name on PyPI and of the project folder, ``package``
    the import name, ``class_name`` the :class:`~turnkit_hookspecs.Plugin`
    subclass the entry point names.
    """

    name: str
    distribution: str
    package: str
    class_name: str
    #: A channel (``turnkit.channels``, a :class:`Channel` subclass) rather than a plugin.
    channel: bool = False

    @classmethod
    def of(cls, name: str, *, channel: bool = False) -> PluginNames:
        """Check ``name`` and derive the others from it (``rate-limit`` -> ``turnkit_rate_limit`` …)."""
        if name.startswith("turnkit-") and NAME_PATTERN.fullmatch(name):
            short = name.removeprefix("turnkit-")
            raise ScaffoldError(
                f"give the name without the 'turnkit-' prefix: {short!r} makes the distribution {name!r}"
            )
        if not NAME_PATTERN.fullmatch(name):
            hint = "-".join(re.findall(r"[a-z0-9]+", name.lower()))
            suggestion = f" (e.g. {hint!r})" if NAME_PATTERN.fullmatch(hint) else ""
            raise ScaffoldError(
                f"invalid plugin name {name!r}: use lowercase letters, digits and single dashes, "
                f"starting with a letter{suggestion}"
            )
        words = name.split("-")
        return cls(
            name=name,
            distribution=f"turnkit-{name}",
            package="turnkit_" + "_".join(words),
            class_name="".join(word.capitalize() for word in words) + ("Channel" if channel else "Plugin"),
            channel=channel,
        )


def compatible_range(version: str) -> str:
    """The versions semver says are compatible with ``version``: ``0.1.3`` -> ``>=0.1.3,<0.2``."""
    release = [int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3]]
    major, minor = [*release, 0, 0][:2]
    upper = f"{major + 1}" if major else f"0.{minor + 1}"
    return f">={'.'.join(map(str, release))},<{upper}"


def _requirement(distribution: str) -> str:
    """``distribution`` pinned to the releases compatible with the installed one."""
    return distribution + compatible_range(metadata.version(distribution))


def default_author() -> str:
    """The author of a new project: git's ``user.name``, else the login name."""
    try:
        found = subprocess.run(
            ["git", "config", "--get", "user.name"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if found:
        return found
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name: a container without a passwd entry
        return "the authors"


def _one_line(value: str, option: str) -> str:
    text = value.strip()
    if not text or any(ord(char) < 32 for char in text):
        raise ScaffoldError(f"{option} must be one non-empty line of text, got {value!r}")
    return text


def render(names: PluginNames, *, author: str, description: str, year: int) -> dict[str, str]:
    """The new project's files: relative path -> content.

    ``author`` and ``description`` must be single lines: they become the
    package's metadata (PyPI shows the description as the summary).
    """
    author = _one_line(author, "--author")
    description = _one_line(description, "--description")
    values = {
        "name": names.name,
        "distribution": names.distribution,
        "package": names.package,
        "class_name": names.class_name,
        "author": author,
        "description": description,
        # TOML basic strings take JSON's escapes, so these are safe in pyproject.toml
        "author_toml": json.dumps(author),
        "description_toml": json.dumps(description),
        "year": str(year),
        "turnkit_requirement": _requirement("turnkit"),
        # the channel's secret's environment variable: ``SHOUT_BACK_SECRET``
        "env_prefix": names.package.removeprefix("turnkit_").upper(),
        "keyword": "turnkit-channel" if names.channel else "turnkit-plugin",
        "dependencies": (_CHANNEL_DEPENDENCIES if names.channel else _PLUGIN_DEPENDENCIES).format(
            hookspecs=_requirement("turnkit-hookspecs"), services=_requirement("turnkit-services")
        ),
        "entry_point": (_CHANNEL_ENTRY_POINT if names.channel else _PLUGIN_ENTRY_POINT).format(
            name=names.name
        ),
    }
    templates = resources.files(__name__) / "templates"
    return {
        path.format(package=names.package): Template((templates / template).read_text("utf-8")).substitute(
            values
        )
        for path, template in (CHANNEL_FILES if names.channel else FILES).items()
    }


def create(
    directory: Path, names: PluginNames, *, author: str | None = None, description: str | None = None
) -> tuple[Path, list[str]]:
    """Write the project of the plugin ``names`` into ``directory/turnkit-NAME``.

    Returns the project folder and the files written, relative to it.
    Refuses (:class:`ScaffoldError`) an existing folder or a multi-line
    author or description.
    """
    files = render(
        names,
        author=author if author is not None else default_author(),
        description=description if description is not None else f"A turnkit plugin: {names.name}.",
        year=datetime.date.today().year,
    )
    root = directory.absolute() / names.distribution
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScaffoldError(f"cannot create {directory.absolute()}: {exc.strerror or exc}") from exc
    try:
        root.mkdir()
    except FileExistsError:
        raise ScaffoldError(f"{root} already exists: choose another name or another --directory") from None
    except OSError as exc:
        raise ScaffoldError(f"cannot create {root}: {exc.strerror or exc}") from exc
    try:
        for relative, content in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    except OSError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise ScaffoldError(f"cannot write {root}: {exc.strerror or exc}") from exc
    return root, sorted(files)
