"""colour names: ``color:`` read from one index

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

``image_color_names`` lists each name an image's colours go by (simplified and CSS), with the
largest share of any colour so named, so that ``color:teal>40`` is one range of one index.
Asked of ``image_colors`` it was an OR of two columns, which PostgreSQL answered from two
indexes and then the table's pages (140 ms for ``color:blue>50`` at 1,000,000 images). The
names already stored are copied over, and ``image_colors`` loses the two indexes only that
search read.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'image_color_names',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('percent', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_color_names_image_id_images'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id', 'name', name=op.f('pk_image_color_names')),
    )
    op.execute("""
        INSERT INTO image_color_names (image_id, name, percent)
        SELECT image_id, name, MAX(percent) FROM (
            SELECT image_id, simplified AS name, percent FROM image_colors
            UNION ALL
            SELECT image_id, css AS name, percent FROM image_colors
        ) AS named
        WHERE name <> ''
        GROUP BY image_id, name
    """)
    op.create_index('ix_image_color_names_name_percent_image_id', 'image_color_names',
                    ['name', 'percent', 'image_id'], unique=False)
    op.drop_index('ix_image_colors_simplified_percent_image_id', table_name='image_colors')
    op.drop_index('ix_image_colors_css_percent_image_id', table_name='image_colors')


def downgrade() -> None:
    op.create_index('ix_image_colors_css_percent_image_id', 'image_colors', ['css', 'percent', 'image_id'],
                    unique=False)
    op.create_index('ix_image_colors_simplified_percent_image_id', 'image_colors',
                    ['simplified', 'percent', 'image_id'], unique=False)
    op.drop_index('ix_image_color_names_name_percent_image_id', table_name='image_color_names')
    op.drop_table('image_color_names')
