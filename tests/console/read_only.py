"""``turnkit console`` run for real, in a subprocess, on a store file: its address, then SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.dists import subprocess_env, turnkit_command

#: What the command prints once it listens.
LISTENING = re.compile(r"turnkit: console of .* on (http://\S+)/")


@contextmanager
def read_only_console(store: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``turnkit console --store STORE --port 0 ARGS…`` while the block runs; yields its address.

    Leaving the block sends SIGTERM, after which the command must exit 0.
    """
    command = [*turnkit_command(), "console", "--store", str(store), "--port", "0", *args]
    process = subprocess.Popen(
        command, cwd=store.parent, env=subprocess_env(env=env), stderr=subprocess.PIPE, text=True
    )
    try:
        yield _address(process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert process.returncode == 0, f"turnkit console exited {process.returncode} after SIGTERM"


def _address(process: subprocess.Popen[str]) -> str:
    """The address ``process`` announces on stderr (the command prints nothing before it)."""
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = LISTENING.search(line)
        if found:
            return found.group(1)
    raise AssertionError(f"turnkit console did not listen: {''.join(seen)}")
