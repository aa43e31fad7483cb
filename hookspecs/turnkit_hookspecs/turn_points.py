"""Extension points fired around every session turn.

Order within a turn: ``turn_authorize`` → ``turn_inbound`` →
``turn_instructions`` → ``turn_tools`` → prompt assembly → ``turn_prompt`` →
``turn_reply`` (tool calls pass ``tool_authorize``, then a plugin's tool runs
in ``tool_call``) → ``turn_outbound`` → commit →
``turn_completed`` (or ``turn_denied`` / ``turn_failed``). Implementations
may take any subset of the arguments.
"""

from __future__ import annotations

from .context import ReplyStream, SessionExtensionContext
from .kinds import effect, guard, pipeline, resolve
from .model import Deny, Message, Prompt, ToolCallBlock, ToolOutputBlock, ToolSpec, TurnInfo


@guard
def turn_authorize(ctx: SessionExtensionContext, turn: TurnInfo, message: Message) -> Deny | None:
    """Decide whether an inbound message may start a turn.

    Return ``None`` to allow or a ``Deny`` to refuse; the turn is then stored
    as ``denied`` and ``turn_denied`` fires. An implementation that raises
    counts as a deny (fail closed).

    Example::

        @hookimpl
        def turn_authorize(message):
            if message.author not in {"alice", "bob"}:
                return Deny("only alice and bob may talk to this agent")
    """


@pipeline("message")
def turn_inbound(ctx: SessionExtensionContext, turn: TurnInfo, message: Message) -> Message | None:
    """Rewrite the inbound message before it reaches the prompt.

    Return a new ``Message`` or ``None`` for unchanged. The stored inbound
    message is kept as received (nothing accepted is lost); the rewritten
    one is what the model sees in this turn. Later turns' prompts are built
    from the stored history, so a plugin whose rewrite must hold for them
    too (redaction, transcription) also rewrites ``turn_prompt``.

    Example::

        @hookimpl
        def turn_inbound(message):
            return attrs.evolve(message, blocks=[TextBlock(message.text.strip())])
    """


@pipeline("instructions")
def turn_instructions(ctx: SessionExtensionContext, turn: TurnInfo, instructions: str) -> str | None:
    """Shape the instructions (the system prompt) the model gets first in this turn's prompt.

    ``instructions`` is the session's own (``SessionAccess.set_instructions``)
    if it has any, else the agent's (``[agent] instructions`` or
    ``instructions_file``), else ``""``. Return new text, or ``None`` for
    unchanged; text left empty (or blank) means the prompt has no
    instructions. The text the turn used is stored with the turn
    (``turnkit sessions show`` lists it). Fires for every turn that was
    allowed, after ``turn_inbound``.

    Example::

        @hookimpl
        def turn_instructions(turn, instructions):
            if turn.initiator == "agent":
                return f"{instructions} You are answering another agent: reply in JSON.".strip()
    """


@pipeline("tools")
def turn_tools(
    ctx: SessionExtensionContext, turn: TurnInfo, tools: tuple[ToolSpec, ...]
) -> tuple[ToolSpec, ...] | None:
    """Offer the model tools of the plugin's own, or narrow the ones on offer, for this turn.

    ``tools`` starts as the services' actions marked ``tool=True``; return
    the tools to offer (a tuple or a list: add yours, leave out what this
    turn must not see) or ``None`` for unchanged. A tool a plugin adds is
    its own: the runtime sets its ``ToolSpec.plugin``, and a call of it
    passes ``tool_authorize`` and is then run by that plugin's ``tool_call``
    (by no other plugin's). A tool named like one already on offer (a
    service's action or an earlier plugin's tool) is refused, naming both
    owners, and the earlier one stays; a plugin cannot take over another's
    tool by rewriting it either (its owner stays). Names are the model's:
    by convention ``<plugin or server>.<tool>``.

    Example::

        @hookimpl
        def turn_tools(tools):
            city = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
            return [*tools, ToolSpec("weather.now", "The weather now in a city.", city)]
    """


@pipeline("prompt")
def turn_prompt(ctx: SessionExtensionContext, turn: TurnInfo, prompt: Prompt) -> Prompt | None:
    """Adjust the assembled prompt (history window, contributed context, tools).

    Example::

        @hookimpl
        def turn_prompt(prompt):
            rules = Message.of("system", "Answer in English.")
            return attrs.evolve(prompt, messages=(rules, *prompt.messages))
    """


