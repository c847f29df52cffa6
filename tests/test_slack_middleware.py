"""Bots are ignored, and a delivery seen recently is dropped."""

from __future__ import annotations

from bot.slack.middleware import RecentIds, is_from_bot


def test_messages_by_any_bot_or_by_imgbot_itself_are_skipped() -> None:
    assert is_from_bot({"type": "message", "subtype": "file_share", "bot_id": "B1", "user": "U1"}, "U0BOT")
    assert is_from_bot({"type": "message", "subtype": "bot_message"}, "U0BOT")
    assert is_from_bot({"type": "message", "subtype": "file_share", "user": "U0BOT"}, "U0BOT")
    assert is_from_bot({"type": "file_shared", "user_id": "U0BOT", "file_id": "F1"}, "U0BOT")
    assert not is_from_bot({"type": "message", "subtype": "file_share", "user": "U1"}, "U0BOT")
    assert not is_from_bot({"type": "file_shared", "user_id": "U1"}, "U0BOT")


def test_deletions_are_never_mistaken_for_bot_messages() -> None:
    deleted = {"type": "message", "subtype": "message_deleted", "previous_message": {"bot_id": "B1"}}
    assert not is_from_bot(deleted, "U0BOT")


def test_recent_ids_remember_for_a_while_then_forget() -> None:
    now = [0.0]
    seen = RecentIds(ttl_seconds=10, clock=lambda: now[0])
    assert seen.add("Ev1") and not seen.add("Ev1") and seen.add("Ev2")
    now[0] = 11
    assert seen.add("Ev1")


def test_recent_ids_stay_bounded() -> None:
    seen = RecentIds(ttl_seconds=1000, max_entries=3)
    for n in range(10):
        seen.add(f"Ev{n}")
    assert seen.add("Ev0")  # the oldest were let go
