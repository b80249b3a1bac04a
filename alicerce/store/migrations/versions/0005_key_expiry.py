"""api keys: an optional expiry

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 10:00:00

A key past `expires_at` is refused (401 `key_expired`); NULL, the value of every existing key,
never expires. Read with the rest of the key when it is authenticated, so the check costs the
hot path a comparison with a cached number, no query.
"""

from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('expires_at')
