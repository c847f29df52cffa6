"""The bot token goes to Slack's file host only; what comes back must be an image of acceptable size."""

from __future__ import annotations

import email.message
import io
import urllib.error
import urllib.request
from typing import Any

import pytest

from bot.errors import ImageTooLarge, UnsupportedImage
from bot.slack.download import Downloader, DownloadError, MissingScope, UntrustedHost, is_trusted, looks_like_image
from tests.images import make_image

TOKEN = "xoxb-secret"
PNG = make_image("PNG")


class Answer:
    def __init__(self, body: bytes = PNG, status: int = 200, content_type: str = "image/png",
                 length: str | None = None) -> None:
        self.status = status
        self.headers = email.message.Message()
        self.headers["Content-Type"] = content_type
        if length is not None:
            self.headers["Content-Length"] = length
        self._body = io.BytesIO(body)

    def read(self, n: int = -1) -> bytes:
        return self._body.read(n)

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Opener:
    """Plays the network: answers by URL and records what was sent where."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str | None]] = []

    def __call__(self, request: urllib.request.Request, timeout: float) -> Answer:
        self.sent.append((request.full_url, request.get_header("Authorization")))
        answer = self.answers[request.full_url]
        if isinstance(answer, tuple):  # (status, location): a redirect
            headers = email.message.Message()
            headers["Location"] = answer[1]
            raise urllib.error.HTTPError(request.full_url, answer[0], "Found", headers, None)
        return answer  # type: ignore[no-any-return]


def downloader(opener: Opener, api_url: str | None = None, max_bytes: int = 10_000_000) -> Downloader:
    return Downloader(token=TOKEN, api_url=api_url, max_bytes=max_bytes, opener=opener)


FILE = "https://files.slack.com/files-pri/T1-F1/download/cat.png"


def test_the_token_is_sent_to_files_slack_com() -> None:
    opener = Opener({FILE: Answer()})
    assert downloader(opener).fetch(FILE) == PNG
    assert opener.sent == [(FILE, f"Bearer {TOKEN}")]


@pytest.mark.parametrize("url", [
    "https://files.slack.com.evil.example/x.png",
    "https://evil.example/files.slack.com/x.png",
    "http://files.slack.com/files-pri/T1-F1/cat.png",  # not over TLS
    "https://files.slack.com:8443/files-pri/T1-F1/cat.png",
    "https://user@evil.example/x.png",
    "ftp://files.slack.com/x.png",
    "http://127.0.0.1:9999/files/x.png",
])
def test_any_other_url_is_refused_before_a_byte_is_sent(url: str) -> None:
    opener = Opener({})
    with pytest.raises(UntrustedHost) as refused:
        downloader(opener, api_url="http://127.0.0.1:8000/api/").fetch(url)
    assert opener.sent == []
    assert "not stored on Slack" in refused.value.user_message


def test_slack_api_url_adds_its_own_origin_and_govslack_file_host() -> None:
    assert is_trusted("http://127.0.0.1:8000/files/F1/x.png", "http://127.0.0.1:8000/api/")
    assert not is_trusted("http://127.0.0.1:8001/files/F1/x.png", "http://127.0.0.1:8000/api/")
    assert is_trusted("http://localhost:8000/files/F1/x.png", "http://127.0.0.1:8000/api/")  # the same server
    assert not is_trusted("http://localhost:8001/files/F1/x.png", "http://127.0.0.1:8000/api/")
    assert not is_trusted("http://127.0.0.2:8000/files/F1/x.png", "http://localhost:8000/api/")
    assert is_trusted("https://files.slack-gov.com/files-pri/T1-F1/x.png", "https://slack-gov.com/api/")
    assert is_trusted(FILE, "https://slack-gov.com/api/")


def test_a_redirect_on_the_same_host_keeps_the_token_and_one_elsewhere_drops_it() -> None:
    same = "https://files.slack.com/files-pri/T1-F1/cat.png?v=2"
    elsewhere = "https://cdn.example.net/cat.png"
    opener = Opener({FILE: (302, same), same: (302, elsewhere), elsewhere: Answer()})

    assert downloader(opener).fetch(FILE) == PNG
    assert opener.sent == [(FILE, f"Bearer {TOKEN}"), (same, f"Bearer {TOKEN}"), (elsewhere, None)]


def test_once_dropped_the_token_is_not_sent_again_even_back_on_slack() -> None:
    away, back = "https://slack.com/signin?redir=x", "https://files.slack.com/files-pri/T1-F1/again.png"
    opener = Opener({FILE: (302, away), away: (302, back), back: Answer()})
    downloader(opener).fetch(FILE)
    assert opener.sent[1:] == [(away, None), (back, None)]


def test_too_many_redirects_fail() -> None:
    opener = Opener({FILE: (302, FILE)})
    with pytest.raises(DownloadError):
        downloader(opener).fetch(FILE)


def test_a_sign_in_page_is_an_error_that_names_files_read() -> None:
    page = b"<!DOCTYPE html><html><body>Sign in</body></html>"
    for answer in (Answer(page, content_type="text/html; charset=utf-8"), Answer(page, content_type="image/png")):
        with pytest.raises(MissingScope) as missing:
            downloader(Opener({FILE: answer})).fetch(FILE)
        assert "files:read" in missing.value.user_message


def test_content_that_is_not_an_image_is_refused_whatever_the_mimetype() -> None:
    with pytest.raises(UnsupportedImage):
        downloader(Opener({FILE: Answer(b"%PDF-1.4 not a picture")})).fetch(FILE, name="cat.png")


def test_the_size_cap_applies_to_content_length_and_to_the_stream() -> None:
    with pytest.raises(ImageTooLarge):
        downloader(Opener({FILE: Answer(length="999999999")}), max_bytes=1000).fetch(FILE)
    big = make_image("BMP", size=(300, 300))
    with pytest.raises(ImageTooLarge) as too_large:
        downloader(Opener({FILE: Answer(big)}), max_bytes=len(big) - 1).fetch(FILE)
    assert "MB" in too_large.value.user_message


def test_server_errors_are_retryable_and_missing_files_are_not() -> None:
    class Failing(Opener):
        def __call__(self, request: urllib.request.Request, timeout: float) -> Answer:
            code = 503 if "busy" in request.full_url else 404
            raise urllib.error.HTTPError(request.full_url, code, "x", email.message.Message(), None)

    with pytest.raises(DownloadError) as busy:
        downloader(Failing({})).fetch(FILE + "?busy")
    assert busy.value.retryable
    with pytest.raises(DownloadError) as gone:
        downloader(Failing({})).fetch(FILE)
    assert not gone.value.retryable


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP", "HEIF"])
def test_every_format_imgbot_reads_is_recognised_by_its_bytes(fmt: str) -> None:
    assert looks_like_image(make_image(fmt))
