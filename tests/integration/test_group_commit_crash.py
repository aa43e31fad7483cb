"""Group commit never answers a write before it is durable, even when killed mid-commit.

See docs/architecture.md, "A turn" (the inbound message is durable before the
model is called, the reply before the caller hears it) and "The store"
(group commit).

``group_commit_agent.py`` runs in a subprocess on a real SQLite file
(``synchronous = full``) and drives many sessions at once, so that their
turns reach accept and finish together and share commits. It reports each
turn whose model it is about to ask, each reply it was answered, and each
shared commit as it begins; the test SIGKILLs it right after one. Every
message whose model was asked, and every acknowledged message and reply,
must then be in the store.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from turnkit import load_config
from turnkit.store import Store, open_store

from tests.support.dists import subprocess_env

SCRIPT = Path(__file__).with_name("group_commit_agent.py")
SESSIONS = 40
#: Acknowledged turns to see before the kill: many shared commits have happened by then.
ACKS = 200
#: How long the subprocess may take to start and acknowledge that many turns.
PATIENCE = 60.0


def run_and_kill(config_file: Path) -> list[list[str]]:
    """Run the agent until ACKS turns were acknowledged, SIGKILL it as a shared commit begins;
    every line it printed, split in words (the first three at most)."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(config_file), str(SESSIONS)],
        cwd=config_file.parent,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[list[str]] = []
    acks = 0
    deadline = time.monotonic() + PATIENCE
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"only {acks} turns acknowledged within {PATIENCE}s")
            if line is None:
                _, err = process.communicate(timeout=10)
                pytest.fail(f"group_commit_agent.py exited {process.returncode}: {err}")
            words = line.split(maxsplit=2)
            seen.append(words)
            acks += words[0] == "ACK"
            if acks >= ACKS and words[0] == "COMMIT":
                os.kill(process.pid, signal.SIGKILL)
                break
        while (line := lines.get(timeout=10)) is not None:  # what it printed before it died
            seen.append(line.split(maxsplit=2))
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL
    return seen


async def test_a_kill_during_a_group_commit_loses_nothing_acknowledged(tmp_path: Path) -> None:
    config_file = tmp_path / "turnkit.toml"
    config_file.write_text('[store]\nurl = "t.db"\nsynchronous = "full"\ngroup_commit = 0.002\n')
    seen = run_and_kill(config_file)
    shared = [int(words[1]) for words in seen if words[0] == "COMMIT"]
    assert shared and max(shared) > 1, "turns of different sessions shared commits"
    modelled = {words[1]: words[2].strip() for words in seen if words[0] == "MODEL"}
    acked = {words[1]: words[2].strip() for words in seen if words[0] == "ACK"}
    assert len(acked) >= ACKS and set(acked) <= set(modelled)

    config = load_config(config_file)
    store: Store = await open_store(config.store, str(tmp_path))
    try:
        outcomes = {o.turn.turn_id: o for o in await store.outcomes(list(modelled))}
        assert set(outcomes) == set(modelled), "every message the model was asked about is stored"
        inbound = {}
        for session_id in {o.turn.session_id for o in outcomes.values()}:
            inbound.update({m.id: m.message.text for m in await store.messages(session_id)})
        for turn_id, text in modelled.items():
            turn = outcomes[turn_id].turn
            assert turn.message_id is not None and inbound[turn.message_id] == text, turn
        for turn_id, text in acked.items():
            outcome = outcomes[turn_id]
            assert outcome.turn.status == "completed", outcome.turn
            assert outcome.reply is not None and outcome.reply.text == text, "the echo model's reply"
    finally:
        await store.close()
