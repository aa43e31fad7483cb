"""Extractive summaries of a conversation: chosen sentences, never generated text.

The summary keeps what a later turn is most likely to need and what a
first-sentence digest loses: the questions the user asked, sentences that
carry decisions, numbers and names, and the newest answer, all within a
character budget. Every line is a sentence (or the start of one) copied from
the messages, so the summary never says anything the conversation did not.

Everything here is a plain function over contract messages, deterministic:
the same messages and budget always give the same summary.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs
from turnkit_hookspecs import Message, ToolOutputBlock

#: First line of a compression summary; such a summary is read back line by line (see :func:`is_summary`).
HEADER = "Summary of earlier conversation (extractive):"
#: First line of a child session's summary, merged into its parent.
MERGE_HEADER = "Summary of the child session (extractive):"
ASKED = "Asked:"
NOTED = "Noted:"
LAST = "Last answer:"
#: What a summary of messages without any text says.
NOTHING = "(no text to keep)"
#: The longest a kept sentence may be; longer ones are cut with an ellipsis.
ITEM_CHARS = 240
#: The smallest budget a summary can be made in (the header and one short line).
MIN_BUDGET = 80

Section = Literal["asked", "noted"]
TITLES: dict[Section, str] = {"asked": ASKED, "noted": NOTED}

_BREAK = re.compile(r"(?<=[.!?…])\s+")
_LIST_MARKER = re.compile(r"^(?:[-*•]|\d{1,3}[.)])\s+")
_DECISION = re.compile(
    r"\b(decid\w*|agree\w*|chose|choose|chosen|will|won't|must|should|need(?:s|ed)? to|let's|"
    r"plan\w*|confirm\w*|approv\w*|deadline|due|prefer\w*|remember|always|never|budget|goal)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_IDENTIFIER = re.compile(r"\S+@\S+\.\w+|https?://\S+|`[^`]+`")
#: Punctuation around a word, typographic quotes included.
_STRIP = string.punctuation + "\u00ab\u00bb\u201c\u201d\u2018\u2019"
#: Labels of the roles in summary lines: a system message is a note (a merged result, a rule …).
_LABELS = {"user": "user", "assistant": "assistant", "tool": "tool", "system": "note"}


@attrs.frozen
class Candidate:
    """A sentence that may go into the summary: where it came from, its line, and how much it matters.

    ``position`` is its message's index, ``index`` its place in that message.
    """

    position: int
    index: int
    section: Section
    line: str
    score: float


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, each on one line; a line break always ends a sentence.

    List markers (``-``, ``*``, ``•``, ``1.``, ``2)``) are dropped.
    """
    found = []
    for paragraph in text.splitlines():
        flat = _LIST_MARKER.sub("", " ".join(paragraph.split()))
        found += [part for part in _BREAK.split(flat) if part]
    return found


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def score(sentence: str, role: str) -> float:
    """How much a sentence matters for later turns (0 for filler such as "ok, thanks").

    A user's question scores highest; a decision, a number, a name, an
    address or an identifier each add to it. What the user says counts more
    than what the assistant said, which a later answer can say again.
    """
    words = sentence.split()
    numbers = len(_NUMBER.findall(sentence))
    if len(words) < 3 and not numbers:
        return 0.0
    value = 1.0 if role in ("user", "system") else 0.5
    if role == "user" and sentence.endswith("?"):
        value += 3.0
    if _DECISION.search(sentence):
        value += 3.0
    value += min(numbers, 2) * 1.5
    names = sum(1 for word in words[1:] if word.strip(_STRIP)[:1].isupper() and word.strip(_STRIP) != "I")
    value += min(names, 2) * 1.0 + min(len(_IDENTIFIER.findall(sentence)), 2) * 1.0
    return value


def message_text(message: Message) -> str:
    """The text a summary may quote: the text blocks, or a tool message's outputs."""
    outputs = [b.output for b in message.blocks if isinstance(b, ToolOutputBlock) and not b.is_error]
    return "\n".join(outputs) if message.role == "tool" else message.text


def is_summary(message: Message) -> bool:
    """Whether ``message`` holds a summary this module wrote: an earlier compression, or a merged child's.

    A merged summary comes after the runtime's own words (``Result of child
    session …: ``), so only the end of the first line is compared.
    """
    first_line = message.text.split("\n", 1)[0]
    return message.role == "system" and first_line.endswith((HEADER, MERGE_HEADER))


