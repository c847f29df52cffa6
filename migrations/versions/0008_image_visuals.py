"""how images look: perceptual hashes, quality scores and dominant colours

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

``image_visuals`` keeps each image's 64-bit perceptual hash (near-duplicates) and its
brightness, sharpness and contrast (0-100, Rekognition's scale); ``seq`` orders the rows as
they were written, so the in-process near-duplicate index loads only what is new.
``image_colors`` keeps up to ten dominant colours per image with their CSS and simplified
names and pixel share, indexed for ``color:teal>40``. Images analysed before this revision
get theirs from ``imgbot rescan-images``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'image_visuals',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('phash', sa.BigInteger(), nullable=True),
        sa.Column('brightness', sa.Float(), nullable=False),
        sa.Column('sharpness', sa.Float(), nullable=False),
        sa.Column('contrast', sa.Float(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_visuals_image_id_images'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id', name=op.f('pk_image_visuals')),
    )
    op.create_index('ix_image_visuals_seq', 'image_visuals', ['seq'], unique=False)
    op.create_index('ix_image_visuals_sharpness_image_id', 'image_visuals', ['sharpness', 'image_id'], unique=False)
    op.create_index('ix_image_visuals_brightness_image_id', 'image_visuals', ['brightness', 'image_id'],
                    unique=False)
    op.create_table(
        'image_colors',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=False),
        sa.Column('red', sa.Integer(), nullable=False),
        sa.Column('green', sa.Integer(), nullable=False),
        sa.Column('blue', sa.Integer(), nullable=False),
        sa.Column('hex', sa.String(length=7), nullable=False),
        sa.Column('css', sa.String(length=32), nullable=False),
        sa.Column('simplified', sa.String(length=16), nullable=False),
        sa.Column('percent', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_colors_image_id_images'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id', 'rank', name=op.f('pk_image_colors')),
    )
    op.create_index('ix_image_colors_simplified_percent_image_id', 'image_colors',
                    ['simplified', 'percent', 'image_id'], unique=False)
    op.create_index('ix_image_colors_css_percent_image_id', 'image_colors', ['css', 'percent', 'image_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_table('image_colors')
    op.drop_table('image_visuals')
