"""This process's lease on the turns it runs, and how to tell that another process is gone.

Every process that runs turns registers an owner row in the store
(:mod:`turnkit.store.leases`) and renews it every ``[store] heartbeat``
seconds; another process takes its running turns over once the lease is
older than ``[store] lease``. A process on the same host can do better
than wait: when the owner's pid no longer runs (or runs a newer process),
its lease is ended at once, so a restart after a crash recovers as fast as
a single process always did.

"Same host" is the host name, the kernel's boot id and the pid namespace
together, so containers sharing a kernel never judge each other's pids.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import attrs


@attrs.frozen
class ProcessIdentity:
    """Who holds a lease: where it runs, its pid, and when that process started."""

    host: str
    pid: int
    started: float


def this_process() -> ProcessIdentity:
    """The identity of the running process."""
    pid = os.getpid()
    return ProcessIdentity(host_key(), pid, _start_ticks(pid) or 0.0)


def host_key() -> str:
    """Host name, boot id and pid namespace: equal only where pids mean the same process."""
    boot = _read("/proc/sys/kernel/random/boot_id").strip()
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    if not boot or not namespace:  # no way to compare pids safely: unique to this process
        return f"{socket.gethostname()}:pid{os.getpid()}:{id(object())}"
    return f"{socket.gethostname()}:{boot}:{namespace}"


def is_gone(owner: ProcessIdentity) -> bool:
    """Whether ``owner`` certainly no longer runs (only decidable on this host)."""
    if owner.host != host_key():
        return False
    started = _start_ticks(owner.pid)
    return started is None or started != owner.started


def _start_ticks(pid: int) -> float | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22).

    ``None`` when no such process runs; a zombie (killed, not yet reaped by
    its parent) counts as gone.
    """
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        if fields[0] in ("Z", "X"):
            return None
        return float(fields[19])
    except (IndexError, ValueError):
        return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
