"""Fetch a Slack file with the bot token, sending the token only to Slack's own file host.

Rules, each one a test in ``tests/test_slack_download.py``:

* the bot token goes only to ``https://files.slack.com`` or to the origin (scheme, host
  and port) of ``SLACK_API_URL`` when that is set (GovSlack, tests); any other URL is
  refused before a byte is sent;
* redirects are followed by hand: to the same trusted origin with the token, elsewhere
  without it (that is where Slack's sign-in page lives), never to a non-HTTP scheme;
* an HTML answer (Slack's sign-in page, what a missing ``files:read`` scope looks like) is
  an error naming the scope, not an image;
* the size cap is enforced from ``Content-Length`` and again while streaming.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from bot.errors import ImageTooLarge, ImgbotError, UnsupportedImage
from bot.slack import messages

log = logging.getLogger("imgbot.slack.download")

SLACK_FILE_HOST = "files.slack.com"
MAX_REDIRECTS = 5
CHUNK = 64 * 1024


class DownloadError(ImgbotError):
    """A Slack file could not be fetched; ``retryable`` when trying later may help."""


class UntrustedHost(DownloadError):
    """The URL is not on Slack's file host: the token is never sent there."""


class MissingScope(DownloadError):
    """Slack answered with a web page instead of the file."""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = -1
    return scheme, host, port


def trusted_origins(api_url: str | None) -> frozenset[tuple[str, str, int]]:
    """Where the token may go: Slack's file host, plus ``SLACK_API_URL``'s origin when set."""
    origins = {("https", SLACK_FILE_HOST, 443)}
    if api_url:
        scheme, host, port = _origin(api_url)
        if scheme in _DEFAULT_PORTS and host:
            origins.add((scheme, host, port))
            # GovSlack and the like: https://slack-gov.com/api/ keeps its files on files.slack-gov.com
            if scheme == "https" and not host.startswith("files.") and host.count(".") >= 1:
                origins.add(("https", "files." + host.removeprefix("www."), 443))
    return frozenset(origins)


_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_trusted(url: str, api_url: str | None) -> bool:
    origin = _origin(url)
    origins = trusted_origins(api_url)
    if origin in origins:
        return True
    # A fake or emulated Slack on this machine may be named localhost or 127.0.0.1: same port, same server.
    scheme, host, port = origin
    return host in _LOOPBACK_NAMES and any(
        (s, p) == (scheme, port) and h in _LOOPBACK_NAMES for s, h, p in origins)


# Leading bytes of the formats the core accepts: a quick check before any analysis.
_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),  # PNG
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"II*\x00"),  # TIFF little-endian
    (0, b"MM\x00*"),  # TIFF big-endian
    (0, b"BM"),  # BMP
)


def looks_like_image(data: bytes) -> bool:
    """True when the bytes start like an image format imgbot reads (checked by content, not name)."""
    if any(data[offset:offset + len(magic)] == magic for offset, magic in _MAGIC):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    if data[4:8] == b"ftyp" and data[8:12] in {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1",
                                                 b"avif"}:
        return True
    return False


def _looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<!--"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand every 3xx back to us: redirects are followed by hand, deciding about the token each time."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)

Opener = Callable[[urllib.request.Request, float], Any]


@dataclass
class Downloader:
    """Fetches ``url_private_download`` for one Slack app; safe to share between threads."""

    token: str | None
    api_url: str | None = None
    max_bytes: int = 52_428_800
    timeout: float = 30.0
    opener: Opener | None = None

    def fetch(self, url: str, *, name: str = "file") -> bytes:
        if not is_trusted(url, self.api_url):
            raise UntrustedHost(messages.not_slack_file_host(), detail=f"refused to send the token to {_host(url)}")
        current = url
        send_token = True
        for _ in range(MAX_REDIRECTS + 1):
            status, headers, body_or_location = self._get(current, send_token)
            if status in (301, 302, 303, 307, 308):
                target = urljoin(current, str(body_or_location))
                if urlsplit(target).scheme.lower() not in _DEFAULT_PORTS:
                    raise DownloadError(messages.download_failed(),
                                        detail=f"redirect to non-HTTP URL from {_host(url)}")
                # Once the token has been withheld it stays withheld, even if the chain comes back.
                send_token = send_token and _origin(target) == _origin(current) and is_trusted(target, self.api_url)
                log.debug("redirect from %s to %s (token %s)", _host(current), _host(target),
                          "kept" if send_token else "dropped")
                current = target
                continue
            assert isinstance(body_or_location, bytes)
            return self._check(body_or_location, headers, name)
        raise DownloadError(messages.download_failed(), detail=f"too many redirects fetching from {_host(url)}")

    def _get(self, url: str, send_token: bool) -> tuple[int, dict[str, str], bytes | str]:
        request = urllib.request.Request(url, method="GET")
        if send_token and self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("User-Agent", "imgbot")
        try:
            if self.opener is not None:
                response = self.opener(request, self.timeout)
            else:
                response = _opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            if err.code in (301, 302, 303, 307, 308):
                location = err.headers.get("Location")
                err.close()
                if not location:
                    raise DownloadError(messages.download_failed(),
                                        detail=f"redirect without Location from {_host(url)}") from None
                return err.code, {}, location
            err.close()
            if err.code in (404, 410):
                raise DownloadError(messages.file_unavailable(), detail=f"HTTP {err.code} from {_host(url)}") from None
            if err.code in (401, 403):
                raise MissingScope(messages.missing_files_read_scope(), detail=f"HTTP {err.code} from {_host(url)}"
                                   ) from None
            raise DownloadError(messages.download_failed(), detail=f"HTTP {err.code} from {_host(url)}",
                                retryable=err.code >= 500 or err.code == 429) from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise DownloadError(messages.download_failed(), detail=f"{type(err).__name__} fetching from {_host(url)}",
                                retryable=True) from None
        with response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, self._read_capped(response, headers)

    def _read_capped(self, response: Any, headers: dict[str, str]) -> bytes:
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            raise ImageTooLarge(messages.too_large(self.max_bytes),
                                detail=f"Content-Length {length} over IMGBOT_MAX_BYTES={self.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = response.read(CHUNK)
            except (TimeoutError, OSError) as err:
                raise DownloadError(messages.download_failed(), detail=f"{type(err).__name__} while reading",
                                    retryable=True) from None
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_bytes:
                raise ImageTooLarge(messages.too_large(self.max_bytes),
                                    detail=f"more than IMGBOT_MAX_BYTES={self.max_bytes} bytes streamed")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check(self, data: bytes, headers: dict[str, str], name: str) -> bytes:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "text/html" or _looks_like_html(data):
            raise MissingScope(messages.missing_files_read_scope(),
                               detail="Slack answered HTML instead of the file: the app needs the files:read scope")
        if not data:
            raise UnsupportedImage(messages.not_an_image(name), detail="empty download")
        if not looks_like_image(data):
            raise UnsupportedImage(messages.not_an_image(name),
                                   detail=f"content does not start like an image (content-type {content_type!r})")
        return data


def _host(url: str) -> str:
    """For logs: the host only, never the path (Slack file URLs are not secret, but tokens in queries would be)."""
    return urlsplit(url).netloc or "?"
