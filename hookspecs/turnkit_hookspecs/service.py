"""What a service distribution registers under the ``turnkit.services`` group.

A service is a class deriving from :class:`Service`. Its *actions* are the
methods marked with :func:`action`; the runtime addresses them as
``"<service>.<action>"`` (``context.invoke("shell.exec", {"argv": [...]})``)
and offers those marked ``tool=True`` to the model.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar, TypeVar, overload

from attrs import field, frozen

from .context import ExecutionContext, Storage
from .model import ToolSpec
from .plugin import Configured

F = TypeVar("F", bound=Callable[..., Any])

_ACTION_ATTRIBUTE = "__turnkit_action__"

#: JSON-schema types for the annotations a tool's arguments commonly have.
_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
}


@frozen
class ActionSpec:
    """How an action is addressed and, when it is a tool, described to the model."""

    name: str
    description: str
    tool: bool = False
    parameters: dict[str, Any] | None = field(default=None, hash=False)

    def tool_spec(self, service: str) -> ToolSpec:
        """The :class:`ToolSpec` the model sees for this action of ``service``."""
        return ToolSpec(f"{service}.{self.name}", self.description, self.parameters or {"type": "object"})


@overload
def action(function: F, /) -> F: ...
@overload
def action(
    *,
    name: str | None = None,
    tool: bool = False,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> Callable[[F], F]: ...
def action(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    tool: bool = False,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> Any:
    """Mark a service method as an action, called with the payload as keyword arguments.

    ``tool=True`` also offers it to the model. Its JSON schema (shown to the
    model, and used by the ``turnkit <service> <action>`` command line) is
    ``parameters``, or is derived from the signature (``str`` → ``string``,
    ``int`` → ``integer`` …; parameters without a default are required). The
    description defaults to the docstring's first line.

    Example::

        class NotesService(Service):
            name = "notes"

            @action(tool=True)
            async def add(self, text: str) -> int:
                \"\"\"Store a note and return its number.\"\"\"
    """

    def mark(function: F) -> F:
        doc = inspect.getdoc(function) or ""
        spec = ActionSpec(
            name=name or function.__name__,
            description=description if description is not None else doc.split("\n", 1)[0],
            tool=tool,
            parameters=dict(parameters) if parameters is not None else _schema(function),
        )
        setattr(function, _ACTION_ATTRIBUTE, spec)
        return function

    return mark(function) if function is not None else mark


def action_specs(service_class: type) -> dict[str, tuple[str, ActionSpec]]:
    """The actions a service class declares: name → (method name, spec), without an instance."""
    found = {}
    for attribute in dir(service_class):
        spec = getattr(getattr(service_class, attribute, None), _ACTION_ATTRIBUTE, None)
        if isinstance(spec, ActionSpec):
            found[spec.name] = (attribute, spec)
    return found


def actions_of(service: object) -> dict[str, tuple[ActionSpec, Callable[..., Any]]]:
    """The actions of a service object: name → (spec, bound method)."""
    return {
        name: (spec, getattr(service, attribute))
        for name, (attribute, spec) in action_specs(type(service)).items()
    }


def _schema(function: Callable[..., Any]) -> dict[str, Any]:
    """A JSON schema for the keyword arguments of ``function``."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve: the types stay open
        hints = {}
    properties: dict[str, Any] = {}
    required = []
    for parameter in list(inspect.signature(function).parameters.values())[1:]:  # skip self
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        properties[parameter.name] = _json_type(hints.get(parameter.name))
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    return {"type": "object", "properties": properties, "required": required}


def _json_type(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation) or annotation
    if origin is typing.Literal:
        values = list(typing.get_args(annotation))
        kinds = {_JSON_TYPES.get(type(value)) for value in values}
        return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}
    if origin in (list, tuple) and typing.get_args(annotation):
        return {"type": "array", "items": _json_type(typing.get_args(annotation)[0])}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _json_type(options[0]) if len(options) == 1 else {}
    json_type = _JSON_TYPES.get(origin)
    return {"type": json_type} if json_type else {}


class Service(Configured):
    """Base class for a service: a main workflow owning its domain state.

    ``name`` is how actions are addressed (``"shell.exec"``). ``hookspecs``
    lists the modules or classes declaring the service's own extension points
    with the kind decorators; the runtime adds them before any plugin is
    validated. A service object is also registered with the plugin manager,
    so it may implement points itself with ``@hookimpl``.

    ``settings_class`` (an attrs class) describes the service's table in the
    agent's configuration, ``[service.<name>]``; the runtime structures the
    table into it, reporting a wrong key with its path, and sets
    ``settings`` before :meth:`start` (see :class:`~turnkit_hookspecs.plugin.Configured`).

    Lifecycle: :meth:`start` for everything actions need (every command
    starts it); :meth:`serve` for the long-running part — listening on a
    socket, a scheduler — which only ``turnkit serve`` (and ``turnkit chat``)
    runs.
    """

    name: ClassVar[str]
    hookspecs: ClassVar[Sequence[ModuleType | type]] = ()

    @property
    def storage(self) -> Storage:
        """The service's own records in the agent's store (namespace: its name)."""
        return self.context.storage(self.name)

    async def start(self, context: ExecutionContext) -> None:
        """Acquire resources; called in the agent's start order; keeps ``context`` as ``self.context``."""
        self.context = context

    async def serve(self, context: ExecutionContext) -> None:
        """Run the service's long-running work until cancelled.

        Called after every service has started, when the agent serves. The
        default returns at once: nothing to serve. Returning ends serving for
        the whole agent (the terminal channel returns when its user quits);
        raising is reported and stops the agent too.
        """

    async def stop(self) -> None:
        """Release resources; called in reverse start order."""