def candidates(messages: Sequence[Message], skip: int | None = None) -> list[Candidate]:
    """Every sentence of ``messages`` worth keeping, scored; message ``skip`` is left out.

    The lines of an earlier summary compete again with what was said since,
    scored as when they were first kept, so a second compression keeps them
    unless newer matter crowds them out; its last answer becomes a noted
    line, being no longer the last. Newer sentences win ties.
    """
    found: list[Candidate] = []
    total = max(len(messages), 1)
    for position, message in enumerate(messages):
        if position == skip:
            continue
        recency = 0.5 * position / total
        if is_summary(message):
            lines = _carried(message)
        else:
            label = _LABELS.get(message.role, message.role)
            lines = (
                (_section(message.role, s), message.role, f"{label}: {s}")
                for s in sentences(message_text(message))
            )
        for index, (section, role, line) in enumerate(lines):
            value = score(line.split(": ", 1)[-1], role)
            if value > 0:
                found.append(Candidate(position, index, section, clip(line, ITEM_CHARS), value + recency))
    return found


def _section(role: str, sentence: str) -> Section:
    return "asked" if role == "user" and sentence.endswith("?") else "noted"


def _carried(summary: Message) -> Iterable[tuple[Section, str, str]]:
    """(section, role, line) of each line an earlier summary kept."""
    roles = {label: role for role, label in _LABELS.items()}
    section: Section = "noted"
    for line in summary.text.splitlines()[1:]:
        if line in (ASKED, NOTED, LAST):
            section = "asked" if line == ASKED else "noted"
        elif line.startswith("- "):
            label = line[2:].split(": ", 1)[0]
            yield section, roles.get(label, "system"), line[2:]
        elif line and line != NOTHING:  # the earlier summary's last answer
            yield "noted", "assistant", f"earlier answer: {line}"


def latest_answer(messages: Sequence[Message]) -> int | None:
    """The position of the newest assistant message saying something (not just "Noted."), if any."""
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if message.role == "assistant" and any(score(s, "assistant") for s in sentences(message.text)):
            return position
    return None


def fit_sentences(text: str, limit: int) -> str:
    """As many leading sentences of ``text`` as fit in ``limit`` (at least the start of the first)."""
    kept = ""
    for sentence in sentences(text):
        longer = f"{kept} {sentence}" if kept else sentence
        if len(longer) > limit:
            break
        kept = longer
    return kept or clip(" ".join(text.split()), limit)


def summarize(
    messages: Sequence[Message], budget: int, answer_share: float = 0.4, header: str = HEADER
) -> str:
    """An extractive summary of ``messages`` in at most ``budget`` characters.

    ``answer_share`` of the budget goes to the newest assistant answer
    (fewer if it is shorter); the rest to the best-scoring sentences, shown
    in the order they were said, questions first. ``header`` is the first line.
    """
    if budget < MIN_BUDGET:
        raise ValueError(f"a summary needs a budget of at least {MIN_BUDGET} characters, got {budget}")
    lines = [header]
    used = len(header)
    answer_at = latest_answer(messages)
    tail: list[str] = []
    if answer_at is not None:
        room = int(budget * answer_share) - len(LAST) - 2
        if room > 0:
            tail = [LAST, fit_sentences(messages[answer_at].text, room)]
            used += sum(len(line) + 1 for line in tail)
    chosen = _choose(candidates(messages, skip=answer_at if tail else None), budget - used)
    for section, title in TITLES.items():
        picked = sorted((c for c in chosen if c.section == section), key=lambda c: (c.position, c.index))
        if picked:
            lines += [title, *(f"- {c.line}" for c in picked)]
    if len(lines) == 1 and not tail:
        lines.append(NOTHING)
    return "\n".join(lines + tail)


def _choose(found: list[Candidate], room: int) -> list[Candidate]:
    """The best candidates that fit in ``room`` characters, section titles included."""
    chosen: list[Candidate] = []
    opened: set[Section] = set()
    seen: set[str] = set()
    for candidate in sorted(found, key=lambda c: (-c.score, -c.position, c.index)):
        key = candidate.line.split(": ", 1)[-1].casefold()
        if key in seen:
            continue
        cost = (
            len(candidate.line)
            + 3
            + (0 if candidate.section in opened else len(TITLES[candidate.section]) + 1)
        )
        if cost > room:
            continue
        seen.add(key)
        opened.add(candidate.section)
        chosen.append(candidate)
        room -= cost
    return chosen
