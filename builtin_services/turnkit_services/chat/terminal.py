"""The terminal channel: ``turnkit chat``, a conversation with the agent on stdin and stdout.

The user's lines are chat messages; lines starting with ``/`` are commands
(:data:`HELP`). The reply is printed as the model produces it. On a
terminal, lines are read with the stdin ``readline`` module (line editing,
and history kept in ``[service.chat.terminal] history_file``) after the
prompt; from a pipe or a file, lines are read as they come and no prompt is
printed, so that ``turnkit chat < questions.txt`` prints only the answers
(and what the commands print).

The terminal is one chat of the channel (its id is the user's login name),
so ``turnkit chat`` continues the session it had last time until ``/new``.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from turnkit_hookspecs import ChannelMessage, ForkOptions, Message, Principal, SessionInfo

from .channel import Channel
from .lines import LineReader
from .settings import TerminalSettings

if TYPE_CHECKING:
    from .service import ChatService

HELP = """\
/new          start a new session
/sessions     this terminal's sessions (* marks the current one)
/switch ID    continue session ID (the start of the id is enough)
/fork         fork the current session and continue in the fork
/help         this list
/quit         leave (so does Ctrl-D)"""
#: How much of a session's first message ``/sessions`` shows.
PREVIEW = 40


class TerminalChannel(Channel):
    """The REPL of ``turnkit chat``; returns from :meth:`run` when the user leaves."""

    name = "terminal"
    settings_class = TerminalSettings
    max_length = sys.maxsize  # a terminal takes a reply of any length in one piece
    chat: ChatService
    settings: TerminalSettings

    def __init__(self, chat: ChatService, settings: TerminalSettings) -> None:
        super().__init__(chat, settings)
        self.user = _login_name()
        #: The session the next line goes to.
        self.session_id = ""
        #: What was printed of the reply being streamed.
        self._streamed = ""

    async def run(self) -> None:
        """Read lines and answer them until ``/quit`` or the end of the input."""
        tty = sys.stdin.isatty()
        reader = LineReader(sys.stdin.fileno(), tty)
        prompt = self.settings.prompt if tty else ""
        done = _interactive(sys.stdin.fileno(), self._history_path()) if tty else None
        try:
            self.session_id = await self.chat.context.plugins.resolve(
                "chat_session", inbound=self._inbound("")
            )
            agent = self.chat.context.agent_id
            _print(f"turnkit chat with agent {agent!r}, session {self.session_id}")
            _print("/help lists the commands; /quit or Ctrl-D leaves.")
            while True:
                line = await reader.read(prompt)
                if line is None:
                    if tty:
                        _print("")  # end the prompt's line
                    return
                line = line.strip()
                if not line:
                    continue
                if not line.startswith("/"):
                    await self._talk(line)
                elif not await self._command(line):
                    return
        finally:
            if done is not None:
                done()

    # ------------------------------------------------------------------ talking

    async def _talk(self, text: str) -> None:
        self._streamed = ""

        async def listen(chunk: str) -> None:
            self._streamed += chunk
            _write(chunk)

        try:
            outcome = await self.chat.handle(self._inbound(text), self, stream=listen)
        except Exception as exc:  # a chat point failed: the conversation goes on
            if self._streamed:
                _print("")  # end the half-streamed line
            _print(f"error: {exc}", err=True)
            return
        if outcome.session_id != self.session_id:  # a plugin's chat_session chose another one
            self.session_id = outcome.session_id
            _print(f"(session {self.session_id})")

    async def deliver(self, inbound: ChannelMessage, parts: Sequence[str]) -> None:
        """Print the reply, or only end its line if it was streamed as it is."""
        text = "\n".join(parts)
        if not self._streamed:
            _print(text)
        elif self._streamed == text:
            _print("")
        else:  # changed after streaming (chat_outbound), or a failure's polite reply
            _print("\n" + text)
        self._streamed = ""

    def _inbound(self, text: str) -> ChannelMessage:
        principal = Principal(self.name, self.user, self.user)
        return ChannelMessage(self.name, self.user, principal, Message.of("user", text))

    # ------------------------------------------------------------------ commands

    async def _command(self, line: str) -> bool:
        """Run one ``/command``; ``False`` when the user leaves."""
        name, _, argument = line.partition(" ")
        if name in ("/quit", "/exit"):
            return False
        commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "/new": self._new,
            "/sessions": self._sessions,
            "/switch": self._switch,
            "/fork": self._fork,
            "/help": self._help,
        }
        command = commands.get(name)
        if command is None:
            _print(f"unknown command {name}; /help lists them", err=True)
            return True
        try:
            await command(argument.strip())
        except Exception as exc:  # a refused fork, a bad id: say so and go on
            _print(f"{name}: {exc}", err=True)
        return True

    async def _new(self, argument: str) -> None:
        self.session_id = await self.chat.new_session(self.name, self.user)
        _print(f"new session {self.session_id}")

    async def _sessions(self, argument: str) -> None:
        sessions = self.chat.context.session
        for info in await self._mine():
            history = await sessions.history(info.session_id)
            first = next((m.text for m in history if m.role == "user"), "")
            columns = ["*" if info.session_id == self.session_id else " ", info.session_id, info.status]
            columns.append(f"{len(history)} messages")
            if info.parent_session_id:
                columns.append(f"fork of {info.parent_session_id}")
            if first:
                columns.append(_preview(first))
            _print("  ".join(columns))

    async def _switch(self, argument: str) -> None:
        if not argument:
            raise ValueError("give the id of a session (see /sessions)")
        found = [
            s for s in await self.chat.context.session.list_sessions() if s.session_id.startswith(argument)
        ]
        if len(found) != 1:
            raise ValueError(
                f"no session id starts with {argument!r}"
                if not found
                else f"{len(found)} session ids start with {argument!r}; give more of it"
            )
        (session,) = found
        if session.status != "active":
            raise ValueError(f"session {session.session_id} is {session.status}; it takes no more messages")
        await self._continue(session.session_id)
        _print(f"now in session {session.session_id}")

    async def _fork(self, argument: str) -> None:
        extension = await self.chat.context.session.extension(self.session_id, self.name)
        where = {"channel": self.name, "chat_id": self.user, "thread_id": None}
        child = await extension.fork(ForkOptions(reason="/fork in the terminal", metadata=where))
        parent = self.session_id
        await self._continue(child)
        _print(f"forked session {parent}: now in {child}")

    async def _help(self, argument: str) -> None:
        _print(HELP)

    async def _continue(self, session_id: str) -> None:
        await self.chat.bind(self.name, self.user, session_id)
        self.session_id = session_id

    async def _mine(self) -> list[SessionInfo]:
        """This terminal's sessions (forks included), most recently active first."""
        return [
            s
            for s in await self.chat.context.session.list_sessions()
            if s.metadata.get("channel") == self.name and s.metadata.get("chat_id") == self.user
        ]

    def _history_path(self) -> Path | None:
        if not self.settings.history_file:
            return None
        return Path(self.chat.context.config.base_dir) / Path(self.settings.history_file).expanduser()


def _interactive(fd: int, history: Path | None) -> Callable[[], None]:
    """Turn on readline (history from ``history``); return what to do when the chat ends.

    That is: save the history, and put the terminal back as it was, since a
    stop can cut readline off in the middle of a line.
    """
    try:
        import readline
        import termios
    except ImportError:  # no readline on this platform: plain input()
        return lambda: None
    saved = termios.tcgetattr(fd)
    if history is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
    readline.set_history_length(1000)

    def done() -> None:
        if history is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return done


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in this environment (a bare container)
        return "local"


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _print(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()
