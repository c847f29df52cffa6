"""The shipped app manifest asks for exactly what the bot uses, and the README walks through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.slack.listeners import ANALYZE_SHORTCUT, REPORT_COMMAND, SEARCH_COMMAND
from bot.slack.modes import IMGBOT_COMMAND

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load((ROOT / "slack-manifest.yml").read_text())  # type: ignore[no-any-return]


def test_the_manifest_asks_for_exactly_the_scopes_the_bot_uses(manifest: dict) -> None:
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted([
        "channels:history", "groups:history", "channels:read", "groups:read", "files:read", "files:write",
        "chat:write", "reactions:write", "reactions:read", "app_mentions:read", "commands",
    ])
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_the_manifest_subscribes_to_the_events_the_listeners_handle(manifest: dict) -> None:
    assert sorted(manifest["settings"]["event_subscriptions"]["bot_events"]) == sorted([
        "message.channels", "message.groups", "file_shared", "file_deleted", "reaction_added", "app_mention",
        "app_home_opened",
    ])
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_the_manifest_declares_the_three_slash_commands_with_escaping(manifest: dict) -> None:
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {SEARCH_COMMAND, REPORT_COMMAND, IMGBOT_COMMAND}
    assert all(c["should_escape"] is True and c["description"] for c in commands.values())


def test_the_readme_says_how_to_create_install_invite_and_post() -> None:
    readme = (ROOT / "README.md").read_text()
    for step in ("slack-manifest.yml", "Install", "/invite @imgbot", "Post a photo", "SLACK_APP_TOKEN",
                 "SLACK_SIGNING_SECRET", "/slack/events", "/healthz"):
        assert step in readme


def test_the_manifest_declares_the_analyse_images_message_shortcut(manifest: dict) -> None:
    shortcuts = manifest["features"]["shortcuts"]
    assert [(s["type"], s["callback_id"], s["name"]) for s in shortcuts] == [
        ("message", ANALYZE_SHORTCUT, "Analyse images")]
