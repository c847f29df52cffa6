"""What happens to one claimed Slack message: download, ingest, reply once, react, annotate, notify.

``SlackJobs`` (``bot/slack/jobs.py``) decides *when* a message is worked on — claims,
leases, retries, sweeps, the queue — and calls ``MessageHandler.process``, which decides
*what* the message gets. ``process`` returns ``retry`` (Slack or the core is unavailable:
delivery tries again later) or what it did (``replied``, ``no-images``…), and raises
``RetryLater`` for the same reason as ``retry`` from deeper down.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config import Settings
from bot.core.annotate import Annotated, annotate, has_findings
from bot.core.records import ImageRecord, SightingRecord
from bot.core.types import IngestResult, Source
from bot.errors import ImgbotError, NotFound
from bot.slack import blocks, messages
from bot.slack.download import Downloader
from bot.slack.work import MessageWork, RetryLater, describe, maybe_image, needs_info, retryable_slack
from bot.wiring import Core
from db import slack_queries
from db.slack_queries import MessageClaim

log = logging.getLogger("imgbot.slack.handling")

EYES, DONE, FLAGGED, FAILED = "eyes", "white_check_mark", "warning", "x"
GONE_FILE_ERRORS = frozenset({"file_not_found", "file_deleted", "access_denied"})
#: Message metadata on each reply, so a later attempt can tell that the reply was posted.
REPLY_EVENT = "imgbot_reply"


@dataclass
class _FileResult:
    outcome: ImageOutcome | None  # None: not an image, nothing to say
    retry: bool = False
    annotated: Annotated | None = None


ImageOutcome = blocks.ImageOutcome


@dataclass
class _Cached:
    value: str | None
    expires: float


@dataclass
class MessageHandler:
    core: Core
    client: WebClient
    settings: Settings
    downloader: Downloader
    give_up_after: float = 24 * 3600.0
    pending_wait: float = 120.0
    cache_ttl: float = 3600.0
    _names: dict[str, _Cached] = field(default_factory=dict, init=False, repr=False)

    # -- processing one message -------------------------------------------------------------

    def process(self, claim: MessageClaim, work: MessageWork) -> str:
        with self.core.database.transaction() as session:
            current = slack_queries.get_message(session, claim.channel_id, claim.message_ts)
        if current is None or current.status != slack_queries.RECEIVED:
            return "already-replied"  # a sweep or a retry raced with the run that finished it
        mode = self.core.channel_mode(work.channel_id)  # read now: a change applies to waiting messages too
        if mode == "off":
            self._finish(claim, None)
            return "off"
        quiet = mode == "quiet"  # reactions only; a reply only for a flagged or failed image
        # on-demand: claimed only because someone asked, and then it gets what full gives
        giving_up = (datetime.now(UTC) - _aware(claim.created_at)).total_seconds() > self.give_up_after
        if not quiet:
            self._react(work, EYES, add=True)
        permalink = self._permalink(work)
        channel_name = self._channel_name(work.channel_id)
        results = [self._handle_file(work, file, permalink, channel_name, with_copy=not quiet)
                   for file in work.files]
        if any(r.retry for r in results) and not giving_up:
            return "retry"
        outcomes = [r.outcome for r in results if r.outcome is not None]
        if not outcomes:
            self._finish(claim, None)
            if not quiet:
                self._react(work, EYES, add=False)
            return "no-images"
        threshold = self.settings.moderation_min_confidence
        flagged = [o for o in outcomes if o.flagged(threshold)]
        exposed = [o for o in outcomes if o.record is not None and blocks.hidden_kinds(o.record)]
        if quiet and not flagged and not exposed and not any(o.failed for o in outcomes):
            self._finish(claim, None)
            self._react(work, DONE, add=True)
            return "quiet"

        moderation_channel = self.settings.moderation_channel
        text, reply_blocks = blocks.image_reply(
            outcomes, label_min_confidence=self.settings.label_min_confidence,
            moderation_min_confidence=self.settings.moderation_min_confidence,
            moderation_channel=bool(moderation_channel),
        )
        reply_ts = self._reply_once(claim, work, text, reply_blocks, giving_up)
        self._finish(claim, reply_ts)

        annotated = [(r.outcome, r.annotated) for r in results if r.outcome is not None and r.annotated is not None]
        if annotated:
            self._upload_annotated(work, annotated)
        if moderation_channel:
            for outcome in flagged:
                self._notify_moderators(work, outcome, permalink)
        if self.settings.security_channel:
            for outcome in exposed:
                self._notify_security(work, outcome, permalink)
        if not quiet:
            self._react(work, EYES, add=False)
        final = FLAGGED if flagged or exposed else FAILED if any(o.failed for o in outcomes) else DONE
        self._react(work, final, add=True)
        return "replied" if reply_ts else "reply-failed"

    def _finish(self, claim: MessageClaim, reply_ts: str | None) -> None:
        with self.core.database.transaction() as session:
            slack_queries.mark_replied(session, claim.id, reply_ts, datetime.now(UTC))

    def _handle_file(self, work: MessageWork, file: dict[str, Any], permalink: str | None,
                     channel_name: str | None, *, with_copy: bool = True) -> _FileResult:
        file_id = str(file["id"])
        name = str(file.get("name") or file.get("title") or file_id)
        if needs_info(file):
            try:
                file = self.client.files_info(file=file_id)["file"]
                name = str(file.get("name") or file.get("title") or file_id)
            except SlackApiError as err:
                if err.response.get("error") in GONE_FILE_ERRORS:
                    return _FileResult(ImageOutcome(name, file_id, error=messages.file_unavailable()))
                if retryable_slack(err):
                    return _FileResult(ImageOutcome(name, file_id, error=messages.download_failed()), retry=True)
                log.warning("files.info %s failed: %s", file_id, describe(err))
                return _FileResult(ImageOutcome(name, file_id, error=messages.file_refused()))
            except (SlackClientError, OSError) as err:
                log.warning("files.info %s failed: %s", file_id, describe(err))
                return _FileResult(ImageOutcome(name, file_id, error=messages.download_failed()), retry=True)
        if not maybe_image(file) or needs_info(file):
            return _FileResult(None)  # not an image: nothing to say about it

        url = str(file.get("url_private_download") or file.get("url_private"))
        assert self.downloader is not None
        source = Source.slack(
            team_id=work.team_id, channel_id=work.channel_id, user_id=work.user_id or file.get("user"),
            file_id=file_id, message_ts=work.message_ts, name=name, thread_ts=work.thread_ts,
            permalink=permalink or file.get("permalink"), channel_name=channel_name,
        )
        with self.core.flow.admit(_int(file.get("size"))):  # before the download: its bytes count from the start
            try:
                data = self.downloader.fetch(url, name=name)
            except ImgbotError as err:
                log.warning("file %s in %s not downloaded: %s", file_id, work.channel_id, err.detail)
                return _FileResult(ImageOutcome(name, file_id, error=err.user_message), retry=err.retryable)
            result = self.core.ingest(data, source)
        record = self._record_for(result)
        if record is None or (record.status == "failed" and result.retryable):
            error = (record.failure_reason if record else None) or messages.analysis_failed_generic()
            return _FileResult(ImageOutcome(name, file_id, result=result, record=record, error=error), retry=True)
        outcome = ImageOutcome(name, file_id, result=result, record=record,
                               duplicate_of=self._earlier_duplicate(work, record))
        annotated = None
        if with_copy and self.settings.annotate and record.status == "done" and has_findings(
                record, self.settings.label_min_confidence):
            try:
                annotated = annotate(data, record, min_confidence=self.settings.label_min_confidence)
            except Exception as err:  # drawing is a nicety: never lose the reply over it
                log.warning("image=%s could not be annotated: %r", record.id, err)
        return _FileResult(outcome, annotated=annotated)

    def _earlier_duplicate(self, work: MessageWork, record: ImageRecord) -> SightingRecord | None:
        """The first earlier post of this picture or a near-duplicate, in this channel or a public one (never a
        private one)."""
        if record.status != "done" or record.phash is None:
            return None
        try:
            earlier = self.core.earlier_posts(record.id)
        except Exception as err:  # a nicety: the reply goes out without it
            log.warning("image=%s near-duplicates not looked up: %r", record.id, err)
            return None
        for sighting in earlier:
            if sighting.message_ts == work.message_ts and sighting.channel_id == work.channel_id:
                continue
            if sighting.channel_id == work.channel_id or (
                    sighting.channel_id and self._is_public(sighting.channel_id)):
                return sighting
        return None

    def _is_public(self, channel_id: str) -> bool:
        """A public channel (not private, not a DM), from conversations.info; cached like names."""
        key = f"public:{channel_id}"
        now = time.monotonic()
        cached = self._names.get(key)
        if cached is not None and cached.expires > now:
            return cached.value == "yes"
        try:
            info = self.client.conversations_info(channel=channel_id)["channel"]
            public = bool(info.get("is_channel")) and not info.get("is_private") and not info.get("is_im") \
                and not info.get("is_mpim")
        except (SlackApiError, SlackClientError, OSError, KeyError) as err:
            log.info("no channel info for %s: %s", channel_id, describe(err))
            return False  # unknown: treated as private
        self._names[key] = _Cached("yes" if public else "no", now + self.cache_ttl)
        return public

    def _record_for(self, result: IngestResult) -> ImageRecord | None:
        """The stored result; waits while another worker finishes the same bytes."""
        if result.image_id is None:
            return None
        deadline = time.monotonic() + self.pending_wait
        while True:
            try:
                record = self.core.show(result.image_id)
            except NotFound:
                return None
            if record.status != "pending" or time.monotonic() > deadline:
                return record if record.status != "pending" else None
            time.sleep(0.1)

    # -- talking to Slack -------------------------------------------------------------------

    def _reply_once(self, claim: MessageClaim, work: MessageWork, text: str, reply_blocks: list[blocks.Block],
                    giving_up: bool) -> str | None:
        """Post the reply, unless an earlier attempt posted it and died before recording it."""
        with self.core.database.transaction() as session:
            earlier = slack_queries.mark_replying(session, claim.id, datetime.now(UTC))
        if earlier is not None:
            found = self._find_reply(work, earlier)
            if found is not None:
                log.info("slack message channel=%s ts=%s was answered by an earlier attempt (reply %s): "
                         "not posted again", work.channel_id, work.message_ts, found)
                return found
        return self._post_reply(work, text, reply_blocks, giving_up)

    def _find_reply(self, work: MessageWork, since: datetime) -> str | None:
        """The ts of imgbot's reply to this message in its thread, posted since ``since``; None if there is none."""
        cursor: str | None = None
        for _ in range(10):  # a busy thread has more than a page of replies since then
            try:
                response = self.client.conversations_replies(
                    channel=work.channel_id, ts=work.reply_thread, oldest=f"{_aware(since).timestamp() - 60:.6f}",
                    include_all_metadata=True, limit=200, cursor=cursor)
            except SlackApiError as err:
                if retryable_slack(err):
                    raise RetryLater(f"conversations.replies: {describe(err)}") from err
                log.warning("cannot look for an earlier reply in %s/%s (%s); replying", work.channel_id,
                            work.message_ts, describe(err))
                return None
            except (SlackClientError, OSError) as err:
                raise RetryLater(f"conversations.replies: {describe(err)}") from err
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                if metadata.get("event_type") == REPLY_EVENT and (
                        metadata.get("event_payload") or {}).get("message_ts") == work.message_ts:
                    return str(message["ts"])
            cursor = ((response.get("response_metadata") or {}).get("next_cursor") or "").strip() or None
            if not response.get("has_more") or cursor is None:
                break
        return None

    def _post_reply(self, work: MessageWork, text: str, reply_blocks: list[blocks.Block],
                    giving_up: bool) -> str | None:
        metadata = {"event_type": REPLY_EVENT,
                    "event_payload": {"channel": work.channel_id, "message_ts": work.message_ts}}
        try:
            response = self.client.chat_postMessage(channel=work.channel_id, thread_ts=work.reply_thread, text=text,
                                                    blocks=reply_blocks, unfurl_links=False, unfurl_media=False,
                                                    metadata=metadata)
            return str(response["ts"])
        except SlackApiError as err:
            if retryable_slack(err) and not giving_up:
                raise RetryLater(f"chat.postMessage: {describe(err)}") from err
            if err.response.get("error") in {"invalid_blocks", "invalid_blocks_format", "msg_too_long"}:
                log.error("reply blocks rejected (%s); posting text only", describe(err))
                try:
                    response = self.client.chat_postMessage(channel=work.channel_id, thread_ts=work.reply_thread,
                                                            text=text, unfurl_links=False, unfurl_media=False,
                                                            metadata=metadata)
                    return str(response["ts"])
                except SlackApiError as again:
                    err = again
            log.error("reply to channel=%s ts=%s not posted: %s", work.channel_id, work.message_ts, describe(err))
            return None
        except (SlackClientError, OSError) as err:
            if giving_up:
                log.error("reply to channel=%s ts=%s not posted: %s", work.channel_id, work.message_ts,
                          describe(err))
                return None
            raise RetryLater(f"chat.postMessage: {describe(err)}") from err

    def _react(self, work: MessageWork, name: str, *, add: bool) -> None:
        call = self.client.reactions_add if add else self.client.reactions_remove
        try:
            call(channel=work.channel_id, timestamp=work.message_ts, name=name)
        except SlackApiError as err:
            if err.response.get("error") not in {"already_reacted", "no_reaction"}:
                log.info("reaction %s on %s/%s: %s", name, work.channel_id, work.message_ts, describe(err))
        except (SlackClientError, OSError) as err:
            log.info("reaction %s on %s/%s: %s", name, work.channel_id, work.message_ts, describe(err))

    def _permalink(self, work: MessageWork) -> str | None:
        try:
            return str(self.client.chat_getPermalink(channel=work.channel_id, message_ts=work.message_ts)["permalink"])
        except (SlackApiError, SlackClientError, OSError, KeyError) as err:
            log.info("no permalink for %s/%s: %s", work.channel_id, work.message_ts, describe(err))
            return None

    def _channel_name(self, channel_id: str) -> str | None:
        now = time.monotonic()
        cached = self._names.get(channel_id)
        if cached is not None and cached.expires > now:
            return cached.value
        try:
            found = self.client.conversations_info(channel=channel_id)["channel"].get("name")
            name = str(found) if found else None
        except (SlackApiError, SlackClientError, OSError, KeyError) as err:
            log.info("no channel name for %s: %s", channel_id, describe(err))
            name = None
        self._names[channel_id] = _Cached(name, now + (self.cache_ttl if name else 60.0))
        return name

    def _upload_annotated(self, work: MessageWork, items: list[tuple[ImageOutcome, Annotated]]) -> None:
        uploads = []
        for outcome, image in items:
            stem = outcome.name.rsplit(".", 1)[0] if "." in outcome.name else outcome.name
            top = outcome.record.top_labels(self.settings.label_min_confidence, 5) if outcome.record else ()
            labels = ", ".join(label.name for label in top)
            uploads.append({
                "file": image.data, "filename": f"{stem}-annotated.{image.extension}",
                "title": f"{outcome.name}, annotated", "alt_txt": (labels or "annotated image")[:1000],
            })
        try:
            self.client.files_upload_v2(file_uploads=uploads, channel=work.channel_id, thread_ts=work.reply_thread)
        except (SlackApiError, SlackClientError, OSError) as err:
            log.warning("annotated copies for %s/%s not uploaded: %s", work.channel_id, work.message_ts,
                        describe(err))

    def _notify_moderators(self, work: MessageWork, outcome: ImageOutcome, permalink: str | None) -> None:
        assert outcome.record is not None and self.settings.moderation_channel
        text, notice = blocks.moderation_notice(
            outcome.record, channel_id=work.channel_id, permalink=permalink, file_name=outcome.name,
            moderation_min_confidence=self.settings.moderation_min_confidence,
        )
        try:
            self.client.chat_postMessage(channel=self.settings.moderation_channel, text=text, blocks=notice,
                                         unfurl_links=False, unfurl_media=False)
        except (SlackApiError, SlackClientError, OSError) as err:
            log.error("moderation notice for image=%s not posted: %s", outcome.record.id, describe(err))


    def _notify_security(self, work: MessageWork, outcome: ImageOutcome, permalink: str | None) -> None:
        assert outcome.record is not None and self.settings.security_channel
        text, notice = blocks.security_notice(outcome.record, channel_id=work.channel_id, user_id=work.user_id,
                                              permalink=permalink)
        try:
            self.client.chat_postMessage(channel=self.settings.security_channel, text=text, blocks=notice,
                                         unfurl_links=False, unfurl_media=False)
        except (SlackApiError, SlackClientError, OSError) as err:
            log.error("security notice for image=%s not posted: %s", outcome.record.id, describe(err))


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _int(value: object) -> int:
    """A Slack number that may be missing or a string (``size``)."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return 0
    return max(0, number)