@resolve(timeout=120.0)
def turn_reply(
    ctx: SessionExtensionContext, turn: TurnInfo, prompt: Prompt, stream: ReplyStream
) -> Message | None:
    """Produce the assistant's reply to a prompt: this is the model.

    The first implementation returning a ``Message`` wins; the runtime's
    offline echo model answers last (``trylast``). A reply holding tool calls
    makes the runtime run them and ask again, a bounded number of times.

    A provider that can stream writes the text to ``stream`` as it arrives
    (``await stream.write(chunk)``) and still returns the whole message,
    which is what is stored. Write only if you are going to answer.

    Example::

        @hookimpl
        async def turn_reply(prompt, stream):
            parts = []
            async for chunk in my_model.stream(prompt.messages):
                parts.append(chunk)
                await stream.write(chunk)
            return Message.of("assistant", "".join(parts))
    """


@resolve
def model_names() -> list[str] | None:
    """Name the models the agent's model serves, its default first.

    The plugin that answers ``turn_reply`` answers this too, so that what
    the agent says about its model is what really answers: ``[model] name``
    must be one of these names or the agent refuses to start (unset, it is
    the first), and the chat service's OpenAI endpoint lists them at
    ``/v1/models`` and refuses any other. The runtime's echo model answers
    ``["echo"]`` last (``trylast``). Fired at start and when a client asks
    which models there are, outside any session, so it takes no arguments.

    Example::

        @hookimpl
        def model_names():
            return ["llama3.1"]
    """


@pipeline("text")
def turn_chunk(ctx: SessionExtensionContext, turn: TurnInfo, text: str) -> str | None:
    """Rewrite one streamed chunk of the reply before a listener gets it.

    Fires only for turns someone listens to. ``turn_outbound`` still sees the
    whole reply before it is stored; a chunk pipeline sees the text in
    pieces, so a pattern may straddle two chunks.

    Example::

        @hookimpl
        def turn_chunk(text):
            return text.replace("colour", "color")
    """


@pipeline("message")
def turn_outbound(ctx: SessionExtensionContext, turn: TurnInfo, message: Message) -> Message | None:
    """Rewrite the assistant's reply before it is stored and delivered.

    Example::

        @hookimpl
        def turn_outbound(message):
            return Message.of("assistant", message.text.replace("colour", "color"))
    """


@effect
def turn_completed(ctx: SessionExtensionContext, turn: TurnInfo, message: Message, reply: Message) -> None:
    """Observe a committed turn: its inbound message and the stored reply.

    Example::

        @hookimpl
        def turn_completed(turn, reply):
            print(f"turn {turn.number} of {turn.session_id}: {reply.text}")
    """


@effect
def turn_denied(ctx: SessionExtensionContext, turn: TurnInfo, message: Message, deny: Deny) -> None:
    """Observe a turn refused by a guard; ``deny.plugin`` names who refused.

    Example::

        @hookimpl
        def turn_denied(turn, deny):
            log.warning("turn %s denied by %s: %s", turn.turn_id, deny.plugin, deny.reason)
    """


@effect
def turn_failed(ctx: SessionExtensionContext, turn: TurnInfo, message: Message, error: str) -> None:
    """Observe a turn that failed; the inbound message stays stored.

    Example::

        @hookimpl
        def turn_failed(turn, error):
            alerts.send(f"turn {turn.turn_id} failed: {error}")
    """


@guard
def tool_authorize(ctx: SessionExtensionContext, turn: TurnInfo, call: ToolCallBlock) -> Deny | None:
    """Decide whether a tool call asked for by the model may run.

    A deny is returned to the model as an error ``tool_output``.

    Example::

        @hookimpl
        def tool_authorize(call):
            if call.name == "shell.exec" and "rm" in call.args.get("argv", []):
                return Deny("no deleting files")
    """


@resolve(timeout=60.0)
def tool_call(ctx: SessionExtensionContext, turn: TurnInfo, call: ToolCallBlock) -> ToolOutputBlock | None:
    """Run a call of a tool this plugin offered in ``turn_tools``; the result goes back to the model.

    Only the plugin that offered ``call.name`` is asked, after
    ``tool_authorize`` allowed the call. Return a ``ToolOutputBlock`` for
    ``call.tool_call_id`` (``is_error=True`` for a failure the model should
    read). Raising, returning something else, returning ``None`` or running
    out of time (60 s by default; ``[plugins.timeouts] tool_call``) does not
    fail the turn: the model gets an error ``tool_output`` naming the plugin,
    and the trace shows the call with its outcome.

    Example::

        @hookimpl
        async def tool_call(call):
            if call.name == "weather.now":
                report = await weather_service.now(call.args["city"])
                return ToolOutputBlock(call.tool_call_id, report)
    """
