"""The memory service end to end: real agents on a SQLite file, its actions, tools, points and CLI.

Full-text search is checked against a corpus of thirty memories on distinct
topics (tests/services/memory_support.py) with queries whose best hit is
known; vector search with a deterministic bag-of-words embedder answering
``memory_embed``; recall by looking at the prompt the model is asked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from turnkit.agent import Agent
from turnkit.errors import ConfigError
from turnkit_hookspecs import Message, ToolOutputBlock, TurnResult
from turnkit_services.memory import MemoryService

from tests.support.agents import ModelSpy, running_agent
from tests.support.dists import run_turnkit

from .memory_support import (
    CORPUS,
    CardRedactor,
    HashingEmbedder,
    Rescoper,
    StoredRecorder,
    cosine,
    embed,
)


def memory_agent(tmp_path: Path, **options: Any) -> AbstractAsyncContextManager[Agent]:
    """A started agent running the memory service (and whatever ``options`` add)."""
    return running_agent(tmp_path, services=[MemoryService()], **options)


async def remember(agent: Agent, text: str, **payload: Any) -> dict[str, Any]:
    result = await agent.invoke("memory.store", {"text": text, **payload})
    assert result.ok, result.error
    value: dict[str, Any] = result.value
    return value


async def search(agent: Agent, query: str, **payload: Any) -> list[dict[str, Any]]:
    result = await agent.invoke("memory.search", {"query": query, **payload})
    assert result.ok, result.error
    found: list[dict[str, Any]] = result.value
    return found


async def store_corpus(agent: Agent) -> dict[str, str]:
    """Store :data:`CORPUS` (agent scope); label → memory id."""
    return {label: (await remember(agent, text))["id"] for label, text in CORPUS.items()}


def labels(found: Sequence[dict[str, Any]], ids: dict[str, str]) -> list[str]:
    """The corpus labels of search results (the text for a memory outside the corpus)."""
    by_id = {memory_id: label for label, memory_id in ids.items()}
    return [by_id.get(memory["id"], memory["text"]) for memory in found]


def texts(found: Sequence[dict[str, Any]]) -> list[str]:
    return [memory["text"] for memory in found]


async def tool_output(agent: Agent, result: TurnResult) -> tuple[Any, bool]:
    """The last tool output of the turn's session: (its value, parsed when JSON; whether an error)."""
    assert result.turn.status == "completed", result.turn.error
    history = await agent.sessions.history(result.turn.session_id)
    block = [b for m in history for b in m.blocks if isinstance(b, ToolOutputBlock)][-1]
    return (block.output if block.is_error else json.loads(block.output)), block.is_error


def recall_note(messages: Sequence[Message]) -> Message | None:
    notes = [m for m in messages if m.role == "system" and m.text.startswith("Relevant memories:")]
    assert len(notes) <= 1
    return notes[0] if notes else None


# ------------------------------------------------------------------ full-text search

#: Queries and the corpus memory that must come first for each.
BEST_HITS = {
    "peanuts": "allergy",
    "what is the wifi password": "wifi",
    "Berlin marathon": "marathon",
    "when is Erin back from Portugal": "holiday",
    "lasagne with nutmeg": "recipe",
    "which PostgreSQL version": "database",
    "who walks Pepper by the river": "dog",
    "glossy paper jams": "printer",
    "Japanese flashcards": "language",
    "a permit for visitor parking": "parking",
}


async def test_full_text_search_puts_the_right_memory_first(tmp_path: Path) -> None:
    async with memory_agent(tmp_path) as agent:
        ids = await store_corpus(agent)
        for mode in ("text", "hybrid"):  # with no embedder, hybrid is full-text
            best = {query: labels(await search(agent, query, mode=mode), ids)[0] for query in BEST_HITS}
            assert best == BEST_HITS, mode


async def test_more_relevant_memories_rank_first(tmp_path: Path) -> None:
    async with memory_agent(tmp_path) as agent:
        ids = await store_corpus(agent)
        found = await search(agent, "black coffee without sugar")
        assert labels(found, ids) == ["coffee", "tea"], "three words match the first, one the second"
        assert found[0]["score"] > found[1]["score"] > 0

        assert len(await search(agent, "the", limit=3)) == 3
        assert await search(agent, "volcano") == []
        assert await search(agent, "?!") == [], "no words, no matches (and no query syntax)"


