"""search at scale: images.last_seen_at and the indexes the query language needs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

- ``images.last_seen_at``: when the image was last posted (its newest live
  sighting; NULL once none is left). ``db.queries.record_sighting`` and
  ``delete_sightings`` keep it up to date; here it is backfilled from
  ``sightings``. With ``ix_images_status_last_seen_at`` a search or a report
  finds "the newest N images" in the index instead of sorting every match.
- ``ix_images_max_moderation_confidence``: ``unsafe`` is a range on the image row.
- ``ix_label_terms_term_confidence_image_id`` replaces ``ix_label_terms_term_confidence``
  (the same order with the image id added): ``label:animal`` and "the surest N
  cats" are read from the index alone.
- The sightings indexes for ``in:``, ``from:`` and dates get the image id as
  their last column, for the same reason: ``…_channel_id_seen_at_image_id``,
  ``…_user_id_image_id``, ``…_seen_at_image_id`` replace the 0001 ones.
- ``ix_sightings_lower_channel_name`` / ``ix_sightings_lower_user_name`` (made by
  hand, listed in ``db.migrate.HAND_MADE``): ``in:#design`` and ``from:@alice``
  by name. PostgreSQL indexes ``lower(…)`` (and includes the column, without which
  it would not read an expression index alone); SQLite the column ``COLLATE NOCASE``
  (the same ASCII case folding, and an index SQLAlchemy can reflect without warning).
- ``ix_labels_name_confidence``: a report's top labels counted from the index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# (table, 0001 index and columns, its replacement and columns)
_REPLACED = [
    ('label_terms', 'ix_label_terms_term_confidence', ['term', 'confidence'],
     'ix_label_terms_term_confidence_image_id', ['term', 'confidence', 'image_id']),
    ('sightings', 'ix_sightings_channel_id_seen_at', ['channel_id', 'seen_at'],
     'ix_sightings_channel_id_seen_at_image_id', ['channel_id', 'seen_at', 'image_id']),
    ('sightings', 'ix_sightings_user_id', ['user_id'], 'ix_sightings_user_id_image_id', ['user_id', 'image_id']),
    ('sightings', 'ix_sightings_seen_at', ['seen_at'], 'ix_sightings_seen_at_image_id', ['seen_at', 'image_id']),
]
_NAME_INDEXES = {"ix_sightings_lower_channel_name": "channel_name", "ix_sightings_lower_user_name": "user_name"}


def upgrade() -> None:
    # A plain ADD COLUMN on both dialects (no batch copy of ``images`` on SQLite).
    op.add_column('images', sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE images SET last_seen_at = (SELECT max(sightings.seen_at) FROM sightings "
        "WHERE sightings.image_id = images.id AND sightings.deleted_at IS NULL)"
    )
    op.create_index('ix_images_status_last_seen_at', 'images', ['status', 'last_seen_at'], unique=False)
    op.create_index('ix_images_max_moderation_confidence', 'images', ['max_moderation_confidence'], unique=False)
    for table, old, _old_columns, new, new_columns in _REPLACED:
        op.create_index(new, table, new_columns, unique=False)
        op.drop_index(old, table_name=table)
    op.create_index('ix_labels_name_confidence', 'labels', ['name', 'confidence'], unique=False)
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, column in _NAME_INDEXES.items():
        if sqlite:
            op.execute(f"CREATE INDEX {name} ON sightings ({column} COLLATE NOCASE, image_id)")
        else:
            op.execute(f"CREATE INDEX {name} ON sightings (lower({column}), image_id) INCLUDE ({column})")


def downgrade() -> None:
    for name in _NAME_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index('ix_labels_name_confidence', table_name='labels')
    for table, old, old_columns, new, _new_columns in reversed(_REPLACED):
        op.create_index(old, table, old_columns, unique=False)
        op.drop_index(new, table_name=table)
    op.drop_index('ix_images_max_moderation_confidence', table_name='images')
    op.drop_index('ix_images_status_last_seen_at', table_name='images')
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+). Not a batch copy: dropping and re-creating
    # ``images`` with foreign keys on would cascade into every table that refers to it.
    op.drop_column('images', 'last_seen_at')
