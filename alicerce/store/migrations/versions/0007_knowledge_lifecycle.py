"""knowledge lifecycle: re-embeddings kept in the database, no dangling references

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-11 10:00:00

Written by hand. A collection's re-embedding was a job in one process's memory: a restart lost
it and a failure was only logged. Its state is now on the collection (`reembed_*`: the job's
token, `queued` | `running` | `failed`, the target embedder, the error), so a start resumes it
and a failure is shown and can be retried. `embedding_version` moves at each swap of the
collection's vectors: a document embedded before a swap is not written after it with the old
embedder's vectors (`alicerce.knowledge.reembeds`).

Two kinds of dangling state left by earlier versions are repaired:
- gateways naming a collection that is gone (deleted while a gateway used it): the id is taken
  out of `knowledge.collections`, and a gateway left with none gets strategy `none`;
- on SQLite, keyword rows of chunks that are gone (an account deleted with its collections:
  the cascade removed the chunks but not their FTS5 rows, whose counts stayed in
  `keyword_terms`, and a new collection given the same number then collided with them).
"""

from collections import Counter
import json

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BATCH = 2_000
JSON = sa.JSON().with_variant(JSONB(), 'postgresql')


def upgrade() -> None:
    # Added in place (never a batch copy of `collections`: dropping the old table would
    # cascade to its documents).
    op.add_column(
        'collections',
        sa.Column('embedding_version', sa.BigInteger(), nullable=False, server_default='0'),
    )
    op.add_column('collections', sa.Column('reembed_id', sa.String(length=36), nullable=True))
    op.add_column('collections', sa.Column('reembed_status', sa.String(length=16), nullable=True))
    op.add_column('collections', sa.Column('reembed_embedding', JSON, nullable=True))
    op.add_column('collections', sa.Column('reembed_error', sa.Text(), nullable=True))
    _detach_missing_collections()
    if op.get_bind().dialect.name == 'sqlite':
        _drop_orphan_keyword_rows()


def _detach_missing_collections() -> None:
    bind = op.get_bind()
    existing = {
        (account, collection)
        for collection, account in bind.execute(sa.text('SELECT id, account_id FROM collections'))
    }
    rows = bind.execute(sa.text('SELECT id, account_id, spec FROM gateways')).all()
    for gateway_id, account_id, raw in rows:
        spec = json.loads(raw) if isinstance(raw, str) else dict(raw)
        knowledge = spec.get('knowledge') or {}
        named = knowledge.get('collections') or []
        kept = [c for c in named if (account_id, c) in existing]
        if kept == named:
            continue
        knowledge['collections'] = kept
        if not kept:
            knowledge['strategy'] = 'none'
        spec['knowledge'] = knowledge
        bind.execute(
            sa.text('UPDATE gateways SET spec = :spec WHERE id = :id').bindparams(
                sa.bindparam('spec', type_=JSON)
            ),
            {'spec': spec, 'id': gateway_id},
        )


def _drop_orphan_keyword_rows() -> None:
    from alicerce.knowledge import keyword  # the folding `keyword_terms` is counted with

    bind = op.get_bind()
    counts: Counter[str] = Counter()
    after = -1
    while True:
        rows = bind.execute(
            sa.text(
                'SELECT rowid, text FROM chunks_fts WHERE rowid > :after '
                'AND rowid NOT IN (SELECT key FROM chunks) ORDER BY rowid LIMIT :n'
            ),
            {'after': after, 'n': BATCH},
        ).all()
        if not rows:
            break
        for _rowid, text in rows:
            counts.update(set(keyword.terms(text)))
        bind.execute(
            sa.text('DELETE FROM chunks_fts WHERE rowid BETWEEN :low AND :high '
                    'AND rowid NOT IN (SELECT key FROM chunks)'),
            {'low': rows[0][0], 'high': rows[-1][0]},
        )
        after = rows[-1][0]
    if counts:
        bind.execute(
            sa.text('UPDATE keyword_terms SET chunks = chunks - :n WHERE term = :term'),
            [{'term': term, 'n': n} for term, n in counts.items()],
        )
        bind.execute(sa.text('DELETE FROM keyword_terms WHERE chunks <= 0'))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite has it since 3.35): a batch operation would copy `collections`
    # and drop the old table, and the drop would cascade to every document and chunk.
    for column in (
        'reembed_error', 'reembed_embedding', 'reembed_status', 'reembed_id', 'embedding_version'
    ):
        op.execute(f'ALTER TABLE collections DROP COLUMN {column}')
