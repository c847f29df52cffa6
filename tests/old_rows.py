"""Rows written as an older revision of the schema would hold them, for tests of a migration's data step."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, text

#: When the rows of an older revision were written.
OLD_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def insert_analysed_image(connection: Connection, image_id: int, *, label_count: int = 0,
                          text_line_count: int = 0) -> None:
    """An analysed image's row, with only the columns every revision since the first has."""
    connection.execute(text(
        "INSERT INTO images (id, sha256, byte_size, status, failure_retryable, attempts, label_count, "
        "text_line_count, face_count, max_moderation_confidence, created_at, updated_at) "
        "VALUES (:id, :sha, 10, 'done', false, 1, :labels, :lines, 0, 0, :now, :now)"),
        {"id": image_id, "sha": f"{image_id:064x}", "labels": label_count, "lines": text_line_count,
         "now": OLD_TIME})
