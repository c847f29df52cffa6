"""A fake Slack Web API on 127.0.0.1 (port 0), in the spirit of bolt-python's ``tests/mock_web_api_server``.

It answers the methods imgbot calls with the shapes Slack documents, records every call by
method with its parameters and headers, serves files at ``/files/...`` (what
``url_private_download`` points at), takes ``files_upload_v2``'s raw upload at
``/upload/...``, and plays ``response_url`` at ``/response/...``. It can answer
``ratelimited`` (HTTP 429 with ``Retry-After``) or any Slack error for the next N calls
of a method, and can play Socket Mode: ``apps.connections.open`` hands out a WebSocket URL
on the same server, and ``send_socket_envelope`` pushes an envelope to the connected app.

    slack = FakeSlack().start()
    settings = Settings(slack_api_url=slack.api_url, slack_bot_token=slack.bot_token, ...)
    ...
    slack.wait_for("chat.postMessage", 1)
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JSON_PARAMS = {"blocks", "attachments", "files", "metadata"}
SIGN_IN_PAGE = (b"<!DOCTYPE html><html><head><title>Slack</title></head>"
                b"<body>Sign in to your workspace to continue.</body></html>")


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    body: bytes = b""
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass
class StoredFile:
    data: bytes
    content_type: str
    html: bool = False  # answer Slack's sign-in page instead (a missing files:read scope)
    redirect_to: str | None = None


class FakeSlack:
    def __init__(self, *, bot_token: str = "xoxb-test-token", app_token: str = "xapp-1-test",
                 team_id: str = "T0TEAM0001", bot_user_id: str = "U0BOT00001", bot_id: str = "B0BOT00001",
                 team_domain: str = "imgbot-test") -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.calls: list[Call] = []
        self.files: dict[str, dict[str, Any]] = {}  # file id -> Slack file object
        self.paths: dict[str, StoredFile] = {}  # /files/... path -> bytes
        self.uploads: dict[str, dict[str, Any]] = {}  # file id -> {"data", "filename", ...}
        self.channels: dict[str, dict[str, Any]] = {}
        self.memberships: dict[str, list[str]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel -> messages (for history/replies)
        self.reactions: dict[tuple[str, str], set[str]] = {}
        self._failures: dict[str, list[tuple[str, int, int | None]]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: list[_WebSocket] = []
        self.socket_acks: dict[str, dict[str, Any]] = {}
        # Files whose image blocks Slack refuses (the poster cannot see them): a message that
        # shows one is rejected whole, as ``invalid_blocks``.
        self.unviewable_files: set[str] = set()
        self.page_size = 1000  # the most messages conversations.history/replies send at once

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        fake = self

        class Handler(_Handler):
            slack = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-slack", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for ws in list(self._sockets):
            ws.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        """What ``SLACK_API_URL`` is set to; slack_sdk wants the trailing slash."""
        return f"{self.url}api/"

    # -- arranging the workspace ------------------------------------------------------------

    def add_channel(self, channel_id: str, name: str, *, private: bool = False, members: Iterable[str] = ()) -> None:
        self.channels[channel_id] = {"id": channel_id, "name": name, "is_channel": not private,
                                     "is_group": private, "is_private": private, "is_archived": False,
                                     "is_member": True, "created": 1700000000, "name_normalized": name}
        for user in (*members, self.bot_user_id):  # the bot is a member of every channel it is told of
            self.memberships.setdefault(user, [])
            if channel_id not in self.memberships[user]:
                self.memberships[user].append(channel_id)

    def new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def add_file(self, data: bytes, *, name: str = "photo.png", mimetype: str = "image/png",
                 channel: str | None = None, ts: str | None = None, thread_ts: str | None = None,
                 user: str = "U0ALICE001", file_id: str | None = None, host_url: str | None = None,
                 html: bool = False, redirect_to: str | None = None) -> dict[str, Any]:
        """Register a file as Slack would after an upload; returns its full file object."""
        file_id = file_id or f"F{next(self._ids):09d}"
        filetype = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        path = f"files-pri/{self.team_id}-{file_id}/download/{name}"
        base = host_url or self.url
        self.paths["/" + path] = StoredFile(data, mimetype, html=html, redirect_to=redirect_to)
        self.paths[f"/files-pri/{self.team_id}-{file_id}/{name}"] = StoredFile(data, mimetype, html=html,
                                                                              redirect_to=redirect_to)
        obj: dict[str, Any] = {
            "id": file_id, "created": int(time.time()), "timestamp": int(time.time()), "name": name, "title": name,
            "mimetype": mimetype, "filetype": filetype, "pretty_type": filetype.upper(), "user": user,
            "user_team": self.team_id, "editable": False, "size": len(data), "mode": "hosted",
            "is_external": False, "external_type": "", "is_public": channel is not None and not
            self.channels.get(channel, {}).get("is_private", False), "public_url_shared": False,
            "display_as_bot": False, "username": "",
            "url_private": f"{base}files-pri/{self.team_id}-{file_id}/{name}",
            "url_private_download": f"{base}{path}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{user}/{file_id}/{name}",
            "permalink_public": f"https://slack-files.com/{self.team_id}-{file_id}-0000",
            "has_rich_preview": False, "file_access": "visible", "comments_count": 0,
            "channels": [], "groups": [], "ims": [], "has_more_shares": False,
        }
        if channel is not None and ts is not None:
            self.share(obj, channel, ts, thread_ts=thread_ts)
        self.files[file_id] = obj
        return obj

    def share(self, obj: dict[str, Any], channel: str, ts: str, *, thread_ts: str | None = None) -> None:
        private = self.channels.get(channel, {}).get("is_private", False)
        kind = "private" if private else "public"
        entry: dict[str, Any] = {"reply_users": [], "reply_users_count": 0, "reply_count": 0, "ts": ts,
                                 "channel_name": self.channels.get(channel, {}).get("name", channel),
                                 "team_id": self.team_id, "share_user_id": obj["user"], "source": "UNKNOWN"}
        if thread_ts:
            entry["thread_ts"] = thread_ts
        obj.setdefault("shares", {}).setdefault(kind, {}).setdefault(channel, []).append(entry)
        obj["groups" if private else "channels"].append(channel)

    def add_message(self, channel: str, message: dict[str, Any]) -> None:
        self.messages.setdefault(channel, []).append(message)

    def fail_next(self, method: str, error: str = "ratelimited", *, times: int = 1, status: int | None = None,
                  retry_after: int | None = 1) -> None:
        """The next ``times`` calls of ``method`` answer ``error`` (``ratelimited``: HTTP 429 + Retry-After)."""
        if status is None:
            status = 429 if error == "ratelimited" else 200
        with self._lock:
            self._failures.setdefault(method, []).extend([(error, status, retry_after)] * times)

    # -- looking at what happened -----------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def wait_for(self, method: str, count: int = 1, *, timeout: float = 15.0,
                 where: Callable[[Call], bool] | None = None) -> list[Call]:
        """Block until ``count`` calls of ``method`` (matching ``where``) were recorded; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method and (where is None or where(c))]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({c.method for c in self.calls})
                    raise AssertionError(f"expected {count} call(s) to {method}, got {len(found)}; "
                                         f"methods seen: {seen}")
                self._cond.wait(remaining)

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _take_failure(self, method: str) -> tuple[str, int, int | None] | None:
        with self._lock:
            queue = self._failures.get(method)
            return queue.pop(0) if queue else None

    # -- Socket Mode ------------------------------------------------------------------------

    def send_socket_envelope(self, envelope_type: str, payload: dict[str, Any], *, retry_attempt: int = 0,
                             retry_reason: str = "", accepts_response_payload: bool = False,
                             timeout: float = 10.0) -> str:
        """Push one Socket Mode envelope to the connected app; returns its ``envelope_id``."""
        deadline = time.monotonic() + timeout
        while not self._sockets and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._sockets:
            raise AssertionError("no Socket Mode connection was opened")
        envelope_id = f"env-{next(self._ids)}"
        message = {"envelope_id": envelope_id, "type": envelope_type, "payload": payload,
                   "accepts_response_payload": accepts_response_payload, "retry_attempt": retry_attempt,
                   "retry_reason": retry_reason}
        self._sockets[-1].send_text(json.dumps(message))
        return envelope_id

    def wait_for_socket_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while envelope_id not in self.socket_acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"envelope {envelope_id} was not acknowledged")
                self._cond.wait(remaining)
            return self.socket_acks[envelope_id]

    # -- the Web API ------------------------------------------------------------------------

    def answer(self, method: str, params: dict[str, Any], call: Call) -> tuple[int, dict[str, Any], dict[str, str]]:
        failure = self._take_failure(method)
        if failure is not None:
            error, status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None and status == 429 else {}
            return status, {"ok": False, "error": error}, headers
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if call.token != expected:
            return 200, {"ok": False, "error": "not_authed" if call.token is None else "invalid_auth"}, {}
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(params), {}

    def _api_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"https://{self.team_domain}.slack.com/", "team": "imgbot test",
                "user": "imgbot", "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _api_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={next(self._ids)}"}

    def _api_files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        obj = self.files.get(str(params.get("file")))
        if obj is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": obj, "comments": [], "response_metadata": {"next_cursor": ""}}

    def _api_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel"))
        ts = self.new_ts()
        message = {"type": "message", "subtype": "bot_message", "text": params.get("text", ""), "ts": ts,
                   "user": self.bot_user_id, "bot_id": self.bot_id, "app_id": "A0APP00001",
                   "blocks": params.get("blocks") or []}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        if params.get("metadata"):
            message["metadata"] = params["metadata"]
        with self._lock:  # readable again with conversations.history / .replies, as in Slack
            self.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _api_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts"),
                "text": params.get("text", ""), "message": {"text": params.get("text", ""),
                                                           "blocks": params.get("blocks") or []}}

    def _api_chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), str(params.get("message_ts", ""))
        return {"ok": True, "channel": channel,
                "permalink": f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"}

    def _api_reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (str(params.get("channel")), str(params.get("timestamp")))
        with self._lock:
            names = self.reactions.setdefault(key, set())
            if params.get("name") in names:
                return {"ok": False, "error": "already_reacted"}
            names.add(str(params.get("name")))
        return {"ok": True}

    def _api_reactions_remove(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (str(params.get("channel")), str(params.get("timestamp")))
        with self._lock:
            names = self.reactions.setdefault(key, set())
            if params.get("name") not in names:
                return {"ok": False, "error": "no_reaction"}
            names.discard(str(params.get("name")))
        return {"ok": True}

    def _api_users_conversations(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user") or self.bot_user_id)
        ids = self.memberships.get(user, [])
        limit = int(params.get("limit") or 100)
        start = int(base64.b64decode(params["cursor"]).decode().split(":")[1]) if params.get("cursor") else 0
        page = ids[start:start + limit]
        next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if start + limit < len(ids) else ""
        channels = [self.channels.get(cid, {"id": cid, "name": cid}) for cid in page]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": next_cursor}}

    def _api_conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(str(params.get("channel")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": channel}

    def _api_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._messages_between(params, thread=None)

    def _api_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        ts = str(params.get("ts"))
        with self._lock:  # a reply's ts names its whole thread, as in Slack
            reply = next((m for m in self.messages.get(str(params.get("channel")), []) if m.get("ts") == ts), None)
        thread = str(reply["thread_ts"]) if reply is not None and reply.get("thread_ts") else ts
        return self._messages_between(params, thread=thread)

    def _api_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not params.get("user_id") or not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {"id": "V0HOME0001", **view}}

    def _api_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, user = str(params.get("channel")), str(params.get("user"))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if channel not in self.memberships.get(user, []):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self.new_ts()}

    def _messages_between(self, params: dict[str, Any], thread: str | None) -> dict[str, Any]:
        channel = str(params.get("channel"))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        oldest, latest = params.get("oldest"), params.get("latest")
        found = []
        if thread is not None:  # conversations.replies: the parent comes first, whatever the bounds
            found = [m for m in self.messages.get(channel, []) if m.get("ts") == thread]
        for message in self.messages.get(channel, []):
            if thread is not None and message.get("ts") == thread:
                continue
            in_thread = message.get("thread_ts") == thread or message.get("ts") == thread
            if thread is None and message.get("thread_ts") not in (None, message.get("ts")):
                continue
            if thread is not None and not in_thread:
                continue
            if oldest and float(message["ts"]) < float(oldest):
                continue
            if latest and float(message["ts"]) > float(latest):
                continue
            found.append(message)
        # Pages of at most ``limit`` (Slack may send fewer: ``page_size`` plays that), with a cursor.
        offset = int(params.get("cursor") or 0)
        size = max(1, min(int(params.get("limit") or 100), self.page_size))
        page, more = found[offset:offset + size], offset + size < len(found)
        return {"ok": True, "messages": page, "has_more": more,
                "response_metadata": {"next_cursor": str(offset + size) if more else ""}}

    def _api_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("filename") or not params.get("length"):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):09d}"
        self.uploads[file_id] = {"filename": params["filename"], "length": int(params["length"]), "data": None}
        return {"ok": True, "upload_url": f"{self.url}upload/v1/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files") or []
        done = []
        for item in files:
            upload = self.uploads.get(item.get("id"))
            if upload is None or upload["data"] is None:
                return {"ok": False, "error": "file_not_found"}
            upload.update(title=item.get("title"), channel_id=params.get("channel_id"),
                          thread_ts=params.get("thread_ts"), initial_comment=params.get("initial_comment"))
            done.append({"id": item["id"], "name": upload["filename"], "title": item.get("title") or upload["filename"],
                         "size": len(upload["data"]), "user": self.bot_user_id})
        return {"ok": True, "files": done}


class _Handler(BaseHTTPRequestHandler):
    slack: FakeSlack
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/link/"):
            self._socket_mode()
            return
        if path.startswith("/api/"):
            self._api(b"")
            return
        self._file(path)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path.startswith("/api/"):
            self._api(body)
        elif path.startswith("/upload/v1/"):
            file_id = path.rsplit("/", 1)[-1]
            self.slack._record(Call("upload", {"file_id": file_id}, self._headers(), body))
            upload = self.slack.uploads.get(file_id)
            if upload is None:
                self._send(404, b"not found", "text/plain")
                return
            upload["data"] = body
            self._send(200, f"OK - {len(body)}".encode(), "text/plain")
        elif path.startswith("/response/"):
            payload = json.loads(body or b"{}")
            call = Call("response_url", {**payload, "_path": path}, self._headers(), body)
            shown = {(b.get("slack_file") or {}).get("id")
                     for b in payload.get("blocks") or [] if b.get("type") == "image"}
            refused = bool(shown & self.slack.unviewable_files)
            call.status = 400 if refused else 200
            self.slack._record(call)
            self._send(400, b"invalid_blocks", "text/plain") if refused else self._send(200, b"ok", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    def _api(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        method = parts.path[len("/api/"):]
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if body and content_type == "application/json":
            params.update(json.loads(body))
        elif body:
            params.update(dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)))
        for key in JSON_PARAMS:
            if isinstance(params.get(key), str) and params[key][:1] in "[{":
                params[key] = json.loads(params[key])
        call = Call(method, params, self._headers(), body)
        status, answer, headers = self.slack.answer(method, params, call)
        call.status, call.answer = status, answer
        self.slack._record(call)
        self._send(status, json.dumps(answer).encode(), headers=headers)

    def _file(self, path: str) -> None:
        call = Call("file_download", {"path": path}, self._headers())
        self.slack._record(call)
        stored = self.slack.paths.get(path)
        if stored is None:
            self._send(404, b"not found", "text/plain")
            return
        if stored.redirect_to:
            self._send(302, b"", "text/plain", {"Location": stored.redirect_to})
            return
        if stored.html or call.token != self.slack.bot_token:
            self._send(200, SIGN_IN_PAGE, "text/html; charset=utf-8")
            return
        self._send(200, stored.data, stored.content_type)

    # A tiny WebSocket server (RFC 6455), enough for slack_sdk's built-in Socket Mode client.
    def _socket_mode(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        ws = _WebSocket(self.connection)
        self.slack._sockets.append(ws)
        ws.send_text(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"},
                                 "connection_info": {"app_id": "A0APP00001"}}))
        try:
            while True:
                frame = ws.receive()
                if frame is None:
                    break
                opcode, data = frame
                if opcode == 0x9:  # ping
                    ws.send(0xA, data)
                elif opcode == 0x1:
                    message = json.loads(data)
                    if "envelope_id" in message:
                        with self.slack._cond:
                            self.slack.socket_acks[message["envelope_id"]] = message
                            self.slack._cond.notify_all()
                elif opcode == 0x8:
                    break
        finally:
            if ws in self.slack._sockets:
                self.slack._sockets.remove(ws)
            self.close_connection = True