async def test_a_session_memory_stays_in_its_session(tmp_path: Path) -> None:
    async with memory_agent(tmp_path) as agent:
        mine = await remember(agent, "The locker code is 4512", scope="session", scope_id="s-1")
        assert (mine["scope"], mine["scope_id"], mine["session_id"]) == ("session", "s-1", None)
        await remember(agent, "The locker is in the basement", scope="session", scope_id="s-2")

        def where(scope: str, scope_id: str | None = None) -> dict[str, Any]:
            return {"scope": scope, **({"scope_id": scope_id} if scope_id else {})}

        assert texts(await search(agent, "locker", **where("session", "s-1"))) == ["The locker code is 4512"]
        assert texts(await search(agent, "locker code", **where("session", "s-2"))) == [
            "The locker is in the basement"
        ]
        assert await search(agent, "locker", **where("session", "s-3")) == []
        assert await search(agent, "locker", **where("agent")) == []
        assert len(await search(agent, "locker")) == 2, "outside a turn, every scope of the agent"

        listed = await agent.invoke("memory.list", where("session", "s-1"))
        assert listed.ok and texts(listed.value) == ["The locker code is 4512"]


async def test_in_a_turn_tools_reach_only_the_turns_session_and_principal(tmp_path: Path) -> None:
    def tool(name: str, **args: Any) -> dict[str, Any]:
        return {"tool": f"memory.{name}", "args": args}

    script = [
        tool("store", text="The spare key is under the blue flowerpot"),
        {"text": "noted"},
        tool("search", query="spare key"),
        {"text": "done"},
        tool("search", query="spare key"),
        {"text": "done"},
        tool("store", text="I prefer aisle seats on trains", scope="principal"),
        {"text": "noted"},
        tool("search", query="aisle seats trains"),
        {"text": "done"},
        tool("search", query="aisle seats trains"),
        {"text": "done"},
        tool("store", text="sneaky", scope="session", scope_id="session-b"),
        {"text": "tried"},
    ]
    async with memory_agent(tmp_path, model={"script": script}) as agent:
        stored, error = await tool_output(agent, await agent.send("remember the key", "session-a"))
        assert not error and (stored["scope"], stored["scope_id"]) == ("session", "session-a")
        assert stored["session_id"] == "session-a", "a memory knows the turn that stored it"

        elsewhere, _ = await tool_output(agent, await agent.send("where is the key?", "session-b"))
        assert elsewhere == []
        here, _ = await tool_output(agent, await agent.send("where is the key?", "session-a"))
        assert texts(here) == ["The spare key is under the blue flowerpot"]

        by_42 = {"initiator_id": "telegram:42"}
        stored, _ = await tool_output(agent, await agent.send("note my seats", "p-1", **by_42))
        assert (stored["scope"], stored["scope_id"]) == ("principal", "telegram:42")
        same_person, _ = await tool_output(agent, await agent.send("seats?", "p-2", **by_42))
        assert texts(same_person) == ["I prefer aisle seats on trains"], "a principal's memory follows them"
        other, _ = await tool_output(agent, await agent.send("seats?", "p-3", initiator_id="telegram:43"))
        assert other == []
        outside = await search(agent, "aisle", scope="principal", scope_id="telegram:42")
        assert texts(outside) == ["I prefer aisle seats on trains"]

        refused, error = await tool_output(agent, await agent.send("write elsewhere", "session-a"))
        assert error and "out of reach" in refused
        assert await search(agent, "sneaky") == []


async def test_store_and_search_are_the_tools_offered_to_the_model(tmp_path: Path) -> None:
    async with memory_agent(tmp_path) as agent:
        tools = {tool.name: tool for tool in agent.actions.tools if tool.name.startswith("memory.")}
        assert sorted(tools) == ["memory.search", "memory.store"]
        assert tools["memory.store"].parameters["required"] == ["text"]
        assert tools["memory.search"].parameters["properties"]["limit"] == {"type": "integer"}
        assert {"memory.get", "memory.forget", "memory.list"} <= set(agent.actions.names())


