"""``turnkit plugin …``: commands for plugin authors.

Only ``click`` is imported here (not even ``pathlib``); the generator
(:mod:`turnkit.scaffold`) is imported when a command runs, so ``turnkit
--help`` stays fast.
"""

from __future__ import annotations

import click


@click.group()
def plugin() -> None:
    """Write turnkit plugins: create a new plugin distribution."""


@plugin.command()
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default="the current directory",
    help="Where to create the project folder turnkit-NAME.",
)
@click.option(
    "--author",
    help="The author's name, for the package metadata and the license [default: git's user.name].",
)
@click.option("--description", help="One line saying what the plugin does (the summary shown on PyPI).")
@click.option(
    "--channel",
    is_flag=True,
    help="Make a chat channel (a platform's webhooks in, replies out) instead of a plugin.",
)
def new(name: str, directory: str, author: str | None, description: str | None, channel: bool) -> None:
    """Create turnkit-NAME/: a plugin (or channel) distribution with tests, ready to build and publish.

    NAME is the plugin's entry point name and the name of its [plugin.NAME]
    table (a channel's: its name in [service.chat] channels, and its
    [service.chat.channel.NAME] table): lowercase letters, digits and
    dashes, starting with a letter. The import package is turnkit_NAME
    (dashes become underscores).
    """
    from pathlib import Path

    from .scaffold import PluginNames, ScaffoldError, create

    try:
        names = PluginNames.of(name, channel=channel)
    except ScaffoldError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from exc
    try:
        root, files = create(Path(directory), names, author=author, description=description)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {names.distribution} in {root}:")
    for file in files:
        click.echo(f"    {file}")
    if channel:
        what = (
            f"The channel {names.class_name} (src/{names.package}/__init__.py) receives signed webhooks"
            " and posts its replies; replace that protocol by your platform's."
        )
        check = f"    turnkit serve                 # with {name} in [service.chat] channels: README.md\n"
    else:
        what = (
            f"The plugin {names.class_name} (src/{names.package}/__init__.py) holds one example per kind"
            " of extension point."
        )
        check = f"    turnkit hooks turn_authorize  # {name} is loaded, and where it runs\n"
    click.echo(
        f"\n{what}\n\nNext steps:\n"
        f"    cd {root}\n"
        '    pip install -e ".[test]"    # the distribution, turnkit and pytest\n'
        "    pytest                      # the generated tests pass as they are\n"
        f"{check}"
        "    python -m build && twine check --strict dist/*   # then: twine upload dist/*"
    )
