"""The plugin: answers ``session_compress`` and compresses sessions whose window fills up."""

from __future__ import annotations

from collections.abc import Sequence

from turnkit_hookspecs import Level, Message, Plugin, SessionExtensionContext, hookimpl

from .extract import HEADER, MERGE_HEADER, MIN_BUDGET, summarize
from .settings import SummarizerSettings

#: Characters per token assumed when the budget follows the context window.
CHARS_PER_TOKEN = 4
#: The share of a merge summary's budget that goes to the child's answer.
MERGE_ANSWER_SHARE = 0.75
#: The ``reason`` the runtime gives ``session_compress`` for a child's merge summary.
MERGE_REASON = "merge"
_RANK: dict[Level, int] = {"ok": 0, "warn": 1, "critical": 2}


class SummarizerPlugin(Plugin):
    """Extractive summaries for compressions and merges; compression when the window reaches a level.

    One instance per agent (the runtime makes it from the entry point), so
    the sessions it is compressing are its own to track.
    """

    settings_class = SummarizerSettings
    settings: SummarizerSettings

    def __init__(self) -> None:
        #: Sessions this agent is compressing now: a second request for one of them is skipped.
        self._compressing: set[str] = set()

    def budget(self, max_tokens: int) -> int:
        """The summary's size in characters for a context window of ``max_tokens``."""
        by_window = int(max_tokens * self.settings.window_share * CHARS_PER_TOKEN)
        return max(MIN_BUDGET, min(self.settings.max_chars, by_window))

    @hookimpl
    async def session_compress(
        self, ctx: SessionExtensionContext, messages: Sequence[Message], reason: str
    ) -> str:
        """Summarise ``messages`` within the budget: for a merge the child's answer comes first."""
        state = await ctx.get_context_window_state()
        budget = self.budget(state.max_tokens)
        if reason == MERGE_REASON:
            return summarize(messages, budget, MERGE_ANSWER_SHARE, MERGE_HEADER)
        return summarize(messages, budget, self.settings.answer_share, HEADER)

    @hookimpl
    async def turn_completed(self, ctx: SessionExtensionContext) -> None:
        """After a turn is committed, compress the session if its window reached ``compress_at``.

        Effects run in the background, possibly while the session's next turn
        runs; compression is safe then (it only marks older messages), but two
        at once would summarise the same messages twice, so a session already
        being compressed here is left alone.
        """
        threshold = self.settings.compress_at
        if threshold == "never" or ctx.session_id in self._compressing:
            return
        self._compressing.add(ctx.session_id)
        try:
            state = await ctx.get_context_window_state()
            if _RANK[state.level] >= _RANK[threshold]:
                reason = f"context window {state.level}: {state.current_tokens} of {state.max_tokens} tokens"
                await ctx.request_compression(reason)
        finally:
            self._compressing.discard(ctx.session_id)
