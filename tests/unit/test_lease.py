"""Telling that a lease's process is gone: only on this host, only when it certainly is."""

from __future__ import annotations

import subprocess
import sys

import attrs
from turnkit.lease import ProcessIdentity, host_key, is_gone, this_process


def test_this_process_is_not_gone() -> None:
    me = this_process()
    assert me.host == host_key() and me.started > 0
    assert not is_gone(me)


def test_a_process_that_exited_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert is_gone(ProcessIdentity(host_key(), child.pid, 1.0))


def test_a_killed_child_not_yet_reaped_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.kill()
        for _ in range(200):  # until the kernel made it a zombie
            with open(f"/proc/{child.pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        assert is_gone(ProcessIdentity(host_key(), child.pid, this_process().started))
    finally:
        child.wait()


def test_a_reused_pid_is_gone_and_another_host_is_never_judged() -> None:
    me = this_process()
    assert is_gone(attrs.evolve(me, started=me.started + 1)), "same pid, another start time"
    assert not is_gone(attrs.evolve(me, host="elsewhere", pid=999_999_999))
