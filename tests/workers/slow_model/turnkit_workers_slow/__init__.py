"""The model of the worker tests: it answers ``re: TEXT``, takes its time when asked to, and logs.

The worker tests need turns that last while something else happens (another
process starts, a worker is killed or frozen) and proof of how often the
model was asked. Two prefixes of the message's text hold a turn open:

* ``slow=SECONDS …`` sleeps that long before answering (``slow=0.2 hi``);
* ``gate=NAME …`` waits until the file ``NAME`` exists in the folder named
  by ``WORKERS_GATES`` (the test "opens the gate"), at most a minute, then
  fails the turn.

Every question is logged as one JSON line to the file named by
``WORKERS_MODEL_LOG``, once when asked and once when answered:
``{"event": "asked"|"answered", "pid", "session", "turn", "number",
"text", "time"}``. The reply's author is ``pid:<pid>``, so the stored
history tells which process answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

from turnkit_hookspecs import Message, Prompt, TurnInfo, hookimpl

LOG_ENV = "WORKERS_MODEL_LOG"
GATES_ENV = "WORKERS_GATES"
#: The longest a gate is waited for.
GATE_TIMEOUT = 60.0
_SLOW = re.compile(r"^slow=(\d+(?:\.\d+)?)(?:\s|$)")
_GATE = re.compile(r"^gate=([\w.-]+)(?:\s|$)")


def _log(event: str, turn: TurnInfo, text: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = {
        "event": event,
        "pid": os.getpid(),
        "session": turn.session_id,
        "turn": turn.turn_id,
        "number": turn.number,
        "text": text,
        "time": time.time(),
    }
    data = (json.dumps(line) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:  # one write of one line with O_APPEND: the lines of several processes never interleave
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


async def _gate(name: str) -> None:
    gate = Path(os.environ.get(GATES_ENV, ".")) / name
    deadline = time.monotonic() + GATE_TIMEOUT
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {name!r} was not opened within {GATE_TIMEOUT:.0f}s")
        await asyncio.sleep(0.02)


@hookimpl(tryfirst=True)
async def turn_reply(turn: TurnInfo, prompt: Prompt) -> Message:
    """Answer ``re: TEXT`` for the last message, once its ``slow=`` or ``gate=`` prefix lets it."""
    text = prompt.messages[-1].text
    _log("asked", turn, text)
    slow, gate = _SLOW.match(text), _GATE.match(text)
    if slow is not None:
        await asyncio.sleep(float(slow.group(1)))
    if gate is not None:
        await _gate(gate.group(1))
    _log("answered", turn, text)
    return Message.of("assistant", f"re: {text}", author=f"pid:{os.getpid()}")