async def test_forget_removes_a_memory_from_every_search(tmp_path: Path) -> None:
    async with memory_agent(tmp_path, plugins={"embedder": HashingEmbedder()}) as agent:
        ids = await store_corpus(agent)
        assert labels(await search(agent, "peanuts epinephrine", mode="vector"), ids)[0] == "allergy"

        forgotten = await agent.invoke("memory.forget", {"id": ids["allergy"]})
        assert forgotten.ok and forgotten.value["text"] == CORPUS["allergy"]

        for mode in ("text", "vector", "hybrid"):
            assert "allergy" not in labels(await search(agent, "peanuts epinephrine", mode=mode), ids), mode
        gone = await agent.invoke("memory.get", {"id": ids["allergy"]})
        assert not gone.ok and f"no memory {ids['allergy']!r}" in (gone.error or "")
        again = await agent.invoke("memory.forget", {"id": ids["allergy"]})
        assert not again.ok
        listed = await agent.invoke("memory.list", {"limit": 100})
        assert len(listed.value) == len(CORPUS) - 1


async def test_list_is_newest_first_and_get_returns_one(tmp_path: Path) -> None:
    async with memory_agent(tmp_path) as agent:
        first = await remember(agent, "first thing")
        second = await remember(agent, "second thing")
        listed = await agent.invoke("memory.list", {})
        assert [m["id"] for m in listed.value] == [second["id"], first["id"]]
        got = await agent.invoke("memory.get", {"id": first["id"]})
        assert got.ok and got.value == first


# ------------------------------------------------------------------ the points


async def test_the_redaction_pipeline_rewrites_text_before_it_is_stored(tmp_path: Path) -> None:
    embedder, recorder = HashingEmbedder(), StoredRecorder()
    plugins = {"redactor": CardRedactor(), "embedder": embedder, "recorder": recorder}
    async with memory_agent(tmp_path, plugins=plugins) as agent:
        recorder.agent = agent
        stored = await remember(agent, "Pay the plumber with card 4111111111111111 please")
        assert stored["text"] == "Pay the plumber with card [card] please"
        got = await agent.invoke("memory.get", {"id": stored["id"]})
        assert got.value["text"] == "Pay the plumber with card [card] please"
        assert await search(agent, "4111111111111111") == [], "the number never reached the index"
        assert texts(await search(agent, "plumber card")) == [stored["text"]]
        embedded = [text for purpose, text in embedder.asked if purpose == "memory"]
        assert embedded == ["Pay the plumber with card [card] please"], "nor the embedding model"

        refused = await agent.invoke("memory.store", {"text": "a forbidden thing"})
        assert not refused.ok
        assert "redactor" in (refused.error or "") and "may not be kept" in (refused.error or "")
        await agent.dispatcher.drain()
        assert [m.id for m in recorder.stored] == [stored["id"]], "a refused memory is not announced"
        assert len((await agent.invoke("memory.list", {})).value) == 1


async def test_the_pipeline_may_move_a_memory_to_another_scope_but_not_change_its_id(tmp_path: Path) -> None:
    script = [
        {"tool": "memory.store", "args": {"text": "team: the release is on Friday"}},
        {"text": "noted"},
    ]
    async with memory_agent(tmp_path, plugins={"rescoper": Rescoper()}, model={"script": script}) as agent:
        result = await agent.send("remember the release date", "s-1")
        assert result.turn.status == "completed"
        (moved,) = (await agent.invoke("memory.list", {"scope": "agent"})).value
        assert (moved["text"], moved["scope_id"], moved["session_id"]) == (
            "the release is on Friday",
            agent.id,
            "s-1",
        )
        stolen = await agent.invoke("memory.store", {"text": "steal: this"})
        assert not stolen.ok and "not its id or agent_id" in (stolen.error or "")


async def test_turn_scope_picks_where_the_models_memories_go(tmp_path: Path) -> None:
    script = [{"tool": "memory.store", "args": {"text": "Uma likes window seats"}}, {"text": "noted"}]
    table = {"memory": {"turn_scope": "principal"}}
    async with memory_agent(tmp_path, model={"script": script}, service=table) as agent:
        stored, _ = await tool_output(agent, await agent.send("note it", "s-1", initiator_id="http:uma"))
        assert (stored["scope"], stored["scope_id"]) == ("principal", "http:uma")


async def test_memory_stored_fires_after_the_memory_is_committed(tmp_path: Path) -> None:
    recorder = StoredRecorder()
    async with memory_agent(tmp_path, plugins={"recorder": recorder}) as agent:
        recorder.agent = agent
        one = await remember(agent, "Quentin takes the night bus")
        two = await remember(agent, "Rosa waters the ferns", scope="session", scope_id="s-9")
        await agent.dispatcher.drain()
        assert [m.to_dict() for m in recorder.stored] == [one, two]
        assert recorder.readable == [True, True], "each memory could be read back when the effect ran"


# ------------------------------------------------------------------ vector search


