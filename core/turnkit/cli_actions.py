"""``turnkit <service> <action>`` and ``turnkit invoke``: service actions from the command line.

Every installed service gets a command group named after it, listing its
actions; each action's options come from its JSON schema (the same one the
model sees for tools): ``string`` → ``--name TEXT``, ``integer`` →
``--name INTEGER``, ``boolean`` → ``--name/--no-name``, ``array`` → the
option repeated, ``object`` → ``--name JSON``. An action taking a single
required array (``shell exec``'s ``argv``) takes it as trailing arguments:
``turnkit shell exec -- ls -la``. ``--payload JSON`` gives the whole payload
at once. The agent is started for the call, like ``turnkit send``.

Each option's help is what the action's docstring says of the parameter
in its ``Args:`` section (:func:`turnkit.actions.parameter_docs`), with the
default from the signature; a ``Literal`` parameter's values are the
option's choices. A value that is an object with an integer ``exit_code``
(``shell exec``'s) is the command's exit status too, so ``turnkit shell
exec -- false`` fails like ``false`` does.

The groups are built only when used: listing them reads entry-point
metadata, nothing is imported, so ``turnkit --help`` stays fast.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from turnkit_hookspecs import ActionResult, ActionSpec

    from .discovery import Candidate

_CLICK_TYPES: dict[str, click.ParamType[Any]] = {
    "string": click.STRING,
    "integer": click.INT,
    "number": click.FLOAT,
}


def service_names() -> list[str]:
    """The names of the installed services (entry-point metadata only)."""
    from .discovery import SERVICES_GROUP, find

    return sorted({candidate.name for candidate in find(SERVICES_GROUP)})


def service_group(name: str) -> click.Group | None:
    """The command group of service ``name``, or ``None`` when none is installed by that name."""
    from .discovery import SERVICES_GROUP, find

    for candidate in find(SERVICES_GROUP):
        if candidate.name == name:
            return ServiceGroup(name, candidate)
    return None


class ServiceGroup(click.Group):
    """One service's actions as commands; the service is imported only when the group is used.

    ``turnkit --help`` lists the groups without importing anything, so a
    service that fails to import breaks only its own group, with its name
    and distribution in the error.
    """

    def __init__(self, name: str, candidate: Candidate) -> None:
        source = f" ({candidate.distribution})" if candidate.distribution else ""
        super().__init__(name, help=f"Actions of the {name} service{source}.")
        self._candidate = candidate
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        from turnkit_hookspecs import action_specs

        candidate = self._candidate
        try:
            service_class: type = candidate.load()  # type: ignore[assignment]
        except Exception as exc:
            raise click.ClickException(
                f"service {self.name!r} ({candidate.distribution}) failed to import:"
                f" {type(exc).__name__}: {exc}"
            ) from exc
        for _, (attribute, spec) in sorted(action_specs(service_class).items()):
            self.add_command(_action_command(candidate.name, spec, getattr(service_class, attribute)))
        self._loaded = True

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)


@click.command()
@click.argument("action")
@click.argument("payload", required=False)
@click.pass_context
def invoke(ctx: click.Context, action: str, payload: str | None) -> None:
    """Call ACTION (service.action) with PAYLOAD, a JSON object, and print its value as JSON.

    Exits 1 when the action fails.
    """
    _call(ctx, action, _json_object(payload, "PAYLOAD") if payload else {})


def _action_command(service: str, spec: ActionSpec, method: Callable[..., Any]) -> click.Command:
    from .actions import parameter_docs

    schema = spec.parameters or {}
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    docs = parameter_docs(method)
    defaults = _defaults(method)
    arrays = [name for name, prop in properties.items() if prop.get("type") == "array"]
    trailing = arrays[0] if len(arrays) == 1 and arrays[0] in required else None
    params: list[click.Parameter] = []
    for name, prop in properties.items():
        if name == trailing:
            params.append(click.Argument([name], nargs=-1, required=True))
        else:
            text = prop.get("description") or docs.get(name)
            help_text = text[:1].upper() + text[1:] if text else None
            params.append(_option(name, prop, name in required, help_text, defaults.get(name)))
    params.append(click.Option(["--payload"], help="The whole payload as a JSON object (overrides options)."))

    def callback(**values: Any) -> None:
        payload_text = values.pop("payload")
        if payload_text:
            payload = _json_object(payload_text, "--payload")
        else:
            payload = {
                name: _value(name, properties[name], value)
                for name, value in values.items()
                if value is not None and value != ()
            }
        _call(click.get_current_context(), f"{service}.{spec.name}", payload)

    tool = " (also a tool for the model)" if spec.tool else ""
    trailing_help = f" {trailing.upper()}: {docs[trailing]}" if trailing in docs else ""
    return click.Command(
        spec.name,
        params=params,
        callback=callback,
        help=(spec.description or f"{service}.{spec.name}") + tool + trailing_help,
        context_settings={"ignore_unknown_options": trailing is not None},
    )


def _defaults(method: Callable[..., Any]) -> dict[str, str | int | float | bool]:
    """The plain defaults of ``method``'s parameters (not ``None``), for the options to show."""
    return {
        parameter.name: parameter.default
        for parameter in inspect.signature(method).parameters.values()
        if isinstance(parameter.default, str | int | float | bool)
    }


