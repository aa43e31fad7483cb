"""The plugin: sub-questions answered in child sessions, merged back before the model answers.

Where it hooks in, and why there: ``turn_prompt``. The prompt of a turn is
assembled from the history read when the turn started, so a message merged
into the session during the turn reaches the *next* turn's history but not
this turn's prompt; the plugin therefore adds the merged messages to the
prompt it is given, right after the inbound message (where they also stand
in the stored history). Running a child turn from inside the parent's turn
cannot deadlock: the parent's lease covers only the parent session, and a
child is another session with its own worker. The child's own turn fires
``turn_prompt`` too; its message no longer carries the prefix, and turns this
plugin started are skipped, so a child never forks again.
"""

from __future__ import annotations

import asyncio

import attrs
from turnkit_hookspecs import (
    ForkOptions,
    Message,
    Plugin,
    Prompt,
    SessionExtensionContext,
    TurnInfo,
    TurnResult,
    hookimpl,
)

from .questions import answer_summary, find_subquestions, unanswered
from .settings import SubquestionSettings

#: Metadata key of a note about a sub-question in the prompt (the question).
SUBQUESTION = "subquestion"


class SubquestionPlugin(Plugin):
    """Forks a child session per sub-question of an inbound message and merges each answer back."""

    settings_class = SubquestionSettings
    settings: SubquestionSettings

    @hookimpl
    async def turn_prompt(
        self, ctx: SessionExtensionContext, turn: TurnInfo, prompt: Prompt
    ) -> Prompt | None:
        """Answer the inbound message's sub-questions and put the results after it in the prompt."""
        if turn.initiator == "extension" and turn.initiator_id == ctx.extension_id:
            return None  # a child turn this plugin started
        inbound = _last_user_message(prompt)
        if inbound is None:
            return None
        questions = find_subquestions(prompt.messages[inbound].text, self.settings.prefix)
        if not questions:
            return None
        asked, skipped = questions[: self.settings.max_questions], questions[self.settings.max_questions :]
        notes = await self._answer_all(ctx, asked)
        limit = (
            f"at most {self.settings.max_questions} sub-question(s) are asked per message"
            " ([plugin.subquestion] max_questions)"
        )
        notes += [_note(question, unanswered(question, limit)) for question in skipped]
        messages = prompt.messages
        return attrs.evolve(prompt, messages=(*messages[: inbound + 1], *notes, *messages[inbound + 1 :]))

    async def _answer_all(self, ctx: SessionExtensionContext, questions: list[str]) -> list[Message]:
        """Fork a child per question (in order), run the children's turns at once, then merge in order.

        Returns, per question, the merged message or a note saying why there is no answer.
        """
        children = [await self._fork(ctx, question) for question in questions]
        results = await asyncio.gather(
            *(self._ask(ctx, child, question) for child, question in zip(children, questions, strict=True))
        )
        return [
            await self._close(ctx, child, question, result)
            for child, question, result in zip(children, questions, results, strict=True)
        ]

    async def _fork(self, ctx: SessionExtensionContext, question: str) -> str | Exception:
        try:
            return await ctx.fork(
                ForkOptions(reason=f"sub-question: {question}", metadata={SUBQUESTION: question})
            )
        except Exception as exc:  # a guard's deny, or the store: the parent's turn goes on without it
            self.context.logger.warning("sub-question %r: could not fork: %s", question, exc)
            return exc

    async def _ask(
        self, ctx: SessionExtensionContext, child: str | Exception, question: str
    ) -> TurnResult | Exception:
        """The child's turn on ``question`` (initiated by this plugin), or why there is none."""
        if isinstance(child, Exception):
            return child
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await self.context.session.turn(
                    child, Message.of("user", question), initiator="extension", initiator_id=ctx.extension_id
                )
        except TimeoutError:
            return TimeoutError(f"no answer within {self.settings.timeout:g} s")
        except Exception as exc:
            return exc

    async def _close(
        self,
        ctx: SessionExtensionContext,
        child: str | Exception,
        question: str,
        result: TurnResult | Exception,
    ) -> Message:
        """Merge an answered child into the parent, or abandon it; return what the prompt gets."""
        if isinstance(child, Exception):
            return _note(question, unanswered(question, f"could not fork a child session: {child}"))
        reply, why = _outcome(result)
        if reply is not None:
            summary = (
                answer_summary(question, reply.text, self.settings)
                if self.settings.summary == "answer"
                else None
            )
            try:
                return await ctx.merge(child, summary)
            except Exception as exc:  # e.g. a failing session_compress: the child is abandoned instead
                why = f"merging its answer failed: {type(exc).__name__}: {exc}"
        self.context.logger.warning("sub-question %r: abandoning child session %s: %s", question, child, why)
        try:
            await ctx.abandon(child)
        except Exception as exc:  # closed meanwhile by someone else: nothing left to abandon
            self.context.logger.warning("sub-question %r: abandoning %s failed: %s", question, child, exc)
        return _note(question, unanswered(question, f"child session {child} was abandoned: {why}"))


def _outcome(result: TurnResult | Exception) -> tuple[Message | None, str]:
    """The child's reply, or ``None`` and why its turn brought no answer."""
    if isinstance(result, Exception):
        return None, f"{type(result).__name__}: {result}"
    if result.turn.status == "completed" and result.reply is not None:
        return result.reply, ""
    if result.deny is not None:
        return None, f"its turn was denied by {result.deny.plugin}: {result.deny.reason}"
    return None, f"its turn {result.turn.status}: {result.turn.error}"


def _last_user_message(prompt: Prompt) -> int | None:
    """The index of the inbound message: the last user message of the prompt."""
    for index in range(len(prompt.messages) - 1, -1, -1):
        if prompt.messages[index].role == "user":
            return index
    return None


def _note(question: str, text: str) -> Message:
    return Message.of("system", text, metadata={SUBQUESTION: question})
