"""Messages becoming turns, and replies reaching the chat: through ``turnkit serve`` and the emulator.

The model is the echo model: the reply is the inbound text, so what the
emulator's reply endpoint shows is what the channel made of the message.
"""

from __future__ import annotations

from conftest import Serve
from feishu_emulator import FeishuEmulator
from turnkit.testing_served import ServedAgent


def test_a_text_message_becomes_a_turn_and_its_reply_answers_the_message(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()
    event = pusher.message_event(
        "oc_group",
        "@_user_1 what is  the time?",
        mentions=[{"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "Bot"}],
        chat_type="group",
    )

    assert pusher.push(event, resends=0) == (200, {})

    turnkit_served.wait_for(lambda: emulator.texts("oc_group") == ["what is the time?"])
    [reply] = emulator.shown_replies()
    assert reply.message_id == event["event"]["message"]["message_id"]
    assert (reply.token, reply.in_thread) == ("t-1", False)
    assert 0 < len(reply.uuid) <= 50
    [turn] = turnkit_served.turns()
    assert (turn["channel"], turn["chat_id"], turn["thread_id"]) == ("feishu", "oc_group", None)
    assert (turn["inbound"], turn["status"]) == ("what is the time?", "completed")


def test_a_rich_text_message_in_a_thread_is_flattened_and_answered_in_the_thread(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()
    post = {
        "zh_cn": {
            "title": "Plan",
            "content": [
                [{"tag": "text", "text": "ask "}, {"tag": "at", "user_id": "@_user_1", "user_name": "Li"}],
                [
                    {"tag": "a", "text": "the doc", "href": "https://example.org"},
                    {"tag": "img", "image_key": "i"},
                ],
            ],
        }
    }
    event = pusher.message_event("oc_team", message_type="post", content=post, thread_id="omt_topic")

    assert pusher.push(event, resends=0)[0] == 200

    turnkit_served.wait_for(lambda: emulator.texts("oc_team") == ["Plan\nask @Li\nthe doc"])
    assert emulator.shown_replies()[0].in_thread is True
    [turn] = turnkit_served.turns()
    assert (turn["chat_id"], turn["thread_id"]) == ("oc_team", "omt_topic")


def test_a_post_without_language_key_is_read_too(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()
    post = {"title": "", "content": [[{"tag": "text", "text": "plain post"}]]}

    pusher.push(pusher.message_event("oc_1", message_type="post", content=post), resends=0)

    turnkit_served.wait_for(lambda: emulator.texts("oc_1") == ["plain post"])


def test_chats_and_threads_are_conversations_of_their_own(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()

    for chat, thread, text in [("oc_a", None, "one"), ("oc_a", "omt_1", "two"), ("oc_b", None, "three")]:
        pusher.push(pusher.message_event(chat, text, thread_id=thread), resends=0)
    pusher.push(pusher.message_event("oc_a", "four"), resends=0)

    turnkit_served.wait_for(lambda: len(emulator.shown_replies()) == 4)
    sessions = {(t["chat_id"], t["thread_id"]): t["session_id"] for t in turnkit_served.turns()}
    assert len(sessions) == 3
    assert [
        t["inbound"] for t in turnkit_served.turns() if t["chat_id"] == "oc_a" and not t["thread_id"]
    ] == [
        "one",
        "four",
    ]


def test_other_messages_and_events_are_acknowledged_and_ignored(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()
    image = pusher.message_event("oc_1", message_type="image", content={"image_key": "img_1"})
    only_a_mention = pusher.message_event("oc_1", "@_user_1", mentions=[{"key": "@_user_1", "name": "Bot"}])
    other = pusher.message_event("oc_1", "hi")
    other["header"]["event_type"] = "im.chat.member.bot.added_v1"

    answers = [pusher.push(event, resends=0) for event in (image, only_a_mention, other)]
    pusher.push(pusher.message_event("oc_1", "the one to answer"), resends=0)

    turnkit_served.wait_for(lambda: emulator.texts() == ["the one to answer"])
    assert answers == [(200, {})] * 3
    assert [t["inbound"] for t in turnkit_served.turns()] == ["the one to answer"]


def test_an_event_sent_twice_makes_one_turn_and_one_reply(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve()
    event = pusher.message_event("oc_1", "only once")

    first, again = pusher.push(event, resends=0), pusher.push(event, resends=0)
    turnkit_served.wait_for(lambda: emulator.texts() == ["only once"])
    late = pusher.push(event, resends=0)  # after it was answered

    assert first == again == late == (200, {})
    assert len(turnkit_served.turns()) == 1
    assert len(emulator.all_attempts()) == 1


def test_a_long_reply_is_split_and_sent_in_order(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve(max_length=13)
    words = [f"word{i:02d}" for i in range(9)]

    pusher.push(pusher.message_event("oc_1", " ".join(words)), resends=0)

    turnkit_served.wait_for(lambda: " ".join(emulator.texts()) == " ".join(words))
    parts = emulator.shown_replies()
    assert len(parts) == 5
    assert all(len(p.text) <= 13 for p in parts)
    assert len({p.uuid for p in parts}) == 5


def test_no_more_than_five_messages_a_second_go_into_one_chat(
    serve: Serve, turnkit_served: ServedAgent, emulator: FeishuEmulator
) -> None:
    pusher = serve(max_length=3)
    text = " ".join(f"p{i:02d}" for i in range(13))

    pusher.push(pusher.message_event("oc_1", text, thread_id="omt_1"), resends=0)
    pusher.push(
        pusher.message_event("oc_1", "xx yy zz", thread_id="omt_2"), resends=0
    )  # same chat, answered beside

    turnkit_served.wait_for(lambda: len(emulator.shown_replies()) == 16, timeout=20)
    assert [t for t in emulator.texts() if t.startswith("p")] == [f"p{i:02d}" for i in range(13)]
    times = sorted(a.at for a in emulator.all_attempts())
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[5:], strict=False)), times