def _option(
    name: str,
    prop: dict[str, Any],
    required: bool,
    help_text: str | None,
    default: str | int | float | bool | None,
) -> click.Option:
    flag = "--" + name.replace("_", "-")
    kind = prop.get("type")
    common: dict[str, Any] = {
        "required": required,
        "help": help_text,
        "default": default,
        "show_default": default is not None,
    }
    if kind == "boolean":
        return click.Option([f"{flag}/--no-{name.replace('_', '-')}", name], **common)
    if kind == "array":
        item = _CLICK_TYPES.get(prop.get("items", {}).get("type", "string"), click.STRING)
        common["help"] = f"{help_text} (repeatable)" if help_text else "Repeatable."
        return click.Option([flag, name], type=item, multiple=True, **common)
    if kind == "object":
        common["help"] = help_text or "A JSON object."
        return click.Option([flag, name], metavar="JSON", **common)
    if "enum" in prop and all(isinstance(value, str) for value in prop["enum"]):
        choices = click.Choice(prop["enum"])
        return click.Option([flag, name], type=choices, **common)
    return click.Option([flag, name], type=_CLICK_TYPES.get(kind or "", click.STRING), **common)


def _value(name: str, prop: dict[str, Any], value: Any) -> Any:
    if prop.get("type") == "object":
        return _json_object(value, "--" + name.replace("_", "-"))
    if prop.get("type") == "array":
        return list(value)
    return value


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=where) from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=where)
    return value


def _call(ctx: click.Context, action: str, payload: dict[str, Any]) -> None:
    from turnkit_hookspecs import unstructure

    from .cli_run import one_line, run

    result = run(_invoke, ctx.find_root().obj, action, payload)
    if not result.ok:
        click.echo(f"Error: {one_line(result.error or 'failed')}", err=True)
        sys.exit(1)
    value = result.value
    click.echo(value if isinstance(value, str) else json.dumps(unstructure(value), indent=2, default=str))
    status = _exit_status(value)
    if status:
        sys.exit(status)


def _exit_status(value: Any) -> int:
    """The exit status an action's value asks for: the ``exit_code`` of a command it ran, else 0.

    A command ended by signal N reports ``-N``; it exits ``128 + N``, as a shell reports it.
    A command still running (``exit_code`` null) is no failure.
    """
    code = value.get("exit_code") if isinstance(value, Mapping) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return 0
    return code if code >= 0 else 128 - code


async def _invoke(config_path: str | None, action: str, payload: dict[str, Any]) -> ActionResult:
    from .agent import Agent

    # An action that only reads (task list) must leave other processes' work alone: the agent
    # takes a lease and recovers nothing unless the action starts a turn.
    async with Agent(config_path, resume=False) as agent:
        return await agent.invoke(action, payload)
