"""Errors imgbot raises, each with a message a marketing person can read.

    ImgbotError                 base; ``user_message`` is safe to show to anyone
    ├── ConfigError             a setting is missing or malformed (names the variable)
    ├── UnsupportedImage        not an image, truncated, empty, or a format we cannot read
    ├── ImageTooLarge           over the byte or pixel limit (decompression bombs included)
    ├── StorageError            the original could not be stored or read back
    ├── AnalyzerError           the analysis service failed; ``retryable`` says whether trying later may help
    ├── QueueError              the work queue (SQS) could not be reached or refused a call
    ├── QuerySyntaxError        a search query we cannot parse; the message carries an example
    ├── NotFound                no image with that id or hash
    └── SchemaOutOfDate         the database needs ``imgbot db upgrade``

Vendor errors (botocore, slack_sdk) are translated into these at the adapter, so
the core never imports a vendor library. The technical detail goes to the log,
``user_message`` goes to people.
"""

from __future__ import annotations


class ImgbotError(Exception):
    """Base of every error imgbot raises on purpose."""

    #: Whether the same work may succeed if tried again later.
    retryable: bool = False

    def __init__(self, user_message: str, *, detail: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail or user_message
        if retryable is not None:  # otherwise the class default stands
            self.retryable = retryable


class ConfigError(ImgbotError):
    """A setting is missing or malformed."""


class UnsupportedImage(ImgbotError):
    """The bytes are not an image we can read."""


class ImageTooLarge(ImgbotError):
    """The image is over a size or pixel limit."""


class StorageError(ImgbotError):
    """The original could not be stored, read or deleted."""

    retryable = True


class AnalyzerError(ImgbotError):
    """The analysis service failed for this image."""

    retryable = False


class QueueError(ImgbotError):
    """The work queue refused or failed a call (send, receive, delete, change visibility)."""

    retryable = True


class QuerySyntaxError(ImgbotError):
    """A search query that cannot be parsed."""


class NotFound(ImgbotError):
    """No stored image matches."""


class SchemaOutOfDate(ImgbotError):
    """The database schema is older (or newer) than this version of imgbot."""

    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"The database schema is out of date (at {current or 'nothing'}, needs {head}). "
            "Run `imgbot db upgrade` to fix it."
        )
        self.current = current
        self.head = head
