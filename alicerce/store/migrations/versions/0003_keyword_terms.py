"""keyword term statistics: how many chunks hold each keyword term (SQLite)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 20:10:00

Written by hand. BM25 needs each query term's document frequency; FTS5's `fts5vocab` table
answers it by walking the term's whole posting list (2-12 ms for a common word over 100,000
chunks). `keyword_terms` keeps the count instead, moved in the same transaction as the chunks'
FTS5 rows (`alicerce.knowledge.keyword_fts5`). It counts over every collection, as FTS5's own bm25()
statistics do. The counts are backfilled from the FTS5 rows' text with `keyword.terms`, the
same function that moves them afterwards, so additions and removals always match.

PostgreSQL counts document frequencies per collection through its GIN index and gets nothing.
"""

from collections import Counter

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BATCH = 2_000


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    from alicerce.knowledge import keyword  # the folding the counts are kept with

    op.execute(
        "CREATE TABLE keyword_terms ("
        "term TEXT NOT NULL PRIMARY KEY, chunks INTEGER NOT NULL) WITHOUT ROWID"
    )
    bind = op.get_bind()
    counts: Counter[str] = Counter()
    after = -1
    while True:  # in rowid order, a batch at a time: a large index is not held in memory twice
        rows = bind.execute(
            sa.text(
                "SELECT rowid, text FROM chunks_fts WHERE rowid > :after ORDER BY rowid LIMIT :n"
            ),
            {"after": after, "n": BATCH},
        ).all()
        if not rows:
            break
        for _rowid, text in rows:
            counts.update(set(keyword.terms(text)))
        after = rows[-1][0]
    if counts:
        bind.execute(
            sa.text("INSERT INTO keyword_terms (term, chunks) VALUES (:term, :chunks)"),
            [{"term": term, "chunks": n} for term, n in counts.items()],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP TABLE IF EXISTS keyword_terms")
