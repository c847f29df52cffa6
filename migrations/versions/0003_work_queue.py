"""work queue: leases on Slack message claims, the Slack inbox, S3 watch watermarks

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

- ``slack_messages.lease_owner`` / ``lease_expires_at``: the claim is also a job
  with a lease, as ``images`` is, so several ``imgbot serve`` / ``imgbot worker``
  processes can share one database: a start-up sweep takes only claims whose
  lease has expired or whose owner (a process on this host) is dead.
- ``slack_messages.reply_started_at``: set just before the reply is posted; a later
  attempt then looks for that reply in the thread before posting another.
- ``slack_inbox``: Events API deliveries written before the ack is sent and
  deleted once a listener has handled them; what a crash leaves is replayed.
- ``s3_watermarks``: per ``s3://bucket/prefix`` watched by ``imgbot watch``, the
  last key listed and handled (ListObjectsV2 ``StartAfter``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('slack_messages', sa.Column('lease_owner', sa.String(length=255), nullable=True))
    op.add_column('slack_messages', sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('slack_messages', sa.Column('reply_started_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_slack_messages_status_created_at', 'slack_messages', ['status', 'created_at'], unique=False)
    op.create_table('slack_inbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=255), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slack_inbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_slack_inbox_event_id'))
    )
    op.create_table('s3_watermarks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.String(length=255), nullable=False),
    sa.Column('prefix', sa.String(length=1024), nullable=False),
    sa.Column('last_key', sa.String(length=1024), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_s3_watermarks')),
    sa.UniqueConstraint('bucket', 'prefix', name=op.f('uq_s3_watermarks_bucket_prefix'))
    )


def downgrade() -> None:
    op.drop_table('s3_watermarks')
    op.drop_table('slack_inbox')
    op.drop_index('ix_slack_messages_status_created_at', table_name='slack_messages')
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+), as 0002 does: no batch copy of the table.
    op.drop_column('slack_messages', 'reply_started_at')
    op.drop_column('slack_messages', 'lease_expires_at')
    op.drop_column('slack_messages', 'lease_owner')
