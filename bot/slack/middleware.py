"""Cross-cutting rules, each one middleware (bolt's ``Middleware``: let the request on, or answer it).

* ``IgnoreBotMessages``: messages and file shares by any bot, including imgbot itself
  (its own annotated uploads come back as ``file_share`` messages and ``file_shared`` events).
* ``DropDuplicateDeliveries``: Slack delivers at least once and retries; a delivery whose
  ``event_id`` was seen recently is acknowledged and dropped. This is the cheap first line;
  the claim in ``slack_messages`` is what makes the reply exactly-once across restarts.
  A retry whose first delivery never arrived has an unseen ``event_id`` and goes through,
  and so does a replay from the inbox (``bot/slack/inbox.py``), which marks its request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

log = logging.getLogger("imgbot.slack.middleware")

DUPLICATE_HEADER = "x-imgbot-duplicate"

# Message subtypes that describe someone else's message rather than a new one: never skipped.
_HOUSEKEEPING_SUBTYPES = frozenset({"message_deleted", "message_changed"})


def _event(req: BoltRequest) -> dict[str, Any] | None:
    body = req.body
    if not isinstance(body, dict) or body.get("type") != "event_callback":
        return None
    event = body.get("event")
    return event if isinstance(event, dict) else None


def is_from_bot(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """A message or file share posted by a bot (any bot), or by imgbot's own bot user."""
    kind = event.get("type")
    if kind == "message":
        if event.get("subtype") in _HOUSEKEEPING_SUBTYPES:
            return False
        if event.get("bot_id") or event.get("subtype") == "bot_message" or event.get("bot_profile"):
            return True
        return bool(bot_user_id) and event.get("user") == bot_user_id
    if kind == "file_shared":
        return bool(bot_user_id) and (event.get("user_id") == bot_user_id)
    return False


class IgnoreBotMessages(Middleware):
    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        event = _event(req)
        if event is not None:
            auth = req.context.authorize_result
            bot_user_id = req.context.bot_user_id or (auth.bot_user_id if auth else None)
            if is_from_bot(event, bot_user_id):
                log.debug("skipped %s from a bot", event.get("type"))
                return BoltResponse(status=200, body="")
        return next()


class RecentIds:
    """A bounded, thread-safe set of recently seen ids that forgets after ``ttl`` seconds."""

    def __init__(self, ttl_seconds: float = 900.0, max_entries: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> bool:
        """Remember ``key``; False if it was already remembered (a duplicate)."""
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest_key, expires = next(iter(self._seen.items()))
                if expires > now and len(self._seen) < self.max_entries:
                    break
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now + self.ttl
            return True


class DropDuplicateDeliveries(Middleware):
    def __init__(self, seen: RecentIds | None = None) -> None:
        self.seen = seen or RecentIds()

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
        body = req.body
        if req.context.get("imgbot_replay"):  # the inbox replays what was acknowledged but not handled
            return next()
        if isinstance(body, dict) and body.get("type") == "event_callback" and body.get("event_id"):
            if not self.seen.add(str(body["event_id"])):
                retry = (req.headers.get("x-slack-retry-num") or [""])[0]
                log.info("dropped duplicate delivery event_id=%s retry=%s", body["event_id"], retry or "-")
                # Marked, so the inbox row of the first delivery (same event id) stays until that one is handled.
                return BoltResponse(status=200, body="", headers={DUPLICATE_HEADER: "1"})
        return next()