async def test_vector_search_ranks_by_cosine_similarity(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    async with memory_agent(tmp_path, plugins={"embedder": embedder}) as agent:
        ids = await store_corpus(agent)
        query = "Bob takes his coffee black in the morning"
        found = await search(agent, query, mode="vector", limit=8)

        assert labels(found, ids)[0] == "coffee"
        scores = [m["score"] for m in found]
        assert scores == sorted(scores, reverse=True)
        for memory in found:
            assert memory["score"] == pytest.approx(cosine(embed(query), embed(memory["text"])))
        returned = {m["id"] for m in found}
        missed = [
            label
            for label, text in CORPUS.items()
            if cosine(embed(query), embed(text)) > scores[-1] + 1e-9 and ids[label] not in returned
        ]
        assert missed == [], "nothing more similar than the last result was left out"
        assert ("query", query) in embedder.asked and ("memory", CORPUS["coffee"]) in embedder.asked


async def test_vector_search_finds_what_full_text_cannot_and_hybrid_fuses_both(tmp_path: Path) -> None:
    async with memory_agent(tmp_path, plugins={"embedder": HashingEmbedder()}) as agent:
        ids = await store_corpus(agent)
        # "automobile" is a synonym of "car" for the embedder; no memory holds the word
        assert await search(agent, "automobile", mode="text") == []
        assert labels(await search(agent, "automobile", mode="vector"), ids)[0] == "car"

        query = "automobile coffee"
        by_text = labels(await search(agent, query, mode="text"), ids)
        by_vector = labels(await search(agent, query, mode="vector"), ids)
        assert sorted(by_text) == ["coffee", "tea"]
        assert set(by_vector[:3]) == {"coffee", "tea", "car"}
        hybrid = await search(agent, query, limit=3)
        assert set(labels(hybrid, ids)[:2]) == {"coffee", "tea"}, "found by both searches: first"
        assert labels(hybrid, ids)[2] == "car", "found by vectors alone: after them, still found"

        def fused(label: str) -> float:  # reciprocal rank fusion, k = 60
            ranks = [r.index(label) + 1 for r in (by_text, by_vector) if label in r]
            return sum(1 / (60 + rank) for rank in ranks)

        assert [m["score"] for m in hybrid] == pytest.approx([fused(label) for label in labels(hybrid, ids)])


async def test_min_similarity_drops_weak_vector_hits(tmp_path: Path) -> None:
    table = {"memory": {"min_similarity": 0.7}}
    async with memory_agent(tmp_path, plugins={"embedder": HashingEmbedder()}, service=table) as agent:
        await remember(agent, "The company car is a blue hatchback")  # cosine 3 / sqrt(3 * 7) = 0.65
        await remember(agent, "Blue hatchback car")  # cosine 1
        assert texts(await search(agent, "blue hatchback car", mode="vector")) == ["Blue hatchback car"]


async def test_vector_search_without_an_embedder_is_a_clear_error(tmp_path: Path) -> None:
    async with memory_agent(tmp_path) as agent:
        await remember(agent, "anything")
        result = await agent.invoke("memory.search", {"query": "anything", "mode": "vector"})
        assert not result.ok and "no plugin answers memory_embed" in (result.error or "")
        stored = await agent.invoke("memory.get", {"id": (await search(agent, "anything"))[0]["id"]})
        assert stored.ok


# ------------------------------------------------------------------ recall into the prompt


async def test_recall_puts_matching_memories_before_the_inbound_message(tmp_path: Path) -> None:
    spy = ModelSpy()
    table = {"memory": {"recall": True, "recall_limit": 2}}
    async with memory_agent(tmp_path, plugins={"spy": spy}, service=table) as agent:
        ids = await store_corpus(agent)
        await agent.send("How does Bob take his coffee?")
        *_, note, inbound = spy.prompts[-1].messages
        assert inbound.text == "How does Bob take his coffee?"
        assert note.role == "system"
        assert note.text.splitlines() == [
            "Relevant memories:",
            f"- {CORPUS['coffee']}",
            f"- {CORPUS['tea']}",
        ]
        assert note.metadata["memories"] == [ids["coffee"], ids["tea"]]

        await agent.send("xylophone quasar")
        assert recall_note(spy.prompts[-1].messages) is None, "nothing matches: nothing added"


async def test_recall_searches_the_turns_own_scopes(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with memory_agent(tmp_path, plugins={"spy": spy}, service={"memory": {"recall": True}}) as agent:
        await remember(agent, "The boiler is serviced every October")
        await remember(agent, "The boiler in flat three knocks", scope="session", scope_id="s-a")
        await remember(agent, "My boiler is a combi", scope="principal", scope_id="telegram:42")

        async def recalled(session_id: str, initiator_id: str | None = None) -> set[str]:
            await agent.send("tell me about the boiler", session_id, initiator_id=initiator_id)
            note = recall_note(spy.prompts[-1].messages)
            return {line.removeprefix("- ") for line in note.text.splitlines()[1:]} if note else set()

        agent_wide = "The boiler is serviced every October"
        assert await recalled("s-b") == {agent_wide}
        assert await recalled("s-a") == {agent_wide, "The boiler in flat three knocks"}
        assert await recalled("s-c", "telegram:42") == {agent_wide, "My boiler is a combi"}
        assert await recalled("s-d", "telegram:43") == {agent_wide}


async def test_recall_is_off_unless_configured(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with memory_agent(tmp_path, plugins={"spy": spy}) as agent:
        await store_corpus(agent)
        await agent.send("How does Bob take his coffee?")
        assert recall_note(spy.prompts[-1].messages) is None
        assert [m.role for m in spy.prompts[-1].messages] == ["user"]


# ------------------------------------------------------------------ bad input and configuration


@pytest.mark.parametrize(
    ("action", "payload", "error"),
    [
        ("store", {"text": "  "}, "text must be a non-empty string"),
        ("store", {"text": "x" * 4001}, "4001 characters; [service.memory] max_chars is 4000"),
        ("store", {"text": "x", "scope": "team"}, "scope must be one of agent, session, principal, got"),
        ("store", {"text": "x", "scope": "session"}, "scope 'session' needs scope_id (a session id)"),
        ("store", {"text": "x", "scope": "agent", "scope_id": "other"}, "it takes no scope_id"),
        ("search", {"query": "x", "scope_id": "s-1"}, "scope_id 's-1' needs a scope"),
        ("search", {"query": "x", "limit": 0}, "limit must be a whole number of at least 1, got 0"),
        ("list", {"limit": "5"}, "limit must be a whole number of at least 1, got '5'"),
        ("search", {"query": 7}, "query must be a string, got 7"),
        ("search", {"query": "x", "mode": "fuzzy"}, "mode must be one of hybrid, text, vector, got 'fuzzy'"),
        ("get", {"id": "nope"}, "no memory 'nope'"),
        ("store", {}, "bad payload"),
    ],
)
async def test_bad_input_is_refused_naming_what_is_wrong(
    tmp_path: Path, action: str, payload: dict[str, Any], error: str
) -> None:
    async with memory_agent(tmp_path) as agent:
        result = await agent.invoke(f"memory.{action}", payload)
        assert not result.ok and error in (result.error or ""), result.error


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"recall_scopes": ["everyone"]}, r"@ \$\.service\.memory\.recall_scopes\[0\]"),
        ({"recall_limit": 0}, r"'recall_limit' must be >= 1"),
        ({"recal": True}, r"extra fields found \(recal\)"),
    ],
)
async def test_bad_settings_stop_the_agent_naming_the_key(
    tmp_path: Path, table: dict[str, Any], error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        async with memory_agent(tmp_path, service={"memory": table}):
            pass


# ------------------------------------------------------------------ command line


def test_the_command_line_stores_and_searches_durably(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[store]\nurl = "memory.db"\n')

    def memory(*args: str) -> Any:
        result = run_turnkit("--config", str(config), "memory", *args, timeout=60)
        assert result.returncode == 0, str(result)
        return result.json()

    stored = memory("store", "--text", "The boiler service is booked for Friday")
    assert (stored["scope"], stored["text"]) == ("agent", "The boiler service is booked for Friday")
    found = memory("search", "--query", "when is the boiler service")
    assert [m["id"] for m in found] == [stored["id"]], "a second process finds it: it is in the store"

    memory("store", "--text", "Locker 12 is mine", "--scope", "session", "--scope-id", "s-1")
    assert texts(memory("search", "--query", "locker", "--scope", "session", "--scope-id", "s-1")) == [
        "Locker 12 is mine"
    ]
    assert memory("search", "--query", "locker", "--scope", "session", "--scope-id", "s-2") == []

    assert memory("forget", "--id", stored["id"])["id"] == stored["id"]
    assert memory("search", "--query", "boiler") == []
    assert (tmp_path / "memory.db").is_file()
