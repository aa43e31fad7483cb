"""Fenced code blocks of the markdown documents whose examples the tests run."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The line that marks the next block as a complete pytest module to run.
MARKER = "<!-- test -->"


@dataclass(frozen=True)
class Block:
    """A fenced code block of a document: its language, first line (1-based) and text."""

    language: str
    line: int
    code: str
    marked: bool


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, each with whether ``MARKER`` precedes it."""
    found = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = re.fullmatch(r"```(\w*)", lines[index])
        if fence is None:
            index += 1
            continue
        end = lines.index("```", index + 1)
        before = [line for line in lines[:index] if line.strip()]
        marked = bool(before) and before[-1].strip() == MARKER
        found.append(Block(fence.group(1), index + 2, "\n".join(lines[index + 1 : end]) + "\n", marked))
        index = end + 1
    return found
