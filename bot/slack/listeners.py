"""Events, commands and button clicks → core calls. Nothing else lives here.

Every listener acknowledges first (events are acknowledged by Bolt before the listener
runs; commands and actions call ``ack()`` at once) and hands slow work to a lazy listener
or to ``SlackJobs``; the HTTP request never waits for S3, Rekognition or the database.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.redaction import shown_report
from bot.core.search import QUERY_HELP
from bot.errors import ImgbotError
from bot.slack import blocks, home, messages, modes
from bot.slack.jobs import SlackJobs
from bot.slack.memberships import MembershipCache
from bot.wiring import Core

log = logging.getLogger("imgbot.slack.listeners")

SEARCH_COMMAND = "/imgsearch"
REPORT_COMMAND = "/imgreport"
ANALYZE_SHORTCUT = "imgbot_analyze"  # the message shortcut "Analyse images"
PER_PAGE = 10
_FORMAT_WORDS = {"csv": "csv", "md": "md", "markdown": "md", "json": "json"}
_CANNOT_POST_HERE = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}


def register(app: App, core: Core, jobs: SlackJobs, memberships: MembershipCache) -> None:
    settings = core.settings
    modes.register(app, core)  # /imgbot

    # -- events -----------------------------------------------------------------------------

    @app.event({"type": "message", "subtype": "file_share"})
    def on_file_share(event: dict[str, Any], body: dict[str, Any]) -> None:
        jobs.accept_message(event, body.get("team_id"))

    @app.event({"type": "message", "subtype": "message_deleted"})
    def on_message_deleted(event: dict[str, Any]) -> None:
        deleted_ts = event.get("deleted_ts") or (event.get("previous_message") or {}).get("ts")
        if event.get("channel") and deleted_ts:
            jobs.delete_message(str(event["channel"]), str(deleted_ts))

    @app.event({"type": "message", "subtype": "message_changed"})
    def on_message_changed(event: dict[str, Any]) -> None:
        """A deleted message that has replies (every message imgbot answered has one) is not
        ``message_deleted``: Slack turns it into a tombstone, announced as ``message_changed``."""
        message = event.get("message") or {}
        if event.get("channel") and message.get("ts") and message.get("subtype") == "tombstone":
            jobs.delete_message(str(event["channel"]), str(message["ts"]))

    @app.event("message")
    def on_other_message() -> None:
        """Every other message in the channels imgbot is in: acknowledged, nothing to do."""

    @app.event("file_shared")
    def on_file_shared(event: dict[str, Any], body: dict[str, Any]) -> None:
        jobs.accept_file_shared(event, body.get("team_id"))

    # -- asking for an analysis (any mode but off; the claim makes each message answer once) -------

    @app.event("reaction_added")
    def on_reaction_added(event: dict[str, Any], body: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if (event.get("reaction") == settings.trigger_reaction and item.get("type") == "message"
                and item.get("channel") and item.get("ts") and event.get("user")):
            jobs.accept_request(str(item["channel"]), str(item["ts"]), str(event["user"]), body.get("team_id"))

    @app.event("app_mention")
    def on_app_mention(event: dict[str, Any], body: dict[str, Any]) -> None:
        """@imgbot in an image's thread asks about the thread's first message; elsewhere, about its own."""
        if not event.get("channel") or not event.get("user"):
            return
        target = str(event.get("thread_ts") or event["ts"])
        own = event if target == event.get("ts") else None
        jobs.accept_request(str(event["channel"]), target, str(event["user"]), body.get("team_id"), message=own)

    def ack_shortcut(ack: Ack) -> None:
        ack()

    def run_shortcut(body: dict[str, Any], respond: Respond) -> None:
        message = body.get("message") or {}
        channel_id = (body.get("channel") or {}).get("id")
        user_id = (body.get("user") or {}).get("id")
        ts = message.get("ts") or body.get("message_ts")
        if not channel_id or not user_id or not ts:
            return

        def answer(text: str) -> None:
            respond(response_type="ephemeral", replace_original=False, text=text)

        jobs.accept_request(str(channel_id), str(ts), str(user_id), (body.get("team") or {}).get("id"),
                            message=message, answer=answer)

    app.message_shortcut(ANALYZE_SHORTCUT)(ack=ack_shortcut, lazy=[run_shortcut])

    @app.event("app_home_opened")
    def on_app_home_opened(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home" and event.get("user"):
            jobs.run_light(home.publish_home, core, client, memberships, str(event["user"]), body.get("team_id"),
                           jobs.bot_user_id)

    @app.event("file_deleted")
    def on_file_deleted(event: dict[str, Any]) -> None:
        file_id = event.get("file_id") or (event.get("file") or {}).get("id")
        if file_id:
            jobs.delete_file(str(file_id))

    @app.event(re.compile(".*"))
    def on_any_other_event() -> None:
        """Events imgbot does not use are acknowledged (a 404 would make Slack retry them)."""

    # -- /imgsearch -------------------------------------------------------------------------

    def ack_search(ack: Ack, command: dict[str, Any]) -> None:
        if _is_help(command.get("text", "")):
            text, help_blocks = search_help_message()
            ack(response_type="ephemeral", text=text, blocks=help_blocks)
        else:
            ack()

    def run_search(command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        if _is_help(command.get("text", "")):
            return
        text, result_blocks = _search(core, memberships, client, command["user_id"], command.get("team_id"),
                                      command.get("text", "").strip(), page=1)
        respond_with_fallbacks(respond, text, result_blocks)

    app.command(SEARCH_COMMAND)(ack=ack_search, lazy=[run_search])

    def ack_more(ack: Ack) -> None:
        ack()

    def run_more(body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient) -> None:
        query, page = blocks.parse_more_button_value(action.get("value") or "{}")
        user = body.get("user") or {}
        text, result_blocks = _search(core, memberships, client, user["id"], user.get("team_id"), query, page=page)
        respond_with_fallbacks(respond, text, result_blocks, replace_original=True)

    app.action(blocks.ACTION_MORE)(ack=ack_more, lazy=[run_more])

    # -- /imgreport -------------------------------------------------------------------------

    def ack_report(ack: Ack, command: dict[str, Any]) -> None:
        if _is_help(command.get("text", "")):
            ack(response_type="ephemeral", text=report_help_text())
        else:
            ack()

    def run_report(command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        if _is_help(command.get("text", "")):
            return
        _report(core, memberships, client, respond, command)

    app.command(REPORT_COMMAND)(ack=ack_report, lazy=[run_report])

    # -- moderation buttons -----------------------------------------------------------------

    def ack_decision(ack: Ack) -> None:
        ack()

    def run_decision(body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond) -> None:
        decision = "confirmed" if action.get("action_id") == blocks.ACTION_CONFIRM else "dismissed"
        channel_id = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        user_id = (body.get("user") or {}).get("id")
        if not user_id or (settings.moderation_channel and channel_id != settings.moderation_channel):
            log.warning("moderation click outside the moderation channel (%s) ignored", channel_id)
            return
        try:
            image_id = int(action.get("value") or "")
        except ValueError:
            return
        try:
            core.record_moderation_decision(image_id, decision, user_id)
        except Exception:
            log.exception("moderation decision for image=%s not recorded", image_id)
            respond(response_type="ephemeral", replace_original=False, text=messages.unexpected_error())
            return
        log.info("moderation image=%s decision=%s by=%s", image_id, decision, user_id)
        message = body.get("message") or {}
        decided = blocks.moderation_decided(message.get("blocks") or [], decision=decision, user_id=user_id,
                                            decided_at=datetime.now(UTC))
        message_ts = message.get("ts") or (body.get("container") or {}).get("message_ts")
        if not channel_id or not message_ts:
            return
        try:
            client.chat_update(channel=str(channel_id), ts=str(message_ts), blocks=decided,
                               text=f"{message.get('text', '')} {messages.moderation_decision(decision, user_id)}")
        except (SlackApiError, SlackClientError, OSError) as err:
            log.warning("moderation notice not updated: %s", err)

    app.action(blocks.ACTION_CONFIRM)(ack=ack_decision, lazy=[run_decision])
    app.action(blocks.ACTION_DISMISS)(ack=ack_decision, lazy=[run_decision])


# -- helpers (the translation itself) -----------------------------------------------------------


def respond_with_fallbacks(respond: Respond, text: str, answer: list[blocks.Block], **options: Any) -> None:
    """Answer through ``response_url``; if Slack refuses the blocks (a thumbnail of a file the
    requester can no longer see makes the whole message ``invalid_blocks``), without the
    thumbnails, then as text, so the requester never goes without an answer."""
    without_thumbnails = [b for b in answer if b.get("type") != "image"]
    attempts: list[list[blocks.Block] | None] = [answer]
    if len(without_thumbnails) < len(answer):
        attempts.append(without_thumbnails)
    attempts.append(None)  # text only
    for message_blocks in attempts:
        try:
            response = respond(response_type="ephemeral", text=text, blocks=message_blocks, **options)
        except (SlackClientError, OSError) as err:
            log.warning("response_url not reached: %s", err)
            return
        status = getattr(response, "status_code", 200)
        if status == 200:
            return
        log.warning("response_url refused the answer (HTTP %s %s)%s", status,
                    str(getattr(response, "body", ""))[:200], "; trying a simpler one" if message_blocks else "")


def _is_help(text: str) -> bool:
    return text.strip().lower() in {"help", "-h", "--help", "?"}


def search_help_message() -> tuple[str, list[blocks.Block]]:
    body = "*Search the pictures posted in channels you are in*\n```\n" + blocks.escape(QUERY_HELP.strip()) + "\n```"
    return ("How to use /imgsearch: words match labels and text; label:, text:, in:, from:, after:, before: narrow "
            "it down. Example: /imgsearch label:dog last 7d",
            [blocks.section(body),
             blocks.context("Only pictures from channels you are a member of are shown. "
                            "`/imgreport` takes the same query and summarises it.")])


def report_help_text() -> str:
    return ("/imgreport [QUERY]: a summary here and the full report as a file. Takes the /imgsearch query language, "
            "e.g. `/imgreport last 7d`, `/imgreport this month in:#marketing`; add `csv` for a CSV file.")


def _search(core: Core, memberships: MembershipCache, client: WebClient, user_id: str, team_id: str | None,
            query: str, *, page: int) -> tuple[str, list[blocks.Block]]:
    try:
        channels = memberships.channels_for(client, user_id, team_id)
        result = core.search(query, channels=channels, page=page, per_page=PER_PAGE)
    except ImgbotError as err:
        return blocks.plain(err.user_message)
    except Exception:
        log.exception("search failed for user=%s", user_id)
        return blocks.plain(messages.unexpected_error())
    return blocks.search_page(result, label_min_confidence=core.settings.label_min_confidence,
                              moderation_min_confidence=core.settings.moderation_min_confidence)


def split_report_text(text: str) -> tuple[str, str]:
    """``/imgreport csv last 7d`` → (``last 7d``, ``csv``): a format word anywhere picks the file format."""
    fmt = "md"
    kept: list[str] = []
    for word in re.split(r"(\s+)", text.strip()):
        if word.strip().lower() in _FORMAT_WORDS:
            fmt = _FORMAT_WORDS[word.strip().lower()]
        else:
            kept.append(word)
    return re.sub(r"\s+", " ", "".join(kept)).strip(), fmt


def _report(core: Core, memberships: MembershipCache, client: WebClient, respond: Respond,
            command: dict[str, Any]) -> None:
    query, fmt = split_report_text(command.get("text", ""))
    user_id, channel_id = command["user_id"], command["channel_id"]
    try:
        # Posted for the whole channel to read: never another private channel's images.
        channels = memberships.shareable_channels_for(client, user_id, channel_id, command.get("team_id"))
        data = core.report(query, channels=channels, title="imgbot report", full_records=fmt == "json")
        content = core.render_report(shown_report(data), fmt)  # personal data masked, as in replies
    except ImgbotError as err:
        respond(response_type="ephemeral", text=err.user_message)
        return
    except Exception:
        log.exception("report failed for user=%s", user_id)
        respond(response_type="ephemeral", text=messages.unexpected_error())
        return
    text, summary = blocks.report_summary(data, requested_by=user_id)
    stamp = data.generated_at.strftime("%Y-%m-%d")
    filename = f"imgbot-report-{stamp}.{fmt}"
    try:
        posted = client.chat_postMessage(channel=channel_id, text=text, blocks=summary, unfurl_links=False,
                                         unfurl_media=False)
        client.files_upload_v2(channel=channel_id, thread_ts=posted["ts"], content=content.encode("utf-8"),
                               filename=filename, title=f"{data.title} ({query or 'everything'})")
    except SlackApiError as err:
        error = err.response.get("error")
        log.info("report not posted in %s: %s", channel_id, error)
        note = messages.report_not_in_channel() if error in _CANNOT_POST_HERE else messages.report_upload_failed()
        respond(response_type="ephemeral", text=f"{text}\n{note}", blocks=[*summary, blocks.context(note)])
    except (SlackClientError, OSError) as err:
        log.warning("report not posted in %s: %s", channel_id, err)
        respond(response_type="ephemeral", text=f"{text}\n{messages.report_upload_failed()}")
