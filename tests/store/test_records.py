"""Services' records (``context.storage(namespace)``): CRUD, compare-and-set, listing, full-text search."""

from __future__ import annotations

import pytest
from turnkit.storage import ServiceStorage
from turnkit.store import SQLiteStore, Store
from turnkit.store.migrations import SCHEMA_VERSION
from turnkit_hookspecs import Storage, StorageConflict

from .helpers import Connect


@pytest.fixture
def storage(store: Store) -> ServiceStorage:
    return ServiceStorage(store, "svc")


async def test_storage_view_implements_the_contract(storage: ServiceStorage) -> None:
    assert isinstance(storage, Storage)


async def test_put_get_replace_delete(storage: ServiceStorage) -> None:
    first = await storage.put("things", "a", {"n": 1, "tags": ["x"]}, text="apple")
    assert (first.key, first.value, first.version, first.text) == ("a", {"n": 1, "tags": ["x"]}, 1, "apple")
    assert await storage.get("things", "a") == first

    second = await storage.put("things", "a", {"n": 2})
    assert second.version == 2 and second.text is None
    assert (await storage.get("things", "a")) == second

    assert await storage.delete("things", "a") is True
    assert await storage.get("things", "a") is None
    assert await storage.delete("things", "a") is False


async def test_compare_and_set_refuses_a_stale_write_and_writes_nothing(storage: ServiceStorage) -> None:
    await storage.put("jobs", "j", {"state": "new"}, expect=0)
    with pytest.raises(StorageConflict, match="svc/jobs/j: expected absent, found at version 1"):
        await storage.put("jobs", "j", {"state": "dup"}, expect=0)
    await storage.put("jobs", "j", {"state": "claimed"}, expect=1)
    with pytest.raises(StorageConflict, match="expected at version 1, found at version 2"):
        await storage.put("jobs", "j", {"state": "late"}, expect=1)
    with pytest.raises(StorageConflict):
        await storage.delete("jobs", "j", expect=1)
    record = await storage.get("jobs", "j")
    assert record is not None and record.value == {"state": "claimed"} and record.version == 2


async def test_namespaces_and_collections_are_separate(store: Store) -> None:
    mine, theirs = ServiceStorage(store, "mine"), ServiceStorage(store, "theirs")
    await mine.put("c", "k", {"who": "mine"}, text="shared word")
    await theirs.put("c", "k", {"who": "theirs"}, text="shared word")
    await mine.put("other", "k", {"who": "mine-other"})
    assert (await mine.get("c", "k")).value == {"who": "mine"}  # type: ignore[union-attr]
    assert [r.value["who"] for r in await theirs.search("c", "shared")] == ["theirs"]
    assert [r.key for r in await mine.list("other")] == ["k"]


async def test_list_orders_by_key_and_filters(storage: ServiceStorage) -> None:
    for key, value in [
        ("b:2", {"kind": "b", "on": True}),
        ("a:1", {"kind": "a", "on": False}),
        ("b:1", {"kind": "b", "on": False}),
        ("c", {"kind": None}),
    ]:
        await storage.put("items", key, value)
    assert [r.key for r in await storage.list("items")] == ["a:1", "b:1", "b:2", "c"]
    assert [r.key for r in await storage.list("items", prefix="b:")] == ["b:1", "b:2"]
    assert [r.key for r in await storage.list("items", where={"kind": "b", "on": True})] == ["b:2"]
    assert [r.key for r in await storage.list("items", where={"kind": None})] == ["c"]
    assert [r.key for r in await storage.list("items", limit=2)] == ["a:1", "b:1"]
    with pytest.raises(ValueError, match="not a top-level field name"):
        await storage.list("items", where={"a.b": 1})
    with pytest.raises(ValueError, match="must be compared to a string, number, bool or None"):
        await storage.list("items", where={"kind": ["b"]})


async def test_search_ranks_better_matches_first_and_follows_updates(storage: ServiceStorage) -> None:
    corpus = {
        "pasta": "Boil the pasta in salted water for nine minutes.",
        "bread": "Bread dough needs flour, water, salt and yeast; knead it for ten minutes.",
        "tyres": "Check the tyre pressure of the bicycle every month.",
        "water": "Water the tomato plants every evening; tomato plants like water.",
    }
    for key, text in corpus.items():
        await storage.put("notes", key, {"key": key}, text=text)
    found = await storage.search("notes", "tomato water")
    assert found[0].key == "water"
    assert {r.key for r in found} == {"water", "pasta", "bread"}
    assert all(r.score is not None for r in found)
    assert [r.score for r in found] == sorted((r.score or 0 for r in found), reverse=True)

    await storage.put("notes", "tyres", {"key": "tyres"}, text="Inflate the tomato cage? No: the tyres.")
    assert "tyres" in {r.key for r in await storage.search("notes", "tomato")}
    await storage.delete("notes", "water")
    assert "water" not in {r.key for r in await storage.search("notes", "tomato")}
    await storage.put("notes", "pasta", {"key": "pasta"})  # text removed: no longer searchable
    assert "pasta" not in {r.key for r in await storage.search("notes", "pasta")}


async def test_search_is_plain_words_never_query_syntax(storage: ServiceStorage) -> None:
    await storage.put("notes", "n", {}, text='say "hello" NEAR the café')
    for query in ['"unbalanced', "NEAR(", "col:hello", "hello*", "AND OR NOT", "(", "cafe"]:
        found = await storage.search("notes", query)
        assert [r.key for r in found] in ([], ["n"]), query
    assert [r.key for r in await storage.search("notes", "cafe")] == ["n"]  # diacritics folded
    assert await storage.search("notes", "  ,;  ") == []


async def test_search_filters_by_fields_and_limits(storage: ServiceStorage) -> None:
    for index in range(5):
        scope = "a" if index % 2 else "b"
        await storage.put("mem", f"m{index}", {"scope": scope}, text=f"lamp number {index}")
    assert {r.key for r in await storage.search("mem", "lamp", where={"scope": "a"})} == {"m1", "m3"}
    assert len(await storage.search("mem", "lamp", limit=2)) == 2


async def test_values_must_be_json_objects(storage: ServiceStorage) -> None:
    with pytest.raises(TypeError, match="svc/c/k: a record's value must be a mapping"):
        await storage.put("c", "k", ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="svc/c/k: value is not JSON"):
        await storage.put("c", "k", {"when": object()})
    assert await storage.get("c", "k") is None


async def test_records_survive_reopening(connect: Connect) -> None:
    first = await connect()
    await ServiceStorage(first, "svc").put("c", "k", {"v": 1}, text="durable words")
    await first.close()
    again = ServiceStorage(await connect(), "svc")
    assert (await again.get("c", "k")).value == {"v": 1}  # type: ignore[union-attr]
    assert [r.key for r in await again.search("c", "durable")] == ["k"]


async def test_a_version_2_database_gains_records(tmp_path: object) -> None:
    path = str(tmp_path) + "/old.db"
    old = SQLiteStore(path)
    await old.open(upto=2)
    assert await old.schema_version() == 2
    await old.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        storage = ServiceStorage(store, "svc")
        await storage.put("c", "k", {}, text="migrated text")
        assert [r.key for r in await storage.search("c", "migrated")] == ["k"]
    finally:
        await store.close()
