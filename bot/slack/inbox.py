"""The inbox: Events API deliveries written to the database before Slack gets its ack.

Slack does not resend an acknowledged event, so an event must not live only in memory
between the ack and the claim its listener writes. In HTTP mode the edge process
(``bot/slack/edge.py``) writes each verified delivery here, many per commit, before it
answers; when the app's listener has run, the row is deleted. A process that dies in
between leaves the row behind, leased to itself: ``InboxReplay`` (at start-up and with
every sweep, in this or any other ``imgbot serve`` sharing the database) takes rows whose
lease expired or whose writer is gone and dispatches them through the very same Bolt
app, signed afresh with the signing secret. Replays are harmless when the first run got
further than it seemed: the claim makes the reply happen once.

(In Socket Mode there is no inbox: the app runs the listener, and so writes the claim,
before it sends the ack.)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from db import slack_queries
from db.session import Database

log = logging.getLogger("imgbot.slack.inbox")

#: Set by the edge on deliveries it has written to the inbox (and stripped from what Slack sends).
STORED_HEADER = "x-imgbot-inbox"
#: Context key that marks a replayed delivery (the duplicate-delivery middleware lets it through).
REPLAY_CONTEXT_KEY = "imgbot_replay"
MAX_ATTEMPTS = 20


def event_id_of(body: str | bytes) -> str | None:
    """The ``event_id`` of an ``event_callback`` body, or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "event_callback":
        return None
    event_id = data.get("event_id")
    return str(event_id) if event_id else None


class Inbox:
    def __init__(self, database: Database, owner: str) -> None:
        self.database = database
        self.owner = owner

    def save(self, deliveries: Sequence[tuple[str, str]]) -> None:
        """Keep ``(event_id, body)`` pairs in one transaction; raises when the database is unavailable."""
        with self.database.transaction() as session:
            slack_queries.save_deliveries(session, deliveries, owner=self.owner, now=datetime.now(UTC))

    def done(self, event_id: str) -> None:
        """The delivery was handled; never raises (a row left behind is only replayed, harmlessly)."""
        try:
            with self.database.transaction() as session:
                slack_queries.delivery_done(session, event_id)
        except Exception as err:
            log.warning("inbox row event_id=%s not removed: %r", event_id, err)

    def take_due(self) -> list[slack_queries.Delivery]:
        with self.database.transaction() as session:
            return slack_queries.take_deliveries(session, self.owner, datetime.now(UTC))


class InboxReplay:
    """Dispatches what a crash left in the inbox through the app, as if Slack had sent it again."""

    def __init__(self, app: App, inbox: Inbox, signing_secret: str, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.app = app
        self.inbox = inbox
        self.verifier = SignatureVerifier(signing_secret)
        self.max_attempts = max_attempts

    def replay(self) -> int:
        """Replay every delivery that is due; returns how many were handled."""
        handled = 0
        for delivery in self.inbox.take_due():
            if delivery.attempts > self.max_attempts:
                log.error("inbox event_id=%s dropped after %d attempts", delivery.event_id, delivery.attempts)
                self.inbox.done(delivery.event_id)
                continue
            timestamp = str(int(time.time()))
            headers = {
                "content-type": ["application/json"],
                "x-slack-request-timestamp": [timestamp],
                "x-slack-signature": [self.verifier.generate_signature(timestamp=timestamp, body=delivery.body)],
            }
            request = BoltRequest(body=delivery.body, headers=headers,  # type: ignore[arg-type]
                                  context={REPLAY_CONTEXT_KEY: True})
            response = self.app.dispatch(request)
            if response.status < 400:
                self.inbox.done(delivery.event_id)
                handled += 1
                log.info("inbox event_id=%s replayed (attempt %d)", delivery.event_id, delivery.attempts)
            else:
                log.warning("inbox event_id=%s replay answered %s; it stays for the next sweep", delivery.event_id,
                            response.status)
        return handled
