"""Where originals are kept, chosen by the scheme of ``IMGBOT_STORAGE``.

    file://FOLDER          LocalStorage (a relative FOLDER is relative to the working directory)
    s3://BUCKET/PREFIX     S3Storage (server-side encrypted with IMGBOT_S3_SSE)
    memory://              MemoryStorage (the in-process fake; nothing survives the process)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.ports import Storage

__all__ = ["build_storage"]


def build_storage(settings: Settings) -> Storage:
    """The ``Storage`` named by ``settings.storage_url``, or a ``ConfigError`` naming IMGBOT_STORAGE."""
    url = settings.storage_url.strip()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "file":
        if not rest:
            raise ConfigError("IMGBOT_STORAGE=file:// needs a folder, e.g. file://./data/images.")
        from bot.storage.local import LocalStorage

        return LocalStorage(rest)
    if sep and scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(f"IMGBOT_STORAGE={url!r} needs a bucket name: s3://BUCKET/PREFIX.")
        from bot.aws import make_client
        from bot.storage.s3 import S3Storage

        return S3Storage(
            bucket, prefix, make_client("s3", settings), sse=settings.s3_sse, kms_key_id=settings.s3_kms_key_id
        )
    if sep and scheme == "memory":
        from bot.storage.memory import MemoryStorage

        return MemoryStorage()
    raise ConfigError(
        f"IMGBOT_STORAGE={url!r} is not a storage location imgbot knows. "
        "Use file://FOLDER, s3://BUCKET/PREFIX or memory://."
    )
