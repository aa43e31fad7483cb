"""Tool names as Chat Completions function names, and back.

turnkit names a tool after the service action it runs (``memory.store``);
a Chat Completions function name may only hold ``[a-zA-Z0-9_-]``, at most 64
of them. The dot becomes a double underscore (``memory__store``), anything
else outside the alphabet an underscore, and an over-long name is cut and
ends with a digest of the whole. The model's answer is mapped back through
the names offered in the request, so the mapping need not be invertible by
itself; two tools that would share a function name are refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

#: The longest function name the Chat Completions API accepts.
MAX_FUNCTION_NAME = 64
_OUTSIDE = re.compile(r"[^a-zA-Z0-9_-]")


def function_name(tool: str) -> str:
    """The function name the model sees for ``tool``: ``memory.store`` → ``memory__store``."""
    name = _OUTSIDE.sub("_", tool.replace(".", "__"))
    if len(name) <= MAX_FUNCTION_NAME:
        return name
    digest = hashlib.sha256(tool.encode()).hexdigest()[:8]
    return f"{name[: MAX_FUNCTION_NAME - len(digest) - 1]}_{digest}"


class FunctionNames:
    """The function names of one request's tools, to read the model's calls back."""

    def __init__(self, tools: Iterable[str]) -> None:
        self._tools: dict[str, str] = {}
        for tool in tools:
            name = function_name(tool)
            other = self._tools.setdefault(name, tool)
            if other != tool:
                raise ValueError(f"the tools {other!r} and {tool!r} would both be offered as {name!r}")

    def tool(self, function: str) -> str:
        """The tool a function name the model called stands for.

        A name that was not offered is read back as well as it can be
        (``__`` → ``.``), so that the runtime reports the unknown tool to the
        model by a name the model can recognise.
        """
        return self._tools.get(function) or function.replace("__", ".")
