"""image embeddings: "more like this" and near-duplicates confirmed by content

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

``image_embeddings`` keeps each image's embedding from the offline engine's network (256
float16, 512 bytes) with the model version that made it; ``seq`` orders rows as written so
each process's in-memory index loads only what is new. Images analysed before this revision
get theirs from ``imgbot rescan-images``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'image_embeddings',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('model', sa.String(length=128), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_embeddings_image_id_images'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id', name=op.f('pk_image_embeddings')),
    )
    op.create_index('ix_image_embeddings_seq', 'image_embeddings', ['seq'], unique=False)


def downgrade() -> None:
    op.drop_table('image_embeddings')
