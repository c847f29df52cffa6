"""Which channels a user may see: every page of users.conversations, remembered briefly."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.slack.memberships import MembershipCache, MembershipUnavailable, fetch_member_channels


class Client:
    def __init__(self, pages: dict[str | None, tuple[list[str], str]], fail: str | None = None) -> None:
        self.pages = pages
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def users_conversations(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.fail:
            response = SlackResponse(client=None, http_verb="POST", api_url="x", req_args={},
                                     data={"ok": False, "error": self.fail}, headers={}, status_code=200)
            raise SlackApiError("failed", response)
        ids, next_cursor = self.pages[kwargs.get("cursor")]
        return {"ok": True, "channels": [{"id": i} for i in ids], "response_metadata": {"next_cursor": next_cursor}}


def test_every_page_is_read_by_following_the_cursor() -> None:
    client = Client({None: (["C1", "C2"], "page2"), "page2": (["G3"], "page3"), "page3": (["C4"], "")})
    assert fetch_member_channels(client, "U1") == {"C1", "C2", "G3", "C4"}
    assert [c.get("cursor") for c in client.calls] == [None, "page2", "page3"]
    assert all(c["user"] == "U1" and c["types"] == "public_channel,private_channel" for c in client.calls)


def test_answers_are_cached_per_user_until_the_ttl_runs_out() -> None:
    now = [1000.0]
    cache = MembershipCache(ttl_seconds=60, clock=lambda: now[0])
    client = Client({None: (["C1"], "")})

    assert cache.channels_for(client, "U1") == {"C1"}
    assert cache.channels_for(client, "U1") == {"C1"}
    cache.channels_for(client, "U2")
    assert len(client.calls) == 2
    now[0] += 61
    cache.channels_for(client, "U1")
    assert len(client.calls) == 3


def test_when_slack_cannot_say_nothing_is_shown() -> None:
    with pytest.raises(MembershipUnavailable) as unavailable:
        MembershipCache().channels_for(Client({}, fail="ratelimited"), "U1")
    assert "try again" in unavailable.value.user_message
