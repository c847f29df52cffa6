"""Which channels a person may see: asked of Slack, remembered briefly.

Search and reports pass these channels to the core, so a private channel's images never
reach someone outside it, whatever the query says. ``users.conversations`` with the bot
token lists the public and private channels the user is in (private ones only where the
bot is a member too, which is every channel imgbot has images from).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.errors import ImgbotError
from bot.slack import messages

log = logging.getLogger("imgbot.slack.memberships")

CHANNEL_TYPES = "public_channel,private_channel"
PAGE_SIZE = 200
MAX_PAGES = 100


class MembershipUnavailable(ImgbotError):
    """Slack could not tell which channels the user is in; nothing is shown rather than too much."""

    retryable = True


class ConversationsClient(Protocol):
    def users_conversations(self, **kwargs: Any) -> Any: ...


class MembershipCache:
    """A small TTL cache of ``(team, user) -> channel ids``; safe to share between threads."""

    def __init__(self, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[float, frozenset[str], frozenset[str]]] = {}
        self._lock = threading.Lock()

    def channels_for(self, client: ConversationsClient, user_id: str, team_id: str | None = None) -> frozenset[str]:
        """Every channel the user is in: what search may show the user, privately."""
        return self._lookup(client, user_id, team_id)[0]

    def shareable_channels_for(
        self, client: ConversationsClient, user_id: str, posting_channel: str, team_id: str | None = None
    ) -> frozenset[str]:
        """What may be posted in ``posting_channel`` on the user's behalf, for everyone there to read.

        A report posted in a channel is read by all its members, who may not be in the requester's
        private channels: so it covers the requester's public channels plus the channel itself. In a
        direct message with imgbot only the requester reads it, so it covers everything they can see.
        """
        everything, private = self._lookup(client, user_id, team_id)
        if posting_channel.startswith("D"):
            return everything
        return frozenset(c for c in everything if c not in private or c == posting_channel)

    def _lookup(self, client: ConversationsClient, user_id: str,
                team_id: str | None) -> tuple[frozenset[str], frozenset[str]]:
        key = (team_id or "", user_id)
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1], hit[2]
        channels, private = fetch_memberships(client, user_id, team_id)
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._evict(now)
            self._entries[key] = (now + self.ttl, channels, private)
        return channels, private

    def forget(self, user_id: str | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[1] == user_id]:
                    del self._entries[key]

    def _evict(self, now: float) -> None:
        for key in [k for k, (expires, _, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))


def fetch_member_channels(client: ConversationsClient, user_id: str, team_id: str | None = None) -> frozenset[str]:
    """Every public and private channel ``user_id`` is in, following ``next_cursor`` to the end."""
    return fetch_memberships(client, user_id, team_id)[0]


def fetch_memberships(
    client: ConversationsClient, user_id: str, team_id: str | None = None
) -> tuple[frozenset[str], frozenset[str]]:
    """(every channel ``user_id`` is in, the private ones among them)."""
    channels: set[str] = set()
    private: set[str] = set()
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        kwargs: dict[str, Any] = {"user": user_id, "types": CHANNEL_TYPES, "limit": PAGE_SIZE,
                                  "exclude_archived": False}
        if cursor:
            kwargs["cursor"] = cursor
        try:
            response = client.users_conversations(**kwargs)
        except (SlackApiError, SlackClientError, OSError) as err:
            log.warning("users.conversations failed for user=%s: %s", user_id, _describe(err))
            raise MembershipUnavailable(messages.membership_failed(), detail=_describe(err)) from err
        for channel in response.get("channels") or []:
            if channel.get("id"):
                channels.add(channel["id"])
                if channel.get("is_private") or channel.get("is_group") or channel.get("is_mpim"):
                    private.add(channel["id"])
        cursor = ((response.get("response_metadata") or {}).get("next_cursor") or "").strip() or None
        if cursor is None:
            break
    return frozenset(channels), frozenset(private)


def _describe(err: BaseException) -> str:
    if isinstance(err, SlackApiError):
        return f"Slack error {err.response.get('error')!r}"
    return type(err).__name__
