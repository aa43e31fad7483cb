"""The shell service. Commands and long-running processes, authorised fail-closed.

Its main path and actions arrive with their own issue; today it registers
itself so that discovery, start order and `turnkit plugins` see it.
"""

from turnkit_hookspecs import Service


class ShellService(Service):
    """Commands and long-running processes, authorised fail-closed."""

    name = "shell"
