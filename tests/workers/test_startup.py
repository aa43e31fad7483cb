"""Workers starting at the same moment on a store nobody opened yet: each must come up.

A deployment starts its workers together (``systemctl start turnkit@{1..3}``,
a container replica set), so the first start on a fresh database is
concurrent: every worker finds no schema, and they must create it once
between them. (On PostgreSQL the second worker used to fail with
``relation "schema_version" already exists``.)
"""

from __future__ import annotations

from .support import Cluster, tracebacks


def test_three_workers_starting_at_once_on_a_fresh_store_all_serve(cluster: Cluster) -> None:
    """Each of three workers started together creates or finds the schema, listens and answers."""
    workers = cluster.serve("a", "b", "c")
    for index, worker in enumerate(workers):
        reply = worker.post_chat(f"c{index}", f"hello {index}")
        assert (reply.status_code, reply.text) == (200, f"re: hello {index}")
    owners = cluster.store.snapshot().owners
    assert sorted(o.pid for o in owners if o.live) == sorted(w.pid for w in workers), "one lease each"
    assert not tracebacks(workers), cluster.logs()
