"""Service actions: ``invoke("service.action", payload)`` and the tools offered to the model.

Actions are the methods a service marks with ``@action``
(:func:`turnkit_hookspecs.action`). An unknown service or action is the
caller's mistake and raises :class:`~turnkit.errors.UnknownActionError`,
naming the running services or the closest action; anything going wrong
*inside* an action (including a payload that does not fit its signature)
comes back as an :class:`~turnkit_hookspecs.ActionResult` with
``ok=False``, so one failing action never takes the host down.

An action describes its parameters in its docstring's ``Args:`` section
(:func:`parameter_docs`); ``turnkit <service> <action> --help`` shows them.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from turnkit_hookspecs import ActionResult, ActionSpec, ToolCallBlock, ToolOutputBlock, ToolSpec, actions_of

from .errors import UnknownActionError
from .secrets import Secrets

log = logging.getLogger("turnkit.actions")


class ActionRegistry:
    """The actions of the running services, by ``service.action`` name.

    Tool outputs are scrubbed of ``secrets`` as they are made, so that a
    secret a tool printed reaches neither the model nor the store.
    """

    def __init__(self, secrets: Secrets | None = None) -> None:
        self._secrets = Secrets() if secrets is None else secrets
        self._actions: dict[str, tuple[ActionSpec, Callable[..., Any]]] = {}
        self._tools: tuple[ToolSpec, ...] = ()

    def add_service(self, service: Any) -> None:
        """Offer the actions of a started service."""
        for name, (spec, method) in actions_of(service).items():
            self._actions[f"{service.name}.{name}"] = (spec, method)
        self._tools = tuple(
            spec.tool_spec(qualified.split(".", 1)[0])
            for qualified, (spec, _) in sorted(self._actions.items())
            if spec.tool
        )

    def remove_service(self, name: str) -> None:
        """Withdraw the actions of a stopped service."""
        self._actions = {k: v for k, v in self._actions.items() if not k.startswith(name + ".")}
        self._tools = tuple(t for t in self._tools if not t.name.startswith(name + "."))

    def names(self) -> list[str]:
        """Every ``service.action`` name, sorted."""
        return sorted(self._actions)

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        """The actions offered to the model as tools."""
        return self._tools

    async def invoke(self, action: str, payload: Mapping[str, Any] | None = None) -> ActionResult:
        """Run ``action`` with ``payload`` as keyword arguments."""
        _, method = self._lookup(action)
        arguments = dict(payload or {})
        try:
            inspect.signature(method).bind(**arguments)
        except TypeError as exc:
            return ActionResult(action, ok=False, error=f"{action}: bad payload: {exc}")
        try:
            value = method(**arguments)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            # not logged as a warning here: whoever invoked it gets the error (run_tool logs the model's)
            log.debug("action %s raised", action, exc_info=exc)
            return ActionResult(action, ok=False, error=f"{action} raised {type(exc).__name__}: {exc}")
        return ActionResult(action, ok=True, value=value)

    async def run_tool(self, call: ToolCallBlock) -> ToolOutputBlock:
        """Run a model's tool call; an unknown tool is reported to the model, not raised."""
        if call.name not in self._actions or not self._actions[call.name][0].tool:
            return ToolOutputBlock(call.tool_call_id, f"unknown tool {call.name!r}", is_error=True)
        result = await self.invoke(call.name, call.args)
        if not result.ok:
            error = self._secrets.scrub(result.error or "failed")
            log.warning("action %s", error)  # the model reads it; this is what the operator sees
            return ToolOutputBlock(call.tool_call_id, error, is_error=True)
        return ToolOutputBlock(call.tool_call_id, self._secrets.scrub(render(result.value)))

    def _lookup(self, action: str) -> tuple[ActionSpec, Callable[..., Any]]:
        found = self._actions.get(action)
        if found is not None:
            return found
        service = action.split(".", 1)[0]
        close = difflib.get_close_matches(action, list(self._actions), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if "." not in action or not any(name.startswith(service + ".") for name in self._actions):
            services = sorted({name.split(".", 1)[0] for name in self._actions})
            running = ", ".join(services) or "none"
            raise UnknownActionError(
                f"unknown service {service!r} in {action!r} (running services with actions: {running}){hint}"
            )
        raise UnknownActionError(f"service {service!r} has no action {action.split('.', 1)[1]!r}{hint}")


def render(value: Any) -> str:
    """A tool's return value as the text the model reads (JSON unless it is a string)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


#: The docstring section describing an action's parameters (Google style, as pydoc renders it).
_ARGS_HEADING = re.compile(r"^(Args|Arguments|Parameters):\s*$")
#: One parameter's entry in that section: ``name: text`` or ``name (type): text``.
_ARG_ENTRY = re.compile(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def parameter_docs(function: Callable[..., Any]) -> dict[str, str]:
    """What an action's docstring says of each parameter, for its command line options' help.

    The parameters are described in an ``Args:`` section, one ``name: text``
    per parameter, its text continued on more deeply indented lines::

        Args:
            name: the task's name, unique in the agent.
            cron: a cron expression (five fields), evaluated in the
                task's timezone.

    The section ends at a blank line or a line indented no deeper than its heading.
    """
    lines = (inspect.getdoc(function) or "").splitlines()
    found: dict[str, str] = {}
    heading = next((i for i, line in enumerate(lines) if _ARGS_HEADING.match(line.strip())), None)
    if heading is None:
        return found
    outer = _indent(lines[heading])
    entry_indent: int | None = None
    current: str | None = None
    for line in lines[heading + 1 :]:
        indent = _indent(line)
        if not line.strip() or indent <= outer:
            break
        entry = _ARG_ENTRY.match(line.strip())
        if entry is not None and indent == (entry_indent if entry_indent is not None else indent):
            entry_indent, current = indent, entry.group(1)
            found[current] = entry.group(2)
        elif current is not None:
            found[current] = f"{found[current]} {line.strip()}".strip()
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
