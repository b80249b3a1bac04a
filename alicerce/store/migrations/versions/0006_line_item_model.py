"""line items carry the model that served their request (`/usage?group_by=model`)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00

Written by hand. `line_items` already copies its request's account, key and gateway, so usage is
summed from one table without a join; the model is copied the same way, and back-filled from
the request log for the rows written before.
"""

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('line_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model', sa.String(length=200), nullable=True))
    op.execute(
        "UPDATE line_items SET model = "
        "(SELECT request_log.model FROM request_log WHERE request_log.id = line_items.request_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table('line_items', schema=None) as batch_op:
        batch_op.drop_column('model')
