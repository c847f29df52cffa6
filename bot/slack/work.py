"""What delivery and handling share: one Slack message with files, and how Slack errors read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from db.slack_queries import MessageClaim

RETRYABLE_SLACK_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
})


@dataclass(frozen=True)
class MessageWork:
    """One Slack message with files, as much as the event told us."""

    team_id: str | None
    channel_id: str
    message_ts: str
    thread_ts: str | None
    user_id: str | None
    files: tuple[dict[str, Any], ...]

    @property
    def reply_thread(self) -> str:
        return self.thread_ts or self.message_ts

    @classmethod
    def from_event(cls, event: dict[str, Any], team_id: str | None) -> MessageWork:
        return cls(team_id=team_id, channel_id=str(event["channel"]), message_ts=str(event["ts"]),
                   thread_ts=event.get("thread_ts"), user_id=event.get("user"),
                   files=tuple(f for f in event.get("files") or () if isinstance(f, dict) and f.get("id")))

    @classmethod
    def from_claim(cls, claim: MessageClaim) -> MessageWork:
        return cls(team_id=claim.team_id, channel_id=claim.channel_id, message_ts=claim.message_ts,
                   thread_ts=claim.thread_ts, user_id=claim.user_id,
                   files=tuple({"id": file_id, "file_access": "check_file_info"} for file_id in claim.file_ids))


def maybe_image(file: dict[str, Any]) -> bool:
    """Worth a look: an image by its mimetype, or a stub whose details need ``files.info``."""
    if file.get("mode") in {"tombstone", "hidden_by_limit"}:
        return False  # deleted, or beyond the free plan's history
    if file.get("file_access") == "access_denied":  # another organisation's (Slack Connect): the reply says so
        return str(file.get("mimetype", "")).lower().startswith("image/")
    if file.get("file_access") == "check_file_info" or not file.get("mimetype"):
        return True
    return str(file.get("mimetype", "")).lower().startswith("image/")


def needs_info(file: dict[str, Any]) -> bool:
    return (file.get("file_access") == "check_file_info" or not file.get("mimetype")
            or not (file.get("url_private_download") or file.get("url_private")))


class RetryLater(Exception):
    """Slack or the core is unavailable for now; the message stays ``received`` and is tried again."""


def retryable_slack(err: SlackApiError) -> bool:
    status = getattr(err.response, "status_code", 200) or 200
    return err.response.get("error") in RETRYABLE_SLACK_ERRORS or status >= 500 or status == 429


def describe(err: BaseException) -> str:
    if isinstance(err, SlackApiError):
        return f"Slack error {err.response.get('error')!r}"
    return f"{type(err).__name__}: {err}"
