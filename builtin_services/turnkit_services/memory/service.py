"""The memory service: memories scoped to the agent, a session or a principal, and their search.

Memories are records of ``context.storage("memory")``, collection
``memories``, one per memory, keyed by its id: the text is the record's
indexed ``text`` (full-text search with bm25 ranking) and the value holds the
scope, the agent, where the memory came from and, when a plugin answers
``memory_embed``, its unit vector (packed: see :mod:`.ranking`). Vector
search is brute force over the memories in reach: right for thousands of
memories, not for millions.

Reach. Outside a turn (the command line, another service), every memory of
this agent can be reached and a session or principal scope is named with
``scope_id``. Inside a turn (the model calling a tool) only the turn's own
session, its principal (the turn's ``initiator_id``) and the agent are in
reach, so that a model talked into it cannot read or write another
person's memories.

Recall. With ``[service.memory] recall = true`` the service's own
``turn_prompt`` implementation searches the turn's scopes for the inbound
message and adds what it finds as one system message just before it.
``turn_prompt`` rather than contributed context, because context
contributed through a session lands in the *next* turn's prompt, while
recall must answer the message being asked now, and it must see that
message as ``turn_inbound`` left it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, get_args

import attrs
from turnkit_hookspecs import (
    ExecutionContext,
    Message,
    Prompt,
    Service,
    StoredRecord,
    TurnInfo,
    action,
    current_turn,
    hookimpl,
)

from . import points
from .model import SCOPES, Memory, Scope
from .ranking import cosine, fuse, pack, unit_vector, unpack
from .settings import MemorySettings

#: The storage collection holding the memories.
COLLECTION = "memories"
#: Metadata key of the recall message: the ids of the memories it holds.
RECALLED = "memories"
#: How a search ranks: bm25 only, cosine only, or both fused (see :mod:`.ranking`).
Mode: TypeAlias = Literal["hybrid", "text", "vector"]
#: Fields of a memory its record keeps elsewhere: the id is the key, the text the indexed text,
#: and the score belongs to a search.
NOT_IN_VALUE = frozenset({"id", "text", "score"})
#: In a hybrid search, how many candidates each ranking offers per result asked for.
CANDIDATES = 4

#: A ``where`` filter of the storage selecting the memories of one scope (or of the whole agent).
Where: TypeAlias = dict[str, str]


class MemoryService(Service):
    """Memories scoped to the agent, a session or a principal, with full-text and vector search."""

    name = "memory"
    hookspecs = (points,)
    settings_class = MemorySettings
    settings: MemorySettings

    async def start(self, context: ExecutionContext) -> None:
        """Keep the context; nothing to open (the memories live in the agent's store)."""
        self.context = context
        if self.settings is None:
            self.settings = MemorySettings()

    # ------------------------------------------------------------------ actions

    @action(tool=True)
    async def store(
        self, text: str, scope: Scope | None = None, scope_id: str | None = None
    ) -> dict[str, Any]:
        """Remember a text; scope: session, principal or agent (in a turn: this session by default).

        Outside a turn the default scope is ``agent``, and a ``session`` or
        ``principal`` scope needs its ``scope_id``. The memory passes the
        ``memory_store`` pipeline (redaction) before it is embedded and
        written; ``memory_stored`` fires once it is committed.

        Args:
            text: what to remember.
            scope: whose memory it is (outside a turn: agent).
            scope_id: the session id, or the principal (channel:id), the scope is of.
        """
        turn = current_turn()
        chosen = _scope(scope) if scope is not None else self.settings.turn_scope if turn else "agent"
        memory = Memory(
            id=uuid.uuid4().hex,
            text=self._checked_text(text, "text"),
            scope=chosen,
            scope_id=self._scope_id(chosen, scope_id, turn),
            agent_id=self.context.agent_id,
            created=time.time(),
            session_id=turn.session_id if turn else None,
            turn_id=turn.turn_id if turn else None,
        )
        rewritten = await self.context.plugins.pipeline("memory_store", memory=memory)
        memory = self._after_pipeline(memory, rewritten, turn)
        value = {k: v for k, v in memory.to_dict().items() if k not in NOT_IN_VALUE}
        vector = await self._embed(memory.text, "memory")
        if vector:
            value["vector"] = pack(vector)
        await self.storage.put(COLLECTION, memory.id, value, text=memory.text, expect=0)
        await self.context.plugins.effect("memory_stored", memory=memory)
        return memory.to_dict()

    @action(tool=True)
    async def search(
        self,
        query: str,
        scope: Scope | None = None,
        scope_id: str | None = None,
        limit: int = 5,
        mode: Mode = "hybrid",
    ) -> list[dict[str, Any]]:
        """Find memories matching a query, best first (in a turn: this session's, principal's, agent's).

        ``mode``: ``hybrid`` (default) fuses full-text and vector rankings
        when a plugin answers ``memory_embed`` and is full-text alone
        otherwise; ``text`` is full-text only (``score`` is bm25's);
        ``vector`` is cosine similarity only (``score`` is the cosine).

        Args:
            query: the words to look for.
            scope: only the memories of this scope (default: every scope in reach).
            scope_id: the session id, or the principal (channel:id), the scope is of.
            limit: the most memories to return.
            mode: hybrid fuses full-text and vector rankings, text or vector ranks by one alone.
        """
        if not isinstance(query, str):
            raise ValueError(f"query must be a string, got {query!r}")
        _check_limit(limit)
        if mode not in get_args(Mode):
            raise ValueError(f"mode must be one of {', '.join(get_args(Mode))}, got {mode!r}")
        found = await self._find(query, self._reach(scope, scope_id), limit, mode)
        return [memory.to_dict() for memory in found]

    @action
    async def get(self, id: str) -> dict[str, Any]:
        """One memory by its id.

        Args:
            id: the memory's id (as store and search return it).
        """
        return _memory(await self._reachable(id)).to_dict()

    @action
    async def forget(self, id: str) -> dict[str, Any]:
        """Delete a memory for good (it leaves the search index too); returns what was forgotten.

        Args:
            id: the memory's id (as store and search return it).
        """
        record = await self._reachable(id)
        await self.storage.delete(COLLECTION, id, expect=record.version)
        return _memory(record).to_dict()

    @action(name="list")
    async def list_memories(
        self, scope: Scope | None = None, scope_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The memories in reach (or of one scope), newest first.

        Args:
            scope: only the memories of this scope (default: every scope in reach).
            scope_id: the session id, or the principal (channel:id), the scope is of.
            limit: the most memories to return.
        """
        _check_limit(limit)
        records = [
            record
            for where in self._reach(scope, scope_id)
            for record in await self.storage.list(COLLECTION, where=where)
        ]
        records.sort(key=lambda record: (-record.value["created"], record.key))
        return [_memory(record).to_dict() for record in records[:limit]]

    # ------------------------------------------------------------------ points the service answers

    @hookimpl(trylast=True)
    def memory_embed(self) -> list[float]:
        """No vector unless a plugin embeds: search stays full-text."""
        return []

    @hookimpl
    async def turn_prompt(self, turn: TurnInfo, prompt: Prompt) -> Prompt | None:
        """With ``recall`` on, add the memories matching the inbound message just before it."""
        if self._context is None or not self.settings.recall:
            return None  # not started (disabled, or failed to start), or recall is off
        asked = [index for index, message in enumerate(prompt.messages) if message.role == "user"]
        if not asked:
            return None
        index = asked[-1]
        wheres = self._turn_reach(turn, self.settings.recall_scopes)
        found = await self._find(prompt.messages[index].text, wheres, self.settings.recall_limit, "hybrid")
        if not found:
            return None
        lines = "\n".join(f"- {memory.text}" for memory in found)
        note = Message.of(
            "system", f"Relevant memories:\n{lines}", metadata={RECALLED: [memory.id for memory in found]}
        )
        messages = prompt.messages
        return attrs.evolve(prompt, messages=(*messages[:index], note, *messages[index:]))

    # ------------------------------------------------------------------ search

    async def _find(self, query: str, wheres: Sequence[Where], limit: int, mode: Mode) -> list[Memory]:
        """The best ``limit`` memories for ``query`` among those ``wheres`` select."""
        pool = limit * CANDIDATES if mode == "hybrid" else limit
        by_text = [] if mode == "vector" else await self._text_hits(query, wheres, pool)
        vector = [] if mode == "text" else await self._embed(query, "query")
        if mode == "vector" and not vector:
            raise ValueError(
                "vector search needs a vector for the query: no plugin answers memory_embed"
                " (or it answered an empty or zero vector)"
            )
        if not vector:
            return [_memory(record) for record in by_text[:limit]]
        by_vector = await self._vector_hits(vector, wheres, pool)
        if mode == "vector":
            return [_memory(record) for record in by_vector[:limit]]
        records = {record.key: record for record in [*by_text, *by_vector]}
        fused = fuse([[r.key for r in by_text], [r.key for r in by_vector]])
        best = sorted(fused, key=lambda key: (-fused[key], key))[:limit]
        return [attrs.evolve(_memory(records[key]), score=fused[key]) for key in best]

    async def _text_hits(self, query: str, wheres: Sequence[Where], limit: int) -> list[StoredRecord]:
        """Full-text matches, best bm25 first (one query per scope: bm25 is comparable across them)."""
        found = [
            record
            for where in wheres
            for record in await self.storage.search(COLLECTION, query, where=where, limit=limit)
        ]
        return sorted(found, key=_best)[:limit]

    async def _vector_hits(
        self, vector: Sequence[float], wheres: Sequence[Where], limit: int
    ) -> list[StoredRecord]:
        """The memories most similar to ``vector`` above ``min_similarity``, by brute force."""
        floor = self.settings.min_similarity
        hits = []
        for where in wheres:
            for record in await self.storage.list(COLLECTION, where=where):
                stored = record.value.get("vector")
                similarity = cosine(vector, unpack(stored)) if stored else None
                if similarity is not None and similarity > floor:
                    hits.append(attrs.evolve(record, score=similarity))
        return sorted(hits, key=_best)[:limit]

    async def _embed(self, text: str, purpose: Literal["memory", "query"]) -> list[float]:
        answer = await self.context.plugins.resolve("memory_embed", text=text, purpose=purpose)
        return unit_vector(answer)

    # ------------------------------------------------------------------ reach

    def _reach(self, scope: str | None, scope_id: str | None) -> list[Where]:
        """The filters selecting what a caller asked for, within what it may reach."""
        turn = current_turn()
        if scope is not None:
            chosen = _scope(scope)
            return [self._where(chosen, self._scope_id(chosen, scope_id, turn))]
        if scope_id is not None:
            raise ValueError(f"scope_id {scope_id!r} needs a scope (one of {', '.join(SCOPES)})")
        if turn is None:
            return [{"agent_id": self.context.agent_id}]
        return self._turn_reach(turn, SCOPES)

    def _turn_reach(self, turn: TurnInfo, scopes: Sequence[Scope]) -> list[Where]:
        """The filters of ``scopes`` as seen from ``turn`` (no principal scope without a principal)."""
        owners = {"agent": self.context.agent_id, "session": turn.session_id, "principal": turn.initiator_id}
        return [self._where(scope, owner) for scope in scopes if (owner := owners[scope]) is not None]

    def _where(self, scope: Scope, scope_id: str) -> Where:
        return {"agent_id": self.context.agent_id, "scope": scope, "scope_id": scope_id}

    def _scope_id(self, scope: Scope, scope_id: str | None, turn: TurnInfo | None) -> str:
        """Whose memories ``scope`` means here; refuses what is out of reach."""
        agent_id = self.context.agent_id
        if scope == "agent":
            if scope_id not in (None, agent_id):
                raise ValueError(f"scope 'agent' is this agent ({agent_id!r}); it takes no scope_id")
            return agent_id
        if turn is not None:
            own = turn.session_id if scope == "session" else turn.initiator_id
            if own is None:
                raise ValueError("scope 'principal' is out of reach: this turn has no initiator_id")
            if scope_id not in (None, own):
                raise PermissionError(
                    f"in a turn, scope {scope!r} is the turn's own ({own!r}); {scope_id!r} is out of reach"
                )
            return own
        if not scope_id:
            what = "a session id" if scope == "session" else "a principal id, e.g. 'telegram:42'"
            raise ValueError(f"scope {scope!r} needs scope_id ({what}) outside a turn")
        return scope_id

    async def _reachable(self, memory_id: str) -> StoredRecord:
        """The record of memory ``memory_id`` if this agent has it and the caller may reach it."""
        record = await self.storage.get(COLLECTION, memory_id)
        turn = current_turn()
        reach = [{"agent_id": self.context.agent_id}] if turn is None else self._turn_reach(turn, SCOPES)
        if record is None or not any(_selects(where, record.value) for where in reach):
            within = " in this turn's scopes" if turn is not None else ""
            raise LookupError(f"no memory {memory_id!r}{within}")
        return record

    # ------------------------------------------------------------------ checks

    def _checked_text(self, text: str, what: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what} must be a non-empty string, got {text!r}")
        text = text.strip()
        if len(text) > self.settings.max_chars:
            raise ValueError(
                f"{what} has {len(text)} characters; [service.memory] max_chars is {self.settings.max_chars}"
            )
        return text

    def _after_pipeline(self, before: Memory, after: Memory, turn: TurnInfo | None) -> Memory:
        """The memory as ``memory_store`` left it, checked like the caller's input."""
        if (after.id, after.agent_id) != (before.id, before.agent_id):
            raise ValueError("memory_store may change a memory's text and scope, not its id or agent_id")
        scope = _scope(after.scope)
        # moved to another scope without naming its owner: the owner follows from the new scope
        rescoped = scope != before.scope and after.scope_id == before.scope_id
        return attrs.evolve(
            after,
            text=self._checked_text(after.text, "the text memory_store left"),
            scope_id=self._scope_id(scope, None if rescoped else after.scope_id, turn),
        )


def _scope(scope: str) -> Scope:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    return scope


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1, got {limit!r}")


def _selects(where: Mapping[str, str], value: Mapping[str, Any]) -> bool:
    return all(value.get(field) == wanted for field, wanted in where.items())


def _best(record: StoredRecord) -> tuple[float, str]:
    return (-(record.score or 0.0), record.key)


def _memory(record: StoredRecord) -> Memory:
    """A stored record as a :class:`Memory` (its ``score`` carried over)."""
    value = record.value
    return Memory(
        id=record.key,
        text=record.text or "",
        scope=value["scope"],
        scope_id=value["scope_id"],
        agent_id=value["agent_id"],
        created=value["created"],
        session_id=value.get("session_id"),
        turn_id=value.get("turn_id"),
        score=record.score,
    )
