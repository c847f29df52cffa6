"""Building and sending what Slack sends: signed Events API envelopes, slash commands, block actions.

Payload shapes follow Slack's documentation (api.slack.com / docs.slack.dev): the
``event_callback`` envelope, ``message`` events with ``subtype: file_share`` and a
``files`` array, ``file_shared``, ``file_deleted``, ``message_deleted`` (with
``deleted_ts`` and ``previous_message``), the slash command form body, and the
``block_actions`` payload posted as ``payload=<json>``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "test-signing-secret"
API_APP_ID = "A0APP00001"
_event_ids = itertools.count(1)


def signature(body: str, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret."""
    basestring = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()


def signed_headers(body: str, content_type: str, *, secret: str = SIGNING_SECRET,
                   timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(body, ts, secret),
    }


def post(port: int, body: str, headers: dict[str, str], path: str = "/slack/events",
         host: str = "127.0.0.1", connection: http.client.HTTPConnection | None = None) -> tuple[int, str]:
    own = connection is None
    conn = connection or http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("POST", path, body=body.encode(), headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        if own:
            conn.close()


def get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def send_event(port: int, envelope: dict[str, Any], *, retry_num: int | None = None, secret: str = SIGNING_SECRET,
               timestamp: int | None = None, connection: http.client.HTTPConnection | None = None
               ) -> tuple[int, str]:
    body = json.dumps(envelope)
    headers = signed_headers(body, "application/json", secret=secret, timestamp=timestamp)
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return post(port, body, headers, connection=connection)


def send_form(port: int, fields: dict[str, str], *, secret: str = SIGNING_SECRET,
              timestamp: int | None = None) -> tuple[int, str]:
    body = urlencode(fields)
    return post(port, body, signed_headers(body, "application/x-www-form-urlencoded", secret=secret,
                                           timestamp=timestamp))


# -- payloads -----------------------------------------------------------------------------------


def envelope(event: dict[str, Any], *, team_id: str, bot_user_id: str, event_id: str | None = None
             ) -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": API_APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):010d}",
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-eyJldCI6Im1lc3NhZ2UifQ",
    }


def file_share_message(files: list[dict[str, Any]], *, channel: str, ts: str, user: str = "U0ALICE001",
                       text: str = "", thread_ts: str | None = None, stub: bool = False,
                       channel_type: str = "channel") -> dict[str, Any]:
    """A ``message`` event with ``subtype: file_share``; ``stub`` sends files as ``check_file_info`` stubs."""
    if stub:
        files = [{"id": f["id"], "mode": "file_access", "file_access": "check_file_info", "created": 0,
                  "timestamp": 0, "user": ""} for f in files]
    event: dict[str, Any] = {
        "type": "message", "subtype": "file_share", "text": text, "files": files, "upload": False,
        "user": user, "display_as_bot": False, "ts": ts, "channel": channel, "event_ts": ts,
        "channel_type": channel_type, "client_msg_id": f"00000000-0000-4000-8000-{ts.replace('.', '')[:12]:0>12}",
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = user
    return event


def file_shared(file_id: str, *, channel: str, user: str = "U0ALICE001") -> dict[str, Any]:
    return {"type": "file_shared", "channel_id": channel, "file_id": file_id, "user_id": user,
            "file": {"id": file_id}, "event_ts": f"{time.time():.6f}"}


def file_deleted(file_id: str) -> dict[str, Any]:
    return {"type": "file_deleted", "file_id": file_id, "event_ts": f"{time.time():.6f}"}


def message_deleted(*, channel: str, deleted_ts: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    now = f"{time.time():.6f}"
    return {"type": "message", "subtype": "message_deleted", "hidden": True, "channel": channel,
            "ts": now, "event_ts": now, "deleted_ts": deleted_ts, "channel_type": "channel",
            "previous_message": previous or {"type": "message", "ts": deleted_ts, "user": "U0ALICE001",
                                             "text": ""}}


def message_tombstoned(*, channel: str, ts: str, thread_ts: str | None = None) -> dict[str, Any]:
    """What Slack sends when a message that has replies is deleted: the message becomes a tombstone."""
    now = f"{time.time():.6f}"
    return {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel, "ts": now,
            "event_ts": now, "channel_type": "channel",
            "message": {"type": "message", "subtype": "tombstone", "text": "This message was deleted.",
                        "user": "USLACKBOT", "hidden": True, "ts": ts, "thread_ts": thread_ts or ts,
                        "reply_count": 1, "reply_users_count": 1},
            "previous_message": {"type": "message", "ts": ts, "user": "U0ALICE001", "text": "",
                                 "thread_ts": thread_ts or ts, "reply_count": 1}}


def slash_command(command: str, text: str, *, user_id: str, channel_id: str, team_id: str,
                  response_url: str, channel_name: str = "general") -> dict[str, str]:
    return {
        "token": "legacy-verification-token", "team_id": team_id, "team_domain": "imgbot-test",
        "channel_id": channel_id, "channel_name": channel_name, "user_id": user_id, "user_name": user_id.lower(),
        "command": command, "text": text, "api_app_id": API_APP_ID, "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": f"{int(time.time())}.1.abcdef",
    }


def block_actions(action: dict[str, Any], *, user_id: str, team_id: str, channel_id: str, response_url: str,
                  message: dict[str, Any] | None = None, ephemeral: bool = False) -> dict[str, str]:
    message = message or {"type": "message", "ts": "1700000000.000100", "text": "", "blocks": []}
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "api_app_id": API_APP_ID, "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel_id,
                      "is_ephemeral": ephemeral},
        "trigger_id": f"{int(time.time())}.1.fedcba",
        "team": {"id": team_id, "domain": "imgbot-test"},
        "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "channel"},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{"type": "button", "block_id": action.get("block_id", "b1"), "action_ts": f"{time.time():.6f}",
                     "text": {"type": "plain_text", "text": "Button", "emoji": True}, **action}],
    }
    if not ephemeral:
        payload["message"] = message
    return {"payload": json.dumps(payload)}


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def reaction_added(*, user: str, reaction: str, channel: str, ts: str, item_user: str = "U0ALICE001"
                   ) -> dict[str, Any]:
    return {"type": "reaction_added", "user": user, "reaction": reaction, "item_user": item_user,
            "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": f"{time.time():.6f}"}


def app_mention(*, user: str, channel: str, ts: str, bot_user_id: str, thread_ts: str | None = None
                ) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "app_mention", "user": user, "text": f"<@{bot_user_id}> what is this?",
                             "ts": ts, "channel": channel, "event_ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message_action(callback_id: str, *, message: dict[str, Any], user_id: str, team_id: str, channel_id: str,
                   response_url: str) -> dict[str, str]:
    """The interactivity payload of a message shortcut, as Slack sends it."""
    payload = {
        "type": "message_action", "token": "legacy-verification-token", "action_ts": f"{time.time():.6f}",
        "team": {"id": team_id, "domain": "imgbot-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id, "name": user_id.lower()},
        "channel": {"id": channel_id, "name": "general"}, "is_enterprise_install": False, "enterprise": None,
        "callback_id": callback_id, "trigger_id": f"{int(time.time())}.1.abcdef", "response_url": response_url,
        "message_ts": message["ts"], "message": message, "api_app_id": API_APP_ID,
    }
    return {"payload": json.dumps(payload)}
