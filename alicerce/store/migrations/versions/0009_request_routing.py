"""request log: how `@auto` routed a request

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:10:00

Written by hand. A routed answer says how it was routed (`generation_context.routing`: the
router, complexity, score, tier and model); `routing` keeps it with the request's record, NULL
for requests that were not routed. A column of its own rather than inside `metadata`, which is
the client's.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.add_column('request_log', sa.Column('routing', Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('request_log') as batch:
        batch.drop_column('routing')
