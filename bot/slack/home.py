"""The App Home tab (``app_home_opened`` → ``views.publish``): one user's view of imgbot.

Counts cover only the channels both the user and imgbot are in, so the tab never tells
anyone about a private channel they are not in; the review line shows to the moderation
channel's members only.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack import blocks
from bot.slack.memberships import MembershipCache, fetch_member_channels
from bot.wiring import Core

log = logging.getLogger("imgbot.slack.home")


def publish_home(core: Core, client: WebClient, memberships: MembershipCache, user_id: str,
                 team_id: str | None, bot_user_id: str | None) -> None:
    mine = memberships.channels_for(client, user_id, team_id)
    if bot_user_id:
        mine = mine & fetch_member_channels(client, bot_user_id, team_id)
    channels = sorted(mine)
    summary = core.home_summary(channels)
    moderation = core.settings.moderation_channel
    rows = [(channel_id, core.channel_mode(channel_id)) for channel_id in channels]
    view = blocks.home_view(summary=summary, channels=rows, show_review=bool(moderation and moderation in mine),
                            moderation_channel=moderation)
    try:
        client.views_publish(user_id=user_id, view=view)
    except (SlackApiError, SlackClientError, OSError) as err:
        log.warning("home tab for user=%s not published: %s", user_id, err)
