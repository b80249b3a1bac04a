"""request log: the upstream tries that failed before a request's answer

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:30:00

Written by hand. A request served by a fallback after its first model answered 503 was logged
with `error: None` and nothing else; `attempts` keeps each failed try (the upstream, its status
and error, and what came next: a retry, the next model, or nothing left), NULL when none failed.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.add_column('request_log', sa.Column('attempts', Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('request_log') as batch:
        batch.drop_column('attempts')
