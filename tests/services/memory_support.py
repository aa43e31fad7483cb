"""What the memory service's tests share: a small corpus, a deterministic embedder, recording plugins.

The embedder is a bag-of-words hashing embedding: each word (lower-cased,
mapped through a tiny synonym table, so that "automobile" means "car") adds
1 to the coordinate its CRC-32 picks. Texts sharing words point the same way,
which makes cosine similarity predictable by hand, and the synonyms give
vector search something full-text search cannot find.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Any

import attrs
from turnkit_hookspecs import hookimpl
from turnkit_services.memory import Memory

#: Thirty memories on distinct topics, by a label the tests use to name them.
CORPUS: dict[str, str] = {
    "cat": "Alice's cat is named Biscuit and sleeps on the radiator.",
    "coffee": "Bob drinks his coffee black with no sugar every morning.",
    "birthday": "Carol's birthday is on the fourteenth of March.",
    "allergy": "Dan is allergic to peanuts and carries an epinephrine pen.",
    "car": "The company car is a blue hatchback parked in bay seven.",
    "wifi": "The office wifi password rotates every Monday.",
    "deploy": "Production deploys happen on Tuesdays after the standup.",
    "database": "The analytics database runs PostgreSQL version sixteen.",
    "holiday": "Erin is on holiday in Portugal until the end of August.",
    "piano": "Frank practises piano scales for an hour before dinner.",
    "garden": "Tomatoes in the garden need watering twice a week in summer.",
    "bike": "Gina cycles to work on a red road bike.",
    "book": "The book club is reading a novel about lighthouse keepers.",
    "marathon": "Hank is training for the Berlin marathon in September.",
    "vegetarian": "Iris is vegetarian and dislikes mushrooms.",
    "timezone": "The support team works in the Singapore timezone.",
    "invoice": "Invoices are due thirty days after the delivery date.",
    "passport": "Jack's passport expires next spring and needs renewal.",
    "printer": "The printer on the third floor jams with glossy paper.",
    "dog": "Kate walks her dog Pepper along the river every evening.",
    "language": "Liam is learning Japanese with flashcards.",
    "backup": "Nightly backups of the file server go to cold storage.",
    "meeting": "The quarterly planning meeting moved to Thursday afternoon.",
    "tea": "Mia prefers green tea with jasmine, never coffee after noon.",
    "moving": "Nina is moving house to Edinburgh in October.",
    "chess": "Oscar plays chess online under the handle knightrider.",
    "recipe": "Grandma's lasagne recipe uses nutmeg in the bechamel.",
    "keyboard": "Paul types on a split mechanical keyboard.",
    "parking": "Visitor parking requires a permit from reception.",
    "solar": "The roof solar panels produce most power around midday.",
}

DIMENSIONS = 1024
SYNONYMS = {"automobile": "car", "vehicle": "car", "puppy": "dog", "hound": "dog"}
_WORDS = re.compile(r"\w+")


def embed(text: str) -> list[float]:
    """The bag-of-words hashing embedding of ``text`` (not normalised)."""
    vector = [0.0] * DIMENSIONS
    for word in _WORDS.findall(text.lower()):
        word = SYNONYMS.get(word, word)
        vector[zlib.crc32(word.encode()) % DIMENSIONS] += 1.0
    return vector


def cosine(a: list[float], b: list[float]) -> float:
    """Plain cosine similarity, computed independently of the service's."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


class HashingEmbedder:
    """Answers ``memory_embed`` with :func:`embed`, recording what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def memory_embed(self, text: str, purpose: str) -> list[float]:
        self.asked.append((purpose, text))
        return embed(text)


class CardRedactor:
    """The redaction pipeline: card-like digit runs become ``[card]``; "forbidden" refuses the memory."""

    @hookimpl
    def memory_store(self, memory: Memory) -> Memory | None:
        if "forbidden" in memory.text:
            raise ValueError("this memory may not be kept")
        cleaned = re.sub(r"\b\d{13,19}\b", "[card]", memory.text)
        return attrs.evolve(memory, text=cleaned) if cleaned != memory.text else None


class StoredRecorder:
    """Records each ``memory_stored`` call and whether the memory could be read back at that moment."""

    def __init__(self) -> None:
        self.stored: list[Memory] = []
        self.readable: list[bool] = []
        self.agent: Any = None

    @hookimpl
    async def memory_stored(self, memory: Memory) -> None:
        self.stored.append(memory)
        got = await self.agent.invoke("memory.get", {"id": memory.id})
        self.readable.append(got.ok and got.value["text"] == memory.text)


class Rescoper:
    """A ``memory_store`` pipeline moving "team:" memories to the agent scope; "steal:" ones get a new id."""

    @hookimpl
    def memory_store(self, memory: Memory) -> Memory | None:
        if memory.text.startswith("team:"):
            return attrs.evolve(memory, text=memory.text.removeprefix("team:").strip(), scope="agent")
        if memory.text.startswith("steal:"):
            return attrs.evolve(memory, id="someone-elses-id")
        return None
