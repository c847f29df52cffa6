"""channel modes: how imgbot behaves in each Slack channel

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

``channel_settings`` holds the mode a channel's members chose with ``/imgbot mode …``
(``full``, ``quiet``, ``on-demand`` or ``off``), who chose it and when. Every process reads it for each
message, so a change applies at once without a restart; channels with no row use
``IMGBOT_DEFAULT_MODE``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'channel_settings',
        sa.Column('channel_id', sa.String(length=32), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('set_by', sa.String(length=32), nullable=True),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_channel_settings')),
    )


def downgrade() -> None:
    op.drop_table('channel_settings')
