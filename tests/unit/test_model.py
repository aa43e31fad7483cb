"""The contract's data model (deep-frozen), its JSON form, and the kind decorators."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import attrs
import pluggy
import pytest
from turnkit_hookspecs import (
    PROJECT_NAME,
    ActionResult,
    AttachmentBlock,
    Base64Source,
    Block,
    ChannelMessage,
    ContextWindowState,
    Deny,
    DocumentBlock,
    ForkOptions,
    FrozenDict,
    FrozenList,
    ImageBlock,
    Kind,
    Message,
    Origin,
    PayloadError,
    PointKind,
    Principal,
    Prompt,
    ReasoningBlock,
    SessionInfo,
    Source,
    StoredRecord,
    TextBlock,
    ToolCallBlock,
    ToolOutputBlock,
    ToolSpec,
    TurnInfo,
    UrlSource,
    effect,
    from_json,
    guard,
    kind_of,
    pipeline,
    resolve,
    structure,
    to_json,
    turn_points,
    unstructure,
)

BLOCK_TAGS = ("attachment", "document", "image", "reasoning", "text", "tool_call", "tool_output")


def assert_round_trips(value: Any, cls: Any = None) -> Any:
    """``value`` survives to_json/from_json and unstructure/structure unchanged.

    Returns the unstructured form, after checking it is what the JSON says.
    """
    cls = cls or type(value)
    text = to_json(value)
    plain = unstructure(value)
    assert json.loads(text) == plain
    assert from_json(text, cls) == value
    assert from_json(text.encode(), cls) == value
    assert structure(plain, cls) == value
    assert structure(json.loads(text), cls) == value
    return plain


# ------------------------------------------------------------------ blocks

BLOCKS: list[tuple[str, Any, dict[str, Any]]] = [
    ("text", TextBlock("hello"), {"type": "text", "text": "hello"}),
    (
        "image-base64",
        ImageBlock(Base64Source("image/png", "iVBORw0KGgo="), alt="a pixel"),
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
            "alt": "a pixel",
        },
    ),
    (
        "image-url",
        ImageBlock(UrlSource("https://example.org/cat.jpg")),
        {
            "type": "image",
            "source": {"type": "url", "url": "https://example.org/cat.jpg", "media_type": None},
            "alt": None,
        },
    ),
    (
        "document",
        DocumentBlock(UrlSource("file:///tmp/report.pdf", "application/pdf"), title="Report"),
        {
            "type": "document",
            "source": {"type": "url", "url": "file:///tmp/report.pdf", "media_type": "application/pdf"},
            "title": "Report",
        },
    ),
    (
        "attachment-file",
        AttachmentBlock("file", "voice.ogg", source=Base64Source("audio/ogg", "T2dnUw==")),
        {
            "type": "attachment",
            "kind": "file",
            "name": "voice.ogg",
            "source": {"type": "base64", "media_type": "audio/ogg", "data": "T2dnUw=="},
            "path": None,
        },
    ),
    (
        "attachment-directory",
        AttachmentBlock("directory", "src", path="/home/alice/project/src"),
        {
            "type": "attachment",
            "kind": "directory",
            "name": "src",
            "source": None,
            "path": "/home/alice/project/src",
        },
    ),
    (
        "reasoning",
        ReasoningBlock("The user wants a list."),
        {"type": "reasoning", "text": "The user wants a list."},
    ),
    (
        "tool_call",
        ToolCallBlock("call-1", "shell.exec", {"argv": ["ls", "-l"], "timeout": 5, "env": {"A": None}}),
        {
            "type": "tool_call",
            "tool_call_id": "call-1",
            "name": "shell.exec",
            "args": {"argv": ["ls", "-l"], "timeout": 5, "env": {"A": None}},
        },
    ),
    (
        "tool_output",
        ToolOutputBlock("call-1", "permission denied", is_error=True),
        {
            "type": "tool_output",
            "tool_call_id": "call-1",
            "output": "permission denied",
            "is_error": True,
            "images": [],
        },
    ),
]


@pytest.mark.parametrize(("block", "expected"), [b[1:] for b in BLOCKS], ids=[b[0] for b in BLOCKS])
def test_block_round_trips_with_type_tags(block: Any, expected: dict[str, Any]) -> None:
    assert assert_round_trips(block) == expected
    assert_round_trips(block, Block)
    message = Message("assistant", [block])
    plain = assert_round_trips(message)
    assert plain["blocks"] == [expected]


def test_every_block_type_is_covered() -> None:
    assert {b[2]["type"] for b in BLOCKS} == set(BLOCK_TAGS)


@pytest.mark.parametrize(
    ("source", "tag"),
    [(Base64Source("text/plain", "aGk="), "base64"), (UrlSource("https://x.test/a"), "url")],
)
def test_source_round_trips_alone_and_through_the_union(source: Any, tag: str) -> None:
    assert assert_round_trips(source)["type"] == tag
    assert_round_trips(source, Source)


def test_message_with_every_block_and_metadata_round_trips() -> None:
    message = Message(
        "user",
        [b[1] for b in BLOCKS],
        id="msg-7",
        author="alice",
        metadata={"channel": "telegram", "chat": {"id": 42, "tags": ["a", "b"]}, "score": 0.5, "seen": None},
    )
    plain = assert_round_trips(message)
    assert plain["role"] == "user"
    assert plain["id"] == "msg-7"
    assert plain["author"] == "alice"
    assert plain["metadata"] == {
        "channel": "telegram",
        "chat": {"id": 42, "tags": ["a", "b"]},
        "score": 0.5,
        "seen": None,
    }
    assert [b["type"] for b in plain["blocks"]] == [b[2]["type"] for b in BLOCKS]
    assert isinstance(from_json(to_json(message), Message).blocks, tuple)


def test_message_json_form() -> None:
    assert json.loads(to_json(Message.of("user", "hi"))) == {
        "role": "user",
        "blocks": [{"type": "text", "text": "hi"}],
        "id": None,
        "author": None,
        "metadata": {},
    }


def test_message_helpers() -> None:
    call = ToolCallBlock("c1", "memory.search", {"q": "cats"})
    message = Message("assistant", [TextBlock("one"), ReasoningBlock("hidden"), call, TextBlock("two")])
    assert message.text == "one\ntwo"
    assert message.tool_calls == (call,)
    assert Message.of("system", "be brief", author="ops") == Message(
        "system", (TextBlock("be brief"),), author="ops"
    )


NESTED = {"k": 1, "tags": ["a"], "chat": {"id": 7, "seen": []}}

#: Every container field of the model: (name, build with a mapping, read the field back).
CONTAINERS: list[tuple[str, Callable[[dict[str, Any]], Any], Callable[[Any], Any]]] = [
    ("Message.metadata", lambda d: Message.of("user", "hi", metadata=d), lambda v: v.metadata),
    ("ToolCallBlock.args", lambda d: ToolCallBlock("c", "n", d), lambda v: v.args),
    ("ToolSpec.parameters", lambda d: ToolSpec("t", "d", d), lambda v: v.parameters),
    ("ForkOptions.metadata", lambda d: ForkOptions(metadata=d), lambda v: v.metadata),
    ("SessionInfo.metadata", lambda d: SessionInfo("s", "chat", metadata=d), lambda v: v.metadata),
    (
        "ChannelMessage.metadata",
        lambda d: ChannelMessage("c", "1", Principal("c", "u"), Message.of("user", "hi"), metadata=d),
        lambda v: v.metadata,
    ),
    ("StoredRecord.value", lambda d: StoredRecord("c", "k", d), lambda v: v.value),
    ("ActionResult.value", lambda d: ActionResult("s.a", True, d), lambda v: v.value),
]


@pytest.mark.parametrize(("build", "read"), [c[1:] for c in CONTAINERS], ids=[c[0] for c in CONTAINERS])
def test_every_container_field_is_deep_frozen_and_shares_nothing_with_its_input(
    build: Callable[[dict[str, Any]], Any], read: Callable[[Any], Any]
) -> None:
    given = copy.deepcopy(NESTED)
    value = build(given)
    field_value = read(value)
    assert isinstance(field_value, FrozenDict) and isinstance(field_value, dict)
    assert field_value == NESTED
    given["k"] = 2
    given["tags"].append("b")
    given["chat"]["seen"].append("x")
    assert field_value == NESTED, "the caller's dict is copied, nested ones too"
    for change in (
        lambda: field_value.__setitem__("k", 2),
        lambda: field_value.update(k=2),
        lambda: field_value["tags"].append("b"),
        lambda: field_value["chat"].__setitem__("id", 0),
        lambda: field_value["chat"]["seen"].append("x"),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert read(value) == NESTED
    assert read(attrs.evolve(value)) is field_value, "evolve does not copy a frozen value again"


def test_values_are_frozen_attrs_classes() -> None:
    message = Message.of("user", "hi")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        message.role = "assistant"  # type: ignore[misc]


def test_the_empty_default_is_one_shared_instance() -> None:
    assert Message.of("user", "a").metadata is Message.of("user", "b", metadata={}).metadata
    assert ToolCallBlock("c", "n").args is SessionInfo("s", "chat").metadata


def test_an_action_result_freezes_any_value() -> None:
    result = ActionResult("s.a", True, [{"a": 1}, ("t", [2])])
    assert isinstance(result.value, list) and isinstance(result.value[0], FrozenDict)
    assert isinstance(result.value[1][1], list)
    with pytest.raises(TypeError, match="read-only"):
        result.value.append(3)
    assert ActionResult("s.a", True, "text").value == "text"


def test_frozen_values_round_trip_and_unstructure_to_plain_data() -> None:
    message = Message(
        "assistant", [ToolCallBlock("c", "n", {"argv": ["ls"]})], metadata=copy.deepcopy(NESTED)
    )
    plain = assert_round_trips(message)
    assert type(plain["metadata"]) is dict and type(plain["metadata"]["tags"]) is list
    assert type(plain["metadata"]["chat"]["seen"]) is list
    assert type(plain["blocks"][0]["args"]["argv"]) is list
    plain["metadata"]["tags"].append("mine")  # plain data is the caller's own
    assert message.metadata == NESTED
    again = from_json(to_json(message), Message)
    assert isinstance(again.metadata["chat"], FrozenDict) and isinstance(again.blocks[0].args["argv"], list)
    with pytest.raises(TypeError, match="read-only"):
        again.blocks[0].args["argv"].append("-l")
    result = structure({"action": "s.a", "ok": True, "value": {"a": [1]}}, ActionResult)
    assert isinstance(result.value["a"], FrozenList)
    assert unstructure(result)["value"] == {"a": [1]} and type(unstructure(result)["value"]["a"]) is list


def test_values_inside_frozen_containers_are_unstructured_too() -> None:
    turn = TurnInfo("t", "s", 1, "user")
    result = ActionResult("task.list", True, [turn, {"turn": turn, "pair": (turn,)}])
    assert unstructure(result)["value"] == [
        unstructure(turn),
        {"turn": unstructure(turn), "pair": [unstructure(turn)]},
    ]
    assert json.loads(to_json(result))["value"][0] == unstructure(turn)


@pytest.mark.parametrize(
    "clone",
    [lambda v: pickle.loads(pickle.dumps(v)), copy.deepcopy, copy.copy],
    ids=["pickle", "deepcopy", "copy"],
)
def test_frozen_values_pickle_and_copy(clone: Callable[[Any], Any]) -> None:
    message = Message("user", [ToolCallBlock("c", "n", {"q": ["x"]})], metadata=copy.deepcopy(NESTED))
    again = clone(message)
    assert again == message
    assert isinstance(again.metadata["tags"], FrozenList) and isinstance(again.blocks[0].args, FrozenDict)


def test_messages_stay_hashable_and_equal_to_plain_built_ones() -> None:
    message = Message.of("user", "hi", metadata=copy.deepcopy(NESTED))
    assert hash(message) == hash(Message.of("user", "hi"))
    assert message == Message.of("user", "hi", metadata=FrozenDict(NESTED))


# ------------------------------------------------------------------ other values


def test_fork_options_with_initial_message_round_trip() -> None:
    options = ForkOptions(
        reason="research the question",
        initial_message=Message(
            "user", [TextBlock("find sources"), ImageBlock(UrlSource("https://x.test/c.png"))]
        ),
        inherit_context=False,
        metadata={"budget": 3},
    )
    plain = assert_round_trips(options)
    assert plain["initial_message"]["blocks"][1]["source"]["type"] == "url"
    assert_round_trips(ForkOptions())
    assert from_json("{}", ForkOptions) == ForkOptions()


@pytest.mark.parametrize(
    ("current", "maximum", "level"),
    [
        (0, 10_000, "ok"),
        (5_999, 10_000, "ok"),
        (6_000, 10_000, "warn"),
        (7_999, 10_000, "warn"),
        (8_000, 10_000, "critical"),
        (10_000, 10_000, "critical"),
        (12_000, 10_000, "critical"),
        (3, 5, "warn"),
        (4, 5, "critical"),
    ],
)
def test_context_window_levels(current: int, maximum: int, level: str) -> None:
    state = ContextWindowState.measure(current, maximum)
    assert state.level == level
    assert state.ratio == pytest.approx(current / maximum)
    assert (state.current_tokens, state.max_tokens) == (current, maximum)
    assert_round_trips(state)


def test_context_window_boundary_ratios() -> None:
    assert [ContextWindowState.measure(n, 10_000).ratio for n in (5_999, 6_000, 7_999, 8_000)] == [
        0.5999,
        0.6,
        0.7999,
        0.8,
    ]


@pytest.mark.parametrize("maximum", [0, -1])
def test_context_window_needs_a_positive_maximum(maximum: int) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        ContextWindowState.measure(10, maximum)


def test_context_window_level_is_checked_when_structured() -> None:
    with pytest.raises(PayloadError, match=r"\$\.level"):
        structure({"current_tokens": 1, "max_tokens": 2, "ratio": 0.5, "level": "fine"}, ContextWindowState)


def test_an_int_ratio_is_accepted_as_float() -> None:
    state = structure(
        {"current_tokens": 1, "max_tokens": 1, "ratio": 1, "level": "critical"}, ContextWindowState
    )
    assert state.ratio == 1.0
    assert isinstance(state.ratio, float)


def test_turn_info_round_trips() -> None:
    turn = TurnInfo(
        "turn-3", "sess-1", 3, "extension", initiator_id="reminders", status="failed", error="boom"
    )
    assert assert_round_trips(turn) == {
        "turn_id": "turn-3",
        "session_id": "sess-1",
        "number": 3,
        "initiator": "extension",
        "initiator_id": "reminders",
        "status": "failed",
        "error": "boom",
        "origin": None,
    }
    origin = Origin("http", "chat-1", Principal("http", "ann"), metadata={"ip": "127.0.0.1"})
    assert assert_round_trips(TurnInfo("t", "s", 1, "user", origin=origin))["origin"] == {
        "channel": "http",
        "chat_id": "chat-1",
        "principal": {"channel": "http", "id": "ann", "name": None, "role": None},
        "thread_id": None,
        "metadata": {"ip": "127.0.0.1"},
    }


def test_session_info_round_trips() -> None:
    child = SessionInfo(
        "child-1",
        "chat",
        status="merged",
        parent_session_id="root",
        root_session_id="root",
        fork_point=12,
        metadata={"reason": "research"},
    )
    assert assert_round_trips(child)["fork_point"] == 12
    assert_round_trips(SessionInfo("root", "task"))


def test_deny_round_trips() -> None:
    assert assert_round_trips(Deny("not on the allow-list", plugin="allowlist")) == {
        "reason": "not on the allow-list",
        "plugin": "allowlist",
    }
    assert from_json('{"reason": "no"}', Deny) == Deny("no")


def test_prompt_with_tools_round_trips() -> None:
    search = ToolSpec(
        "memory.search",
        "Search the agent's memory.",
        {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    )
    prompt = Prompt(
        [Message.of("system", "be brief"), Message.of("user", "what did I say?")],
        [search, ToolSpec("shell.exec", "Run a command.")],
    )
    plain = assert_round_trips(prompt)
    assert plain["tools"][0]["parameters"]["required"] == ["q"]
    assert plain["tools"][1]["parameters"] == {"type": "object", "properties": {}}
    # a JSON schema's own "type" key is data, not a union tag
    assert "type" not in plain["tools"][0]


# ------------------------------------------------------------------ errors


def problems_of(payload: Any, cls: Any) -> tuple[str, list[str]]:
    with pytest.raises(PayloadError) as info:
        structure(payload, cls)
    assert isinstance(info.value, ValueError)
    return str(info.value), info.value.problems


def text_message(*blocks: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "blocks": list(blocks), **extra}


@pytest.mark.parametrize(
    ("payload", "path", "words"),
    [
        pytest.param(
            text_message({"type": "text", "text": "ok"}, {"type": "text", "text": 3}),
            "$.blocks[1].text",
            ["expected str", "int"],
            id="int-for-str",
        ),
        pytest.param(
            {"role": "robot", "blocks": []},
            "$.role",
            ["'user'", "'assistant'", "'system'", "'tool'"],
            id="role",
        ),
        pytest.param(
            text_message({"type": "image", "source": {"type": "url"}}),
            "$.blocks[0].source.url",
            ["required field missing"],
            id="missing-url",
        ),
        pytest.param(
            text_message({"type": "image", "source": {"type": "url", "url": 7}}),
            "$.blocks[0].source.url",
            ["expected str"],
            id="int-url",
        ),
        pytest.param(
            text_message({"type": "image", "source": {"type": "ftp", "url": "ftp://x"}}),
            "$.blocks[0].source",
            ["'ftp'", "base64", "url"],
            id="unknown-source-type",
        ),
        pytest.param(
            text_message({"type": "attachment", "kind": "file", "name": "a", "source": {"type": "base64"}}),
            "$.blocks[0].source.media_type",
            ["required field missing"],
            id="attachment-source",
        ),
        pytest.param(
            text_message({"type": "attachment", "kind": "socket", "name": "a"}),
            "$.blocks[0].kind",
            ["'file'", "'directory'"],
            id="attachment-kind",
        ),
        pytest.param(
            text_message({"type": "text", "text": "a"}, {"type": "video", "url": "x"}),
            "$.blocks[1]",
            ["'video'", *BLOCK_TAGS],
            id="unknown-block-type",
        ),
        pytest.param(
            text_message({"text": "untagged"}), "$.blocks[0]", ["'type'", *BLOCK_TAGS], id="missing-tag"
        ),
        pytest.param(text_message("just text"), "$.blocks[0]", ["object"], id="block-not-object"),
        pytest.param(
            {"role": "user", "blocks": "hello"}, "$.blocks", ["expected a list", "str"], id="str-for-list"
        ),
        pytest.param(
            {"role": "user", "blocks": {"type": "text"}}, "$.blocks", ["expected a list"], id="dict-for-list"
        ),
        pytest.param({"role": "user"}, "$.blocks", ["required field missing"], id="missing-blocks"),
        pytest.param(text_message(colour="red"), "$", ["extra", "colour"], id="extra-key"),
        pytest.param(
            text_message({"type": "text", "text": "a", "bold": True}),
            "$.blocks[0]",
            ["extra", "bold"],
            id="extra-block-key",
        ),
        pytest.param(
            text_message({"type": "tool_output", "tool_call_id": "c", "output": "x", "is_error": "yes"}),
            "$.blocks[0].is_error",
            ["expected bool"],
            id="str-for-bool",
        ),
        pytest.param(
            text_message({"type": "tool_output", "tool_call_id": "c", "output": 200}),
            "$.blocks[0].output",
            ["expected str", "int"],
            id="int-for-output",
        ),
        pytest.param(
            text_message({"type": "tool_call", "tool_call_id": "c", "name": "x", "args": ["a"]}),
            "$.blocks[0].args",
            ["mapping"],
            id="list-for-args",
        ),
        pytest.param(text_message(id=5), "$.id", ["expected str", "int"], id="int-for-id"),
        pytest.param(text_message(metadata="x"), "$.metadata", ["mapping"], id="str-for-metadata"),
    ],
)
def test_bad_message_names_the_path(payload: dict[str, Any], path: str, words: list[str]) -> None:
    message, problems = problems_of(payload, Message)
    assert message.startswith("invalid Message: ")
    assert any(problem.endswith(f" @ {path}") for problem in problems), problems
    (problem,) = [p for p in problems if p.endswith(f" @ {path}")]
    for word in words:
        assert word in problem


def test_every_problem_is_reported() -> None:
    payload = text_message({"type": "text", "text": 1}, {"type": "text"}, id=2)
    _, problems = problems_of(payload, Message)
    assert sorted(p.rpartition(" @ ")[2] for p in problems) == [
        "$.blocks[0].text",
        "$.blocks[1].text",
        "$.id",
    ]


def test_nested_message_path() -> None:
    payload = {"reason": "r", "initial_message": text_message({"type": "text", "text": None})}
    _, problems = problems_of(payload, ForkOptions)
    assert problems == ["expected str, got NoneType None @ $.initial_message.blocks[0].text"]


@pytest.mark.parametrize("payload", [["role", "user"], "a message", 3, None, True])
def test_top_level_must_be_an_object(payload: Any) -> None:
    message, problems = problems_of(payload, Message)
    assert problems == [f"expected an object, got {type(payload).__name__} @ $"]
    assert "invalid Message" in message


def test_top_level_array_from_json() -> None:
    with pytest.raises(PayloadError, match=r"expected an object, got list @ \$"):
        from_json('[{"role": "user"}]', Message)


@pytest.mark.parametrize("text", ['{"role": "user", ', "", "{'role': 'user'}", b"\xff\xfe{"])
def test_malformed_json(text: str | bytes) -> None:
    with pytest.raises(PayloadError, match=r"^invalid Message: not JSON") as info:
        from_json(text, Message)
    assert info.value.target == "Message"


@pytest.mark.parametrize(
    ("payload", "cls", "path"),
    [
        ({"turn_id": "t", "session_id": "s", "number": "3", "initiator": "user"}, TurnInfo, "$.number"),
        ({"turn_id": "t", "session_id": "s", "number": 3.0, "initiator": "user"}, TurnInfo, "$.number"),
        ({"turn_id": "t", "session_id": "s", "number": True, "initiator": "user"}, TurnInfo, "$.number"),
        ({"turn_id": 1, "session_id": "s", "number": 3, "initiator": "user"}, TurnInfo, "$.turn_id"),
        ({"session_id": "s", "kind": "chat", "fork_point": "12"}, SessionInfo, "$.fork_point"),
        ({"reason": 404}, Deny, "$.reason"),
        ({"name": "n", "description": 1}, ToolSpec, "$.description"),
        (
            {"current_tokens": 1, "max_tokens": 2, "ratio": "0.5", "level": "ok"},
            ContextWindowState,
            "$.ratio",
        ),
        ({"current_tokens": 1, "max_tokens": 2, "ratio": True, "level": "ok"}, ContextWindowState, "$.ratio"),
        ({"inherit_context": 1}, ForkOptions, "$.inherit_context"),
    ],
)
def test_no_lossy_coercion(payload: dict[str, Any], cls: Any, path: str) -> None:
    _, problems = problems_of(payload, cls)
    assert [p.rpartition(" @ ")[2] for p in problems] == [path]


def test_a_block_class_refuses_another_blocks_tag() -> None:
    _, problems = problems_of({"type": "image", "text": "x"}, TextBlock)
    assert problems == ["type 'image' does not match TextBlock (expected 'text') @ $"]
    assert structure({"text": "untagged is fine"}, TextBlock) == TextBlock("untagged is fine")


def test_structuring_does_not_mutate_the_payload() -> None:
    payload = {
        "role": "user",
        "blocks": [
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
            {
                "type": "attachment",
                "kind": "file",
                "name": "a",
                "source": {"type": "url", "url": "file:///a"},
            },
            {"type": "tool_call", "tool_call_id": "c", "name": "n", "args": {"type": "kept"}},
        ],
        "metadata": {"nested": {"type": "kept"}},
    }
    before = copy.deepcopy(payload)
    message = structure(payload, Message)
    assert payload == before
    assert message.blocks[3].args == {"type": "kept"}
    # the structured value does not share the caller's dicts, nested ones included
    payload["metadata"]["added"] = True
    payload["metadata"]["nested"]["added"] = True
    payload["blocks"][3]["args"]["added"] = True
    assert "added" not in message.metadata
    assert "added" not in message.metadata["nested"]
    assert "added" not in message.blocks[3].args

    bad = copy.deepcopy(payload)
    bad["blocks"][1]["source"]["data"] = 1
    snapshot = copy.deepcopy(bad)
    with pytest.raises(PayloadError):
        structure(bad, Message)
    assert bad == snapshot


# ------------------------------------------------------------------ kinds


def test_pipeline_needs_the_threaded_argument() -> None:
    def spec(message: Message) -> Message | None:
        """Doc."""

    with pytest.raises(TypeError, match=r"'spec' has no argument 'prompt'"):
        pipeline("prompt")(spec)


def test_pipeline_needs_an_annotation() -> None:
    def spec(message):  # type: ignore[no-untyped-def]
        """Doc."""

    with pytest.raises(TypeError, match="must annotate its threaded argument 'message'"):
        pipeline("message")(spec)


def test_pipeline_needs_a_checkable_type() -> None:
    def spec(message: Message | None) -> Message | None:
        """Doc."""

    with pytest.raises(TypeError, match="not a checkable type"):
        pipeline("message")(spec)


@pytest.mark.parametrize(
    "decorator",
    [guard, resolve, effect, effect(timeout=1.0), pipeline("message")],
    ids=["guard", "resolve", "effect", "effect-timeout", "pipeline"],
)
def test_a_spec_needs_a_docstring(decorator: Any) -> None:
    def spec(message: Message) -> None:
        pass

    with pytest.raises(TypeError, match="'spec' needs a docstring"):
        decorator(spec)


def test_kind_of_reads_what_the_decorator_recorded() -> None:
    def plain(message: Message) -> None:
        """Doc."""

    assert kind_of(plain) is None

    @guard
    def a_guard(message: Message) -> Deny | None:
        """Doc."""

    @resolve
    def a_resolve(prompt: Prompt) -> Message | None:
        """Doc."""

    @effect
    def an_effect(message: Message) -> None:
        """Doc."""

    @effect(timeout=2.5)
    def a_slow_effect(message: Message) -> None:
        """Doc."""

    @pipeline("message")
    def a_pipeline(turn: TurnInfo, message: Message) -> Message | None:
        """Doc."""

    @pipeline("messages")
    def a_list_pipeline(messages: list[Message]) -> list[Message] | None:
        """Doc."""

    assert kind_of(a_guard) == PointKind(Kind.GUARD)
    assert kind_of(a_resolve) == PointKind(Kind.RESOLVE, value_type=Message)
    assert kind_of(an_effect) == PointKind(Kind.EFFECT, timeout=None)
    assert kind_of(a_slow_effect) == PointKind(Kind.EFFECT, timeout=2.5)
    assert kind_of(a_pipeline) == PointKind(Kind.PIPELINE, value="message", value_type=Message)
    assert kind_of(a_list_pipeline) == PointKind(Kind.PIPELINE, value="messages", value_type=list)

    # each decorator is also pluggy's hookspec marker
    for spec in (a_guard, a_resolve, an_effect, a_slow_effect, a_pipeline):
        assert hasattr(spec, f"{PROJECT_NAME}_spec")
        assert getattr(spec, f"{PROJECT_NAME}_spec")["firstresult"] is False


def test_kind_decorators_produce_specs_pluggy_accepts() -> None:
    class Specs:
        @guard
        def x_authorize(self, message: Message) -> Deny | None:
            """Doc."""

        @pipeline("message")
        def x_inbound(self, message: Message) -> Message | None:
            """Doc."""

    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(Specs)
    assert {"x_authorize", "x_inbound"} <= set(vars(pm.hook))
    assert kind_of(pm.hook.x_inbound.spec.function).value == "message"


def test_core_pipelines_record_their_value_type() -> None:
    assert kind_of(turn_points.turn_inbound) == PointKind(Kind.PIPELINE, value="message", value_type=Message)
    assert kind_of(turn_points.turn_prompt) == PointKind(Kind.PIPELINE, value="prompt", value_type=Prompt)
    assert kind_of(turn_points.turn_outbound) == PointKind(Kind.PIPELINE, value="message", value_type=Message)
