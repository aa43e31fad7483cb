"""Extension points of the memory service, fired by its ``store`` and ``search`` actions.

Order when a memory is stored: ``memory_store`` (pipeline: the last chance to
rewrite or refuse it) → ``memory_embed`` (resolve, on the final text) →
the write → ``memory_stored`` (effect). A search asks ``memory_embed`` for
the query's vector. Implementations may take any subset of the arguments.
"""

from __future__ import annotations

from typing import Literal

from turnkit_hookspecs import effect, pipeline, resolve

from .model import Memory


@pipeline("memory")
def memory_store(memory: Memory) -> Memory | None:
    """Rewrite a memory before it is embedded and stored; ``None`` for unchanged.

    This is where redaction goes: what leaves the pipeline is all that is
    ever written or sent to an embedding model. The text and the scope may
    change; the id and the agent may not. Raising refuses the memory: the
    ``store`` action fails with the plugin's error and nothing is written.

    Example::

        @hookimpl
        def memory_store(memory):
            cleaned = re.sub(r"\\b\\d{13,19}\\b", "[card number]", memory.text)
            return attrs.evolve(memory, text=cleaned)
    """


@effect
def memory_stored(memory: Memory) -> None:
    """Observe a memory once it is committed (after redaction, with its final text and scope).

    Example::

        @hookimpl
        def memory_stored(memory):
            audit_log.write(f"{memory.scope}:{memory.scope_id} remembered {memory.id}")
    """


@resolve
def memory_embed(text: str, purpose: Literal["memory", "query"]) -> list[float] | None:
    """Turn a text into a vector for similarity search; the first answer wins.

    ``purpose`` is ``"memory"`` for a text being stored and ``"query"`` for
    a search (some models embed the two differently). The memory service
    answers last with ``[]``: no vector, so search is full-text only until a
    plugin answers. Every vector of one agent must have the same length.

    Example::

        @hookimpl
        def memory_embed(text, purpose):
            prefix = "query: " if purpose == "query" else "passage: "
            return model.encode(prefix + text).tolist()
    """
