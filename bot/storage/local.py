"""Originals kept in a folder on disk: the default for one machine, and for tests.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a
crash or a concurrent reader never sees half an image. Keys come from the pipeline
(``ab/abcdef….jpg``) but are still checked, so no key can reach outside the folder.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from bot.core.types import StoredObject
from bot.errors import NotFound, StorageError

logger = logging.getLogger("imgbot.storage")


class LocalStorage:
    """``Storage`` over a local folder; URIs are ``file:///absolute/path``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.folder)!r})"

    def path_for(self, key: str) -> Path:
        """The file a key lives in; refuses keys that are empty, absolute, climb out or have odd segments."""
        if (
            not key
            or "\x00" in key
            or "\\" in key
            or PurePosixPath(key).is_absolute()
            or PureWindowsPath(key).is_absolute()
            or PureWindowsPath(key).drive
            or any(part in ("", ".", "..") for part in key.split("/"))
        ):
            raise StorageError(
                "imgbot refused to use an unsafe storage key.", detail=f"unsafe storage key {key!r}", retryable=False
            )
        path = self.folder.joinpath(*PurePosixPath(key).parts)
        # A symlink inside the folder could still point outside it.
        if not path.resolve().is_relative_to(self.folder):
            raise StorageError(
                "imgbot refused to use an unsafe storage key.",
                detail=f"storage key {key!r} resolves outside {self.folder}",
                retryable=False,
            )
        return path

    def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self.path_for(key)
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as exc:
            raise self._error("write to", exc) from exc
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass
        logger.debug("stored key=%s bytes=%d folder=%s", key, len(data), self.folder)
        return StoredObject(uri=path.as_uri(), key=key)

    def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"The stored image {key} is missing from {self.folder}.") from exc
        except OSError as exc:
            raise self._error("read from", exc) from exc

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._error("delete from", exc) from exc

    def _error(self, action: str, exc: OSError) -> StorageError:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StorageError(
                f"imgbot is not allowed to {action} the folder {self.folder}. "
                "Check the folder's permissions or IMGBOT_STORAGE.",
                detail=f"{type(exc).__name__}: {exc}",
                retryable=False,
            )
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageError(
                f"The disk holding {self.folder} is full; imgbot will try again later.",
                detail=f"{type(exc).__name__}: {exc}",
                retryable=True,
            )
        return StorageError(
            f"imgbot could not {action} the folder {self.folder}.",
            detail=f"{type(exc).__name__}: {exc}",
            retryable=True,
        )
