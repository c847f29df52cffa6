"""``/imgbot``: each channel's mode, set by its members, and help. Listeners only: the mode is the core's.

    /imgbot [help]            the channel's mode, what each mode does, the other commands (private)
    /imgbot mode quiet        set this channel's mode (full, quiet, on-demand, off); members only; announced

The command is acknowledged at once; help and malformed commands are answered in the
acknowledgement, everything that needs Slack or the database in a lazy listener.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config import CHANNEL_MODES
from bot.slack import messages
from bot.slack.memberships import fetch_member_channels
from bot.wiring import Core

log = logging.getLogger("imgbot.slack.modes")

IMGBOT_COMMAND = "/imgbot"


def parse(text: str) -> tuple[str, str | None]:
    """``("help", None)``, ``("mode", mode)`` or ``("error", message)`` for the command's text."""
    words = text.strip().split()
    if not words or words[0].lower() in {"help", "-h", "--help", "?"}:
        return "help", None
    if words[0].lower() == "mode":
        if len(words) != 2 or words[1].lower() not in CHANNEL_MODES:
            return "error", messages.unknown_mode(" ".join(words[1:]) or "(nothing)")
        return "mode", words[1].lower()
    return "error", messages.unknown_imgbot_command(text.strip())


def register(app: App, core: Core) -> None:
    def ack_imgbot(ack: Ack, command: dict[str, Any]) -> None:
        kind, detail = parse(command.get("text", ""))
        if kind == "error":
            ack(response_type="ephemeral", text=detail or "")
        elif kind == "mode" and str(command.get("channel_id", "")).startswith("D"):
            ack(response_type="ephemeral", text=messages.mode_needs_channel())
        else:
            ack()

    def run_imgbot(command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        kind, mode = parse(command.get("text", ""))
        channel_id, user_id = str(command.get("channel_id", "")), str(command.get("user_id", ""))
        if kind == "help":
            respond(response_type="ephemeral", text=messages.mode_help(core.channel_mode(channel_id), channel_id))
            return
        if kind != "mode" or mode is None or channel_id.startswith("D"):
            return  # answered in the acknowledgement
        # Asked of Slack now, not from a cache: who may change a channel's behaviour must be current.
        if channel_id not in fetch_member_channels(client, user_id, command.get("team_id")):
            log.info("mode change in %s by non-member %s refused", channel_id, user_id)
            respond(response_type="ephemeral", text=messages.mode_needs_membership())
            return
        if core.channel_mode(channel_id) == mode:
            respond(response_type="ephemeral", text=messages.mode_unchanged(mode))
            return
        core.set_channel_mode(channel_id, mode, user_id)
        log.info("channel %s set to mode=%s by %s", channel_id, mode, user_id)
        try:
            client.chat_postMessage(channel=channel_id, text=messages.mode_set(user_id, mode))
        except (SlackApiError, SlackClientError, OSError) as err:
            log.warning("mode change in %s not announced: %s", channel_id, err)
            respond(response_type="ephemeral", text=messages.mode_set_not_announced())

    app.command(IMGBOT_COMMAND)(ack=ack_imgbot, lazy=[run_imgbot])
