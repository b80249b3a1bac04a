"""the request log is paged by (account, id): an index in that order

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12 10:00:00

Written by hand. `GET /requests` lists an account's records newest first, by id (UUIDv7), from
a cursor. Without an index in that order SQLite walks the whole log's primary key backwards and
skips the other accounts' records one by one: a new account's first page read every record of a
shared log (`bench/console_queries.py`). With `(account_id, id)` a page reads its own records,
and the filters (gateway, key, status) read only that account's.
"""

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_request_log_account_id', 'request_log', ['account_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_request_log_account_id', table_name='request_log')
