"""Session ids shortened to their start, and the read-only commands on a store that is not there.

Through the ``turnkit`` console script in subprocesses, on SQLite and (when
a server is available) on PostgreSQL: the prefix lookup is a store query.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dists import SESSION_LINE, CliResult
from tests.support.dists import turnkit_exits as turnkit


def one_line_error(result: CliResult) -> str:
    """The one error line of ``result`` (notices such as the echo model's, ``turnkit: …``, aside)."""
    (line,) = [line for line in result.stderr.splitlines() if not line.startswith("turnkit: ")]
    assert line.startswith("Error: "), str(result)
    return line.removeprefix("Error: ")


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    url = "t.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    (tmp_path / "turnkit.toml").write_text(f'[store]\nurl = "{url}"\n')
    return tmp_path


def test_a_unique_prefix_names_the_session_everywhere(home: Path) -> None:
    first = turnkit("send", "hello", cwd=home)
    (session_id,) = SESSION_LINE.findall(first.stderr)
    prefix = session_id[:6]
    shown = turnkit("sessions", "show", prefix, cwd=home).stdout
    assert shown.startswith(f"session {session_id} ")
    assert turnkit("sessions", "export", prefix, cwd=home).json()["session"]["session_id"] == session_id
    assert turnkit("sessions", "tree", prefix, cwd=home).stdout.split()[0] == session_id

    again = turnkit("send", "--session", prefix, "again", cwd=home)
    assert again.stdout == "again\n" and "session:" not in again.stderr
    turns = turnkit("sessions", "export", session_id, cwd=home).json()["turns"]
    assert [turn["number"] for turn in turns] == [1, 2], "the prefix continued the session"


def test_an_ambiguous_prefix_is_refused_listing_the_candidates(home: Path) -> None:
    for name in ("work-one", "work-two"):
        turnkit("send", "--session", name, "hi", cwd=home)
    for args in (("sessions", "show", "work"), ("send", "--session", "work", "hi")):
        error = one_line_error(turnkit(*args, cwd=home, expect=1))
        assert error == "'work' is the start of several session ids (work-one, work-two): give more of it"
    assert len(turnkit("sessions", "list", "--json", cwd=home).json()) == 2, "nothing was sent"


def test_an_exact_id_wins_over_the_ids_it_starts(home: Path) -> None:
    for name in ("work", "workshop"):
        turnkit("send", "--session", name, f"in {name}", cwd=home)
    assert turnkit("sessions", "show", "work", cwd=home).stdout.startswith("session work ")
    turnkit("send", "--session", "work", "more", cwd=home)
    assert len(turnkit("sessions", "export", "work", cwd=home).json()["turns"]) == 2


def test_a_short_or_unknown_id_is_refused_and_send_creates_it(home: Path) -> None:
    turnkit("send", "--session", "abcdef", "hi", cwd=home)
    short = one_line_error(turnkit("sessions", "show", "abc", cwd=home, expect=1))
    assert short == "no session 'abc' (a shortened id needs at least 4 characters)"
    assert one_line_error(turnkit("sessions", "export", "zzzz", cwd=home, expect=1)) == "no session 'zzzz'"
    assert one_line_error(turnkit("sessions", "tree", "zzzz", cwd=home, expect=1)) == "no session 'zzzz'"
    turnkit("send", "--session", "abc", "new", cwd=home)
    ids = {s["session_id"] for s in turnkit("sessions", "list", "--json", cwd=home).json()}
    assert ids == {"abcdef", "abc"}, "a short new id is a new session, not the one it starts"


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "list"),
        ("sessions", "tree"),
        ("sessions", "show", "x1234"),
        ("sessions", "export", "x1234"),
    ],
)
def test_reading_sessions_creates_no_database(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "turnkit.toml").write_text('[store]\nurl = "t.db"\n')
    error = one_line_error(turnkit(*args, cwd=tmp_path, expect=1))
    assert error.startswith(f"no database at {tmp_path / 't.db'} (nothing has run on this store yet")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["turnkit.toml"]