class _WebSocket:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def send_text(self, text: str) -> None:
        self.send(0x1, text.encode())

    def send(self, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(data) < 126:
            header += bytes([len(data)])
        elif len(data) < 65536:
            header += bytes([126]) + struct.pack("!H", len(data))
        else:
            header += bytes([127]) + struct.pack("!Q", len(data))
        with self._send_lock:
            self.sock.sendall(header + data)

    def _exactly(self, n: int) -> bytes | None:
        chunks = b""
        while len(chunks) < n:
            try:
                chunk = self.sock.recv(n - len(chunks))
            except OSError:
                return None
            if not chunk:
                return None
            chunks += chunk
        return chunks

    def receive(self) -> tuple[int, bytes] | None:
        head = self._exactly(2)
        if head is None:
            return None
        opcode = head[0] & 0x0F
        masked = head[1] & 0x80
        length = head[1] & 0x7F
        if length == 126:
            ext = self._exactly(2)
            if ext is None:
                return None
            length = struct.unpack("!H", ext)[0]
        elif length == 127:
            ext = self._exactly(8)
            if ext is None:
                return None
            length = struct.unpack("!Q", ext)[0]
        mask = self._exactly(4) if masked else b"\x00\x00\x00\x00"
        if mask is None:
            return None
        payload = self._exactly(length) if length else b""
        if payload is None:
            return None
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return opcode, data

    def close(self) -> None:
        try:
            self.send(0x8, b"")
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
