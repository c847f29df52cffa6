"""sensitive data: findings, and existing text masked

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

``sensitive_findings`` holds each secret or piece of personal data read in an image: its
category (``secret`` or ``pii``), kind (``aws-access-key``, ``card``, ``email``…), a masked
form, who found it and where (line ids and boxes), never the value. Images analysed before
this revision are scanned here with the same detectors, and what they find is masked in the
stored text, the search documents and the raw responses (``bot/core/rescan.py``; ``imgbot
rescan-text`` runs the same pass on demand).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sensitive_findings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('category', sa.String(length=16), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('masked', sa.String(length=255), nullable=False),
        sa.Column('detector', sa.String(length=32), nullable=False),
        sa.Column('score', sa.Float(), nullable=True),
        sa.Column('line_ids', sa.JSON(), nullable=False),
        sa.Column('boxes', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_sensitive_findings_image_id_images'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sensitive_findings')),
    )
    op.create_index(op.f('ix_sensitive_findings_image_id'), 'sensitive_findings', ['image_id'], unique=False)
    op.create_index('ix_sensitive_findings_category_kind_image_id', 'sensitive_findings',
                    ['category', 'kind', 'image_id'], unique=False)

    from db.rescan import rescan_text  # the detectors of this release, on the images already stored

    rescan_text(op.get_bind())


def downgrade() -> None:
    op.drop_index('ix_sensitive_findings_category_kind_image_id', table_name='sensitive_findings')
    op.drop_index(op.f('ix_sensitive_findings_image_id'), table_name='sensitive_findings')
    op.drop_table('sensitive_findings')
