"""person count: how many people each image shows

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

``images.person_count`` is the number of boxes on the image's Person label (one when the
label has none; for images the offline engine analysed before, which boxed only faces, the
number of Face boxes), so ``people>3`` and ``people:0`` are an indexed comparison and reports
count people without reading labels. Images analysed before this revision get theirs
from the Person labels already stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('images', sa.Column('person_count', sa.Integer(), server_default='0', nullable=False))
    op.create_index('ix_images_person_count', 'images', ['person_count'], unique=False)
    # json_array_length reads a JSON array on SQLite and a json column on PostgreSQL alike. Before this
    # revision the offline engine put boxes on Face, not Person: its images count their faces.
    op.execute("""
        UPDATE images SET person_count = CASE
            WHEN (SELECT MAX(COALESCE(json_array_length(instances), 0)) FROM labels
                  WHERE labels.image_id = images.id AND labels.name = 'Person') > 0
            THEN (SELECT MAX(COALESCE(json_array_length(instances), 0)) FROM labels
                  WHERE labels.image_id = images.id AND labels.name = 'Person')
            WHEN (SELECT MAX(COALESCE(json_array_length(instances), 0)) FROM labels
                  WHERE labels.image_id = images.id AND labels.name = 'Face') > 0
            THEN (SELECT MAX(COALESCE(json_array_length(instances), 0)) FROM labels
                  WHERE labels.image_id = images.id AND labels.name = 'Face')
            ELSE 1 END
        WHERE EXISTS (SELECT 1 FROM labels WHERE labels.image_id = images.id AND labels.name = 'Person')
    """)


def downgrade() -> None:
    op.drop_index('ix_images_person_count', table_name='images')
    with op.batch_alter_table('images') as batch:
        batch.drop_column('person_count')
