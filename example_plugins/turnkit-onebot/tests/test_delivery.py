"""What happens when a message or a reply goes wrong: re-sent events, refused sends, crashes, reconnects.

Every test counts the turns in the store (``served.turns()``): whatever
happens to the reply, a message has exactly one turn. What the bot's
account receives is :meth:`OneBotEmulator.sent`, every call with what the
emulator answered.
"""

from __future__ import annotations

from collections.abc import Callable

from onebot_emulator import OneBotEmulator, private, text
from turnkit.testing_served import ServedAgent

Bots = Callable[..., OneBotEmulator]


def answers(bot: OneBotEmulator) -> list[tuple[str, str]]:
    return [(call.answer, call.text) for call in bot.sent(None)]


def test_a_message_id_received_again_is_dropped(served: ServedAgent, bots: Bots) -> None:
    served.start()
    bot = bots()
    bot.push(private(1, 20002, [text("first")]))
    served.wait_for(lambda: bot.texts() == ["first"])
    bot.push(private(1, 20002, [text("first")]))  # re-sent, as after a reconnect
    bot.push(private(2, 20002, [text("second")]))
    served.wait_for(lambda: bot.texts() == ["first", "second"])
    assert [t["inbound"] for t in served.turns()] == ["first", "second"]


def test_a_refused_send_is_sent_again_with_the_same_turn(served: ServedAgent, bots: Bots) -> None:
    served.start()
    bot = bots()
    bot.refuse(1)
    bot.push(private(3, 20002, [text("try again")]))
    served.wait_for(lambda: bot.texts() == ["try again"])
    assert answers(bot) == [("failed", "try again"), ("ok", "try again")]
    assert len(served.turns()) == 1
    assert "retcode 100" in served.output


def test_a_retried_long_reply_sends_only_the_parts_not_sent_yet(served: ServedAgent, bots: Bots) -> None:
    served.configure(service={"chat": {"channel": {"onebot": {"max_length": 20}}}})
    served.start()
    bot = bots()
    bot.refuse(1, after=1)  # the second part is refused once
    bot.push(private(4, 20002, [text("one two three four five six seven eight nine ten")]))
    served.wait_for(lambda: len(bot.texts()) == 3)
    assert answers(bot) == [
        ("ok", "one two three four"),
        ("failed", "five six seven eight"),
        ("ok", "five six seven eight"),
        ("ok", "nine ten"),
    ]
    assert len(served.turns()) == 1


def test_a_message_accepted_before_a_crash_is_answered_once_after_the_restart(
    served: ServedAgent, bots: Bots
) -> None:
    served.start()
    bot = bots()
    bot.silent = True  # the send never gets its answer: the reply is not known to be delivered
    bot.push(private(5, 20002, [text("survive this")]))
    served.wait_for(lambda: len(bot.sent(None)) == 1)
    served.kill()  # SIGKILL while the send waits
    bot.silent = False
    served.start()  # the emulator reconnects; the new worker takes up the message
    served.wait_for(lambda: bot.texts() == ["survive this"], timeout=30)
    assert len(served.turns()) == 1
    assert answers(bot) == [("silent", "survive this"), ("ok", "survive this")]  # at least once
    assert bot.opened == 2


def test_a_new_connection_of_the_bot_replaces_the_old_one_whose_waiting_send_fails(
    served: ServedAgent, bots: Bots
) -> None:
    served.start()
    old = bots(reconnect=False)
    old.silent = True
    old.push(private(6, 20002, [text("over the new socket")]))
    served.wait_for(lambda: len(old.sent(None)) == 1)
    new = bots()
    new.wait_connected()
    served.wait_for(lambda: old.closed == [(1000, "replaced by a new connection of the same bot")])
    served.wait_for(lambda: new.texts() == ["over the new socket"])  # the retry goes over the new one
    new.push(private(7, 20002, [text("and the next")]))
    served.wait_for(lambda: new.texts() == ["over the new socket", "and the next"])
    assert answers(old) == [("silent", "over the new socket")]
    assert len(served.turns()) == 2


def test_a_reply_waits_for_the_bot_to_connect(served: ServedAgent, bots: Bots) -> None:
    served.configure(service={"chat": {"channel": {"onebot": {"call_timeout": 0.5}}}})
    served.start()
    gone = bots(reconnect=False)
    gone.silent = True
    gone.push(private(8, 20002, [text("after the reconnect")]))
    served.wait_for(lambda: len(gone.sent(None)) == 1)
    gone.stop()  # the bot is away for a while: the retries find no socket
    served.wait_for(lambda: "no connection for bot 10001 in this worker" in served.output)
    back = bots()
    served.wait_for(lambda: back.texts() == ["after the reconnect"], timeout=30)
    assert len(served.turns()) == 1


def test_stopping_the_agent_closes_the_socket_and_the_bot_comes_back(served: ServedAgent, bots: Bots) -> None:
    served.start()
    bot = bots()
    bot.wait_connected()
    assert served.stop() == 0
    served.wait_for(lambda: len(bot.closed) == 1)
    assert bot.closed[0][0] in (1001, 1012)  # going away (the channel) or service restart (the server)
    served.start()
    bot.push(private(9, 20002, [text("welcome back")]))
    served.wait_for(lambda: bot.texts() == ["welcome back"])
