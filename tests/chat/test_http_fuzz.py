"""A bounded, seeded fuzz of both HTTP APIs: no request gets a 5xx, and refused requests store nothing.

One agent is served on loopback with a token, a small ``max_body`` and a
short ``read_timeout``. A seeded generator makes a few hundred requests
from valid ones to every route of ``/api`` and ``/v1``, each mutated at
most a few ways: wrong types anywhere in the body, lone surrogates and NUL
characters in values and keys, nesting around the depth limit and far
beyond, numbers JSON cannot carry, duplicate keys, truncated or garbage or
near-``max_body`` bodies, chunked bodies, bodies shorter than their
``Content-Length`` (written byte for byte), wrong content types, bad
``Idempotency-Key``, ``X-Turnkit-Chat`` and ``Authorization`` headers,
wrong methods and odd paths. Now and then a request is sent twice, as a
client retrying it does.

Every answer must be a 2xx success or a 4xx JSON error in the API's shape,
and at the end the store must hold exactly the sessions that successful
answers reported (a streamed completion names its chat, whose binding
names the session). The seed is fixed: a failure names the request, and
reruns reproduce it.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.chat.http_server import Served, serving_http
from tests.chat.raw_http import http_request, raw_request

SEED = 1313
REQUESTS = 500
TOKEN = "fuzz-token"
MAX_BODY = 4096
READ_TIMEOUT = 0.2
#: Chats of the native API; the OpenAI requests' X-Turnkit-Chat values are apart from them.
API_CHATS = ["a0", "a1", "a2"]
OPENAI_CHATS = ["o0", "o1"]
#: What an error body may hold: the type and message, and OpenAI's param and code (an unknown model).
OPENAI_ERROR_KEYS = ("type", "message", "param", "code")
ODD_SEGMENTS = [
    "%00",
    "%ED%A0%80",
    "%FF",
    "a%2Fb",
    "x" * 201,
    "%20",
    "%F0%9F%98%80",
    "a%09b",
    "%7F",
    "%C2%85",
]
ODD_VALUES: list[Any] = [0, -1, 1.5, True, False, None, "", "x", [], {}, [1, "a"], {"k": "v"}, "x" * 300]
RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "9" * 150,
    "12345678901234567890",
    "-0",
    "1e-999",
]
CONTENT_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-16",
    "application/json;charset=UTF-8",
    "APPLICATION/JSON",
    "application/problem+json",
    "",
    "json",
    "multipart/form-data; boundary=x",
]
BAD_KEYS: list[str | bytes] = ["", "two words", "k" * 201, "caf\xe9".encode("latin-1"), "tab\tkey"]
BAD_AUTH = [None, "Bearer wrong", "Basic Zm9vOmJhcg==", f"Bearer {TOKEN}x", "Bearer", f"Token {TOKEN}"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"]


@dataclass
class Case:
    """One request: what to send, and how (httpx, or raw bytes for a body shorter than declared)."""

    method: str
    path: str
    headers: list[tuple[str, str | bytes]]
    body: Any = None  # a JSON value, sent with json.dumps
    text: bytes | None = None  # the body as sent, when the mutation works on bytes
    chunked: bool = False
    short_by: int = 0  # declare this many bytes more than are sent
    notes: list[str] = field(default_factory=list)

    def payload(self) -> bytes | None:
        if self.text is not None:
            return self.text
        if self.body is None:
            return None
        return json.dumps(self.body).encode()


@dataclass
class Ledger:
    """What successful answers said they created."""

    sessions: set[str] = field(default_factory=set)
    streamed_chats: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


class Fuzzer:
    """Makes the cases: a valid request to a random route, then up to three random mutations."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.known_sessions: list[str] = []

    # ---------------------------------------------------------------- valid requests

    def case(self) -> Case:
        makers = [self.api_message, self.api_message, self.session_message, self.new_session, self.read]
        maker = self.rng.choice([*makers, self.completion, self.completion, self.completion, self.models])
        case = maker()
        for _ in range(self.rng.choice([0, 0, 1, 1, 1, 2, 3])):
            mutation = self.rng.choice(self.mutations())
            case.notes.append(mutation.__name__)
            mutation(case)
        return case

    def headers(self, idempotent: bool = False) -> list[tuple[str, str | bytes]]:
        headers: list[tuple[str, str | bytes]] = [
            ("Authorization", f"Bearer {TOKEN}"),
            ("Content-Type", "application/json"),
        ]
        if idempotent and self.rng.random() < 0.3:
            headers.append(("Idempotency-Key", "".join(self.rng.choices(string.ascii_letters, k=24))))
        return headers

    def words(self) -> str:
        pool = ["hello", "there", "ünïcödé", "😀", "שלום", "e\u0301", "tab\tnew\nline", "  spaced  ", "<b>"]
        return " ".join(self.rng.choices(pool, k=self.rng.randint(1, 4)))

    def api_message(self) -> Case:
        body: dict[str, Any] = {"text": self.words()}
        for name in ("user", "name"):
            if self.rng.random() < 0.4:
                body[name] = self.rng.choice(["alice", "bob", "Ann Smith"])
        if self.rng.random() < 0.3:
            body["stream"] = True
        chat = self.rng.choice(API_CHATS)
        return Case("POST", f"/api/chats/{chat}/messages", self.headers(idempotent=True), body)

    def session_message(self) -> Case:
        target = self.rng.choice(self.known_sessions or ["0" * 32])
        body = {"text": self.words(), "stream": self.rng.random() < 0.3}
        return Case("POST", f"/api/sessions/{target}/messages", self.headers(idempotent=True), body)

    def new_session(self) -> Case:
        return Case("POST", f"/api/chats/{self.rng.choice(API_CHATS)}/sessions", self.headers())

    def read(self) -> Case:
        if self.known_sessions and self.rng.random() < 0.6:
            path = f"/api/sessions/{self.rng.choice(self.known_sessions)}"
        else:
            path = self.rng.choice(["/api/sessions", "/api/sessions?kind=chat", "/api/sessions?kind=task"])
        return Case("GET", path, self.headers()[:1])

    def completion(self) -> Case:
        opening = [{"role": "system", "content": "Be brief."}] if self.rng.random() < 0.5 else []
        last: Any = self.words()
        if self.rng.random() < 0.3:
            last = [{"type": "text", "text": self.words()}]
            if self.rng.random() < 0.5:
                last.append({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})
        body: dict[str, Any] = {
            "model": "echo",
            "messages": [*opening, {"role": "user", "content": last}],
            "temperature": self.rng.choice([0, 0.7, 1]),
        }
        if self.rng.random() < 0.3:
            body["user"] = self.rng.choice(["alice", "bob"])
        if self.rng.random() < 0.3:
            body["stream"] = True
        headers = self.headers(idempotent=True)
        if self.rng.random() < 0.5:
            headers.append(("X-Turnkit-Chat", self.rng.choice(OPENAI_CHATS)))
        return Case("POST", "/v1/chat/completions", headers, body)

    def models(self) -> Case:
        path = self.rng.choice(["/v1/models", "/v1/models/echo", "/v1/models/other"])
        return Case("GET", path, self.headers()[:1])

    # ---------------------------------------------------------------- mutations

    def mutations(self) -> list[Callable[[Case], None]]:
        return [
            self.retype, self.retype, self.surrogate, self.nul, self.deep, self.drop, self.extra,
            self.number, self.duplicate, self.cut, self.short, self.garbage, self.huge, self.chunk,
            self.top_level, self.empty, self.bom, self.latin1, self.content_type, self.bad_key,
            self.twice_key, self.bad_chat, self.bad_auth, self.method, self.odd_path, self.odd_query,
        ]  # fmt: skip

    def _nodes(self, value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [path]
        if isinstance(value, dict):
            for key, item in value.items():
                found += self._nodes(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                found += self._nodes(item, (*path, index))
        return found

    def _replace(self, case: Case, make: Callable[[Any], Any]) -> None:
        """Replace a random node of the body (not the top) with ``make(old)``."""
        if not isinstance(case.body, (dict, list)) or case.text is not None:
            case.body, case.text = {"text": make("hi")}, None
            return
        paths = self._nodes(case.body)[1:] or [()]
        path = self.rng.choice(paths)
        if not path:
            case.body = make(case.body)
            return
        parent = case.body
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = make(parent[path[-1]])

    def retype(self, case: Case) -> None:
        self._replace(case, lambda _: self.rng.choice(ODD_VALUES))

    def _poison(self, case: Case, character: str) -> None:
        def poisoned(old: Any) -> Any:
            if isinstance(old, str):
                at = self.rng.randint(0, len(old))
                return old[:at] + character + old[at:]
            if isinstance(old, dict) and old:
                key = self.rng.choice(list(old))
                return {**{k: v for k, v in old.items() if k != key}, key + character: old[key]}
            return character

        self._replace(case, poisoned)

    def surrogate(self, case: Case) -> None:
        self._poison(case, self.rng.choice(["\ud800", "\udbff", "\udc00", "\udfff"]))

    def nul(self, case: Case) -> None:
        self._poison(case, "\x00")

    def _raw_node(self, case: Case, token: str) -> None:
        """Put a raw JSON token (not expressible as a Python value) at a random node."""
        marker = "@@raw@@"
        self._replace(case, lambda _: marker)
        case.text = (case.payload() or b"").replace(f'"{marker}"'.encode(), token.encode())

    def deep(self, case: Case) -> None:
        depth = self.rng.choice([60, 63, 64, 65, 200, 1500])  # 1500: past the interpreter's own limit
        self._raw_node(case, "[" * depth + "1" + "]" * depth)

    def number(self, case: Case) -> None:
        self._raw_node(case, self.rng.choice(RAW_NUMBERS))

    def drop(self, case: Case) -> None:
        if isinstance(case.body, dict) and case.body:
            case.body.pop(self.rng.choice(list(case.body)))

    def extra(self, case: Case) -> None:
        if isinstance(case.body, dict):
            case.body[self.rng.choice(["txt", "extra", "metadata", "tools", "n"])] = self.rng.choice(
                ODD_VALUES
            )

    def duplicate(self, case: Case) -> None:
        data = case.payload() or b"{}"
        if data.startswith(b"{"):
            key = self.rng.choice(["text", "messages", "model", "stream"])
            case.text = b'{"' + key.encode() + b'": "again", ' + data[1:]

    def cut(self, case: Case) -> None:
        data = case.payload() or b""
        case.text = data[: self.rng.randint(0, max(len(data) - 1, 0))]

    def short(self, case: Case) -> None:
        case.short_by = self.rng.randint(1, 200)
        if case.payload() is None:
            case.text = b""

    def garbage(self, case: Case) -> None:
        case.text = self.rng.randbytes(self.rng.randint(1, 300))

    def huge(self, case: Case) -> None:
        size = MAX_BODY + self.rng.randint(-120, 40)
        case.text = json.dumps({"text": "x"}).encode().replace(b'"x"', b'"' + b"y" * size + b'"')

    def chunk(self, case: Case) -> None:
        case.chunked = True
        if case.payload() is None:
            case.text = b'{"text": "chunked"}'

    def top_level(self, case: Case) -> None:
        case.body, case.text = self.rng.choice([[], "text", 1, None, True, [{"text": "hi"}]]), None
        if case.body is None:
            case.text = b"null"

    def empty(self, case: Case) -> None:
        case.text = b""

    def bom(self, case: Case) -> None:
        case.text = b"\xef\xbb\xbf" + (case.payload() or b"{}")

    def latin1(self, case: Case) -> None:
        case.text = '{"text": "caf\xe9"}'.encode("latin-1")

    def _set_header(self, case: Case, name: str, value: str | bytes | None) -> None:
        case.headers = [(n, v) for n, v in case.headers if n.lower() != name.lower()]
        if value is not None:
            case.headers.append((name, value))

    def content_type(self, case: Case) -> None:
        self._set_header(case, "Content-Type", self.rng.choice(CONTENT_TYPES))

    def bad_key(self, case: Case) -> None:
        self._set_header(case, "Idempotency-Key", self.rng.choice(BAD_KEYS))

    def twice_key(self, case: Case) -> None:
        case.headers += [("Idempotency-Key", "one"), ("Idempotency-Key", "two")]

    def bad_chat(self, case: Case) -> None:
        values: list[str | bytes] = ["c" * 201, "tab\tchat", "caf\xe9".encode("latin-1"), b"\x85next"]
        self._set_header(case, "X-Turnkit-Chat", self.rng.choice(values))

    def bad_auth(self, case: Case) -> None:
        self._set_header(case, "Authorization", self.rng.choice(BAD_AUTH))

    def method(self, case: Case) -> None:
        case.method = self.rng.choice(METHODS)

    def odd_path(self, case: Case) -> None:
        segment = self.rng.choice(ODD_SEGMENTS)
        case.path = self.rng.choice(
            [
                f"/api/chats/{segment}/messages",
                f"/api/chats/{segment}/sessions",
                f"/api/sessions/{segment}",
                f"/api/sessions/{segment}/messages",
                f"/v1/models/{segment}",
                f"/api/{segment}",
                "/",
                "/api",
                "/v1",
                "/v1/chat/completions/",
                "/api/chats//messages",
            ]
        )

    def odd_query(self, case: Case) -> None:
        value = self.rng.choice(["", "%00", "%ED%A0%80", "x" * 300, "chat&kind=task", "%1B[31m"])
        case.path = case.path.split("?")[0] + f"?kind={value}"


async def send(client: httpx.AsyncClient, served: Served, case: Case) -> tuple[int, dict[str, str], bytes]:
    """Send ``case``; the status, headers (lower-case names) and body of the answer."""
    data = case.payload()
    if case.short_by:
        fields = {name: _latin1(value).decode("latin-1") for name, value in case.headers}
        body = data or b""
        answer = await raw_request(
            served.url,
            http_request(case.method, case.path, fields, body, length=len(body) + case.short_by),
            watch=0,
        )
        return answer.status, answer.headers, answer.body
    content: bytes | AsyncIterator[bytes] | None = data
    if case.chunked and data is not None:
        content = _chunks(data)
    headers = [(name.encode(), _latin1(value)) for name, value in case.headers]
    response = await client.request(case.method, case.path, headers=headers, content=content)
    return response.status_code, dict(response.headers), response.content


def _latin1(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 700):
        yield data[start : start + 700]


def check(case: Case, status: int, headers: dict[str, str], body: bytes, ledger: Ledger) -> None:
    """Note a problem with the answer, or what a success created."""
    where = f"{case.method} {case.path[:80]} {case.notes} -> {status}: {body[:160]!r}"
    if not (200 <= status < 300 or 400 <= status < 500):
        ledger.problems.append(f"not a 2xx or 4xx: {where}")
    elif case.method == "HEAD":
        pass
    elif status >= 400:
        error = json.loads(body).get("error") if headers.get("content-type") == "application/json" else None
        shape = isinstance(error, dict) and {"type", "message"} <= set(error) <= set(OPENAI_ERROR_KEYS)
        if not (shape and error["message"]):
            ledger.problems.append(f"not a JSON error in the API's shape: {where}")
        elif "Traceback" in error["message"]:
            ledger.problems.append(f"a traceback in an error: {where}")
    else:
        _created(case, headers, body, ledger)


def _created(case: Case, headers: dict[str, str], body: bytes, ledger: Ledger) -> None:
    if headers.get("content-type", "").startswith("text/event-stream"):
        events = [json.loads(line[5:]) for line in body.decode().splitlines() if line.startswith("data: {")]
        if case.path.startswith("/v1/"):
            ledger.streamed_chats.add(headers["x-turnkit-chat"])
        else:
            ledger.sessions.update(e["session_id"] for e in events if "session_id" in e)
        return
    if "x-turnkit-session" in headers:
        ledger.sessions.add(headers["x-turnkit-session"])
    elif case.method == "POST" and case.path.startswith("/api/"):
        ledger.sessions.add(json.loads(body)["session_id"])


async def test_no_request_gets_a_5xx_and_refused_ones_store_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    fuzzer = Fuzzer(rng)
    ledger = Ledger()
    table = {"token": TOKEN, "max_body": MAX_BODY, "read_timeout": READ_TIMEOUT}
    async with serving_http(tmp_path, http=table) as served, served.client() as client:
        for _ in range(REQUESTS):
            case = fuzzer.case()
            for _ in range(2 if rng.random() < 0.05 else 1):  # now and then, a client's retry
                status, headers, body = await send(client, served, case)
                check(case, status, headers, body, ledger)
            fuzzer.known_sessions = sorted(ledger.sessions)
        assert not ledger.problems, f"{len(ledger.problems)} bad answers:\n" + "\n".join(ledger.problems[:20])

        bindings = {b["chat"]: b["session_id"] for b in await served.chat.bindings()}
        expected = ledger.sessions | {bindings[f"http:{chat}"] for chat in ledger.streamed_chats}
        stored = {s.session_id for s in await served.agent.sessions.list_sessions()}
        assert stored == expected, f"stored but not reported: {stored - expected}; lost: {expected - stored}"
        assert len(expected) > 5, "the fuzz should also succeed now and then"
