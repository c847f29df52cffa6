"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Tables for images, sightings and results, plus full-text search over labels and
text: an FTS5 table kept in sync by triggers on SQLite, GIN tsvector indexes on
PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('byte_size', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=True),
    sa.Column('mime_type', sa.String(length=64), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('storage_key', sa.String(length=512), nullable=True),
    sa.Column('storage_uri', sa.String(length=1024), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('failure_retryable', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=255), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider', sa.String(length=32), nullable=True),
    sa.Column('label_count', sa.Integer(), nullable=False),
    sa.Column('text_line_count', sa.Integer(), nullable=False),
    sa.Column('face_count', sa.Integer(), nullable=False),
    sa.Column('max_moderation_confidence', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('analyzed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('sha256', name=op.f('uq_images_sha256'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index('ix_images_status_updated_at', ['status', 'updated_at'], unique=False)

    op.create_table('slack_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=True),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('message_ts', sa.String(length=32), nullable=False),
    sa.Column('thread_ts', sa.String(length=32), nullable=True),
    sa.Column('user_id', sa.String(length=32), nullable=True),
    sa.Column('file_ids', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reply_ts', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slack_messages')),
    sa.UniqueConstraint('channel_id', 'message_ts', name=op.f('uq_slack_messages_channel_id_message_ts'))
    )
    op.create_table('analysis_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('model_versions', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_analysis_runs_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_analysis_runs'))
    )
    with op.batch_alter_table('analysis_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analysis_runs_image_id'), ['image_id'], unique=False)

    op.create_table('faces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('box', sa.JSON(), nullable=False),
    sa.Column('landmarks', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('embedding', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_faces_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_faces'))
    )
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_faces_image_id'), ['image_id'], unique=False)

    op.create_table('label_terms',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('term', sa.String(length=255), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_label_terms_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', 'term', name=op.f('pk_label_terms'))
    )
    with op.batch_alter_table('label_terms', schema=None) as batch_op:
        batch_op.create_index('ix_label_terms_term_confidence', ['term', 'confidence'], unique=False)

    op.create_table('labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('parents', sa.JSON(), nullable=False),
    sa.Column('aliases', sa.JSON(), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('instances', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_labels_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labels'))
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_labels_image_id'), ['image_id'], unique=False)

    op.create_table('moderation_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_moderation_decisions_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moderation_decisions'))
    )
    with op.batch_alter_table('moderation_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moderation_decisions_image_id'), ['image_id'], unique=False)

    op.create_table('moderation_labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('parent_name', sa.String(length=255), nullable=True),
    sa.Column('taxonomy_level', sa.Integer(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_moderation_labels_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moderation_labels'))
    )
    with op.batch_alter_table('moderation_labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moderation_labels_image_id'), ['image_id'], unique=False)
        batch_op.create_index('ix_moderation_labels_name_confidence', ['name', 'confidence'], unique=False)

    op.create_table('search_documents',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_search_documents_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', name=op.f('pk_search_documents'))
    )
    op.create_table('sightings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('source_kind', sa.String(length=16), nullable=False),
    sa.Column('source_key', sa.String(length=512), nullable=False),
    sa.Column('name', sa.String(length=1024), nullable=False),
    sa.Column('team_id', sa.String(length=32), nullable=True),
    sa.Column('channel_id', sa.String(length=32), nullable=True),
    sa.Column('channel_name', sa.String(length=255), nullable=True),
    sa.Column('user_id', sa.String(length=32), nullable=True),
    sa.Column('user_name', sa.String(length=255), nullable=True),
    sa.Column('file_id', sa.String(length=32), nullable=True),
    sa.Column('message_ts', sa.String(length=32), nullable=True),
    sa.Column('thread_ts', sa.String(length=32), nullable=True),
    sa.Column('permalink', sa.String(length=1024), nullable=True),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_sightings_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sightings')),
    sa.UniqueConstraint('image_id', 'source_key', name=op.f('uq_sightings_image_id_source_key'))
    )
    with op.batch_alter_table('sightings', schema=None) as batch_op:
        batch_op.create_index('ix_sightings_channel_id_seen_at', ['channel_id', 'seen_at'], unique=False)
        batch_op.create_index('ix_sightings_file_id', ['file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sightings_image_id'), ['image_id'], unique=False)
        batch_op.create_index('ix_sightings_seen_at', ['seen_at'], unique=False)
        batch_op.create_index('ix_sightings_user_id', ['user_id'], unique=False)

    op.create_table('text_detections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('detection_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('box', sa.JSON(), nullable=False),
    sa.Column('polygon', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_text_detections_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_text_detections'))
    )
    with op.batch_alter_table('text_detections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_text_detections_image_id'), ['image_id'], unique=False)


    _create_full_text_search()

def downgrade() -> None:
    _drop_full_text_search()
    with op.batch_alter_table('text_detections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_text_detections_image_id'))

    op.drop_table('text_detections')
    with op.batch_alter_table('sightings', schema=None) as batch_op:
        batch_op.drop_index('ix_sightings_user_id')
        batch_op.drop_index('ix_sightings_seen_at')
        batch_op.drop_index(batch_op.f('ix_sightings_image_id'))
        batch_op.drop_index('ix_sightings_file_id')
        batch_op.drop_index('ix_sightings_channel_id_seen_at')

    op.drop_table('sightings')
    op.drop_table('search_documents')
    with op.batch_alter_table('moderation_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_moderation_labels_name_confidence')
        batch_op.drop_index(batch_op.f('ix_moderation_labels_image_id'))

    op.drop_table('moderation_labels')
    with op.batch_alter_table('moderation_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_moderation_decisions_image_id'))

    op.drop_table('moderation_decisions')
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_labels_image_id'))

    op.drop_table('labels')
    with op.batch_alter_table('label_terms', schema=None) as batch_op:
        batch_op.drop_index('ix_label_terms_term_confidence')

    op.drop_table('label_terms')
    with op.batch_alter_table('faces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_faces_image_id'))

    op.drop_table('faces')
    with op.batch_alter_table('analysis_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analysis_runs_image_id'))

    op.drop_table('analysis_runs')
    op.drop_table('slack_messages')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_status_updated_at')

    op.drop_table('images')


def _create_full_text_search() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5(labels, text, content='search_documents', "
            "content_rowid='image_id', tokenize='porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER search_fts_after_insert AFTER INSERT ON search_documents BEGIN "
            "INSERT INTO search_fts(rowid, labels, text) VALUES (new.image_id, new.labels, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER search_fts_after_delete AFTER DELETE ON search_documents BEGIN "
            "INSERT INTO search_fts(search_fts, rowid, labels, text) "
            "VALUES ('delete', old.image_id, old.labels, old.text); END"
        )
        op.execute(
            "CREATE TRIGGER search_fts_after_update AFTER UPDATE ON search_documents BEGIN "
            "INSERT INTO search_fts(search_fts, rowid, labels, text) "
            "VALUES ('delete', old.image_id, old.labels, old.text); "
            "INSERT INTO search_fts(rowid, labels, text) VALUES (new.image_id, new.labels, new.text); END"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE INDEX ix_search_documents_labels_tsv ON search_documents "
            "USING gin (to_tsvector('english', labels))"
        )
        op.execute(
            "CREATE INDEX ix_search_documents_text_tsv ON search_documents "
            "USING gin (to_tsvector('english', text))"
        )


def _drop_full_text_search() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("search_fts_after_insert", "search_fts_after_delete", "search_fts_after_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_search_documents_labels_tsv")
        op.execute("DROP INDEX IF EXISTS ix_search_documents_text_tsv")
