"""finding spans: where on its line each secret or piece of personal data was read

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

``sensitive_findings.spans`` holds ``[line id, first character, end character]`` in the
stored (masked) line, so that what Slack is shown masks personal data that only another
detector found (a name or an address, with Comprehend) where it is. Rows written before
this revision keep NULL: imgbot's own detectors find theirs again whenever text is shown,
another detector's findings are shown with their whole line masked until ``imgbot
rescan-text`` records where they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('sensitive_findings', sa.Column('spans', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sensitive_findings') as batch:
        batch.drop_column('spans')
