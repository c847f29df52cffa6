"""The edge's small HTTP and signature pieces (the whole edge runs in test_slack_e2e.py)."""

from __future__ import annotations

import asyncio
import json
import time

from bot.slack.edge import BadRequest, is_event_delivery, read_request, render_response, verified
from tests.slack_helpers import signature


def parse(raw: bytes) -> object:
    async def run() -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        try:
            return await read_request(reader)
        except BadRequest as bad:
            return bad.status

    return asyncio.run(run())


def test_the_signature_check_is_slacks() -> None:
    body, ts = b'{"type":"event_callback"}', str(int(time.time()))
    good = signature(body.decode(), ts, "secret")
    assert verified("secret", body, ts, good)
    assert not verified("other", body, ts, good)
    assert not verified("secret", body + b" ", ts, good)
    old = str(int(time.time()) - 301)
    assert not verified("secret", body, old, signature(body.decode(), old, "secret"))
    assert not verified("secret", body, "not-a-number", good) and not verified("", body, ts, good)


def test_only_event_callbacks_are_acknowledged_by_the_edge() -> None:
    assert is_event_delivery(json.dumps({"type": "event_callback", "event": {}}).encode())
    assert not is_event_delivery(json.dumps({"type": "url_verification", "challenge": "x"}).encode())
    assert not is_event_delivery(b"command=%2Fimgsearch&text=event_callback")
    assert not is_event_delivery(b'"event_callback" but not json')


def test_requests_are_parsed_with_length_or_chunks_and_keep_alive() -> None:
    request = parse(b"POST /slack/events HTTP/1.1\r\nContent-Length: 5\r\nX-Slack-Retry-Num: 1\r\n\r\nhello")
    assert request.body == b"hello" and request.keep_alive and request.header("x-slack-retry-num") == "1"  # type: ignore[attr-defined]
    chunked = parse(b"POST /slack/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n")
    assert chunked.body == b"hello" and not chunked.keep_alive  # type: ignore[attr-defined]
    assert parse(b"") is None
    assert parse(b"POST /slack/events HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n") == 413
    assert parse(b"garbage\r\n\r\n") == 400


def test_responses_carry_their_length_and_connection() -> None:
    raw = render_response(200, b"ok", [("Content-Type", "text/plain"), ("Connection", "x")], keep_alive=False)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 2\r\n" in raw
    assert raw.count(b"Connection:") == 1 and raw.endswith(b"Connection: close\r\n\r\nok")
