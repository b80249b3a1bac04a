"""knowledge collections: collections, documents, their sources, chunks and keyword indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:25:00

Written by hand: the keyword index differs per backend. SQLite gets an FTS5 table whose
tokenizer folds accents (`remove_diacritics 2`), so "organizacao" finds "organização". PostgreSQL
gets a `tsvector` column (the 'simple' configuration over text the application has already
folded and lower-cased) with a GIN index, and, when the server has pgvector, an `embedding`
column with an HNSW index for the local model's 384 dimensions.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'collections',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('account_id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('embedding_model', sa.String(length=200), nullable=False),
        sa.Column('dimensions', sa.Integer(), nullable=False),
        sa.Column('settings', Json, nullable=False),
        sa.Column('number', sa.BigInteger(), nullable=False),
        sa.Column('next_key', sa.BigInteger(), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.Column('chunk_count', sa.BigInteger(), nullable=False),
        sa.Column('term_count', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('account_id', 'name', name='uq_collections_account_name'),
        sa.UniqueConstraint('number', name='uq_collections_number'),
    )
    op.create_table(
        'documents',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('collection_id', sa.String(length=36), nullable=False),
        sa.Column('account_id', sa.String(length=36), nullable=False),
        sa.Column('name', sa.String(length=500), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('media_type', sa.String(length=200), nullable=True),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('source_url', sa.Text(), nullable=True),
        sa.Column('metadata', Json, nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('chunks', sa.Integer(), nullable=False),
        sa.Column('tokens', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['collection_id'], ['collections.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('collection_id', 'content_hash', name='uq_documents_collection_hash'),
    )
    op.create_index('ix_documents_account_id', 'documents', ['account_id'])
    op.create_index('ix_documents_status', 'documents', ['status'])
    op.create_table(
        'document_sources',
        sa.Column('document_id', sa.String(length=36), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('document_id'),
    )
    op.create_table(
        'chunks',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('key', sa.BigInteger(), nullable=False),
        sa.Column('document_id', sa.String(length=36), nullable=False),
        sa.Column('collection_id', sa.String(length=36), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('heading_path', Json, nullable=False),
        sa.Column('tokens', sa.Integer(), nullable=False),
        sa.Column('n_terms', sa.Integer(), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    op.create_index('ix_chunks_document_id', 'chunks', ['document_id'])
    op.create_index('ix_chunks_collection_key', 'chunks', ['collection_id', 'key'])

    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        # rowid = chunks.key; a collection's keys are one contiguous range, which is how a
        # search keeps to its collections (FTS5 seeks a rowid range in its posting lists).
        op.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5("
            "text, tokenize = 'unicode61 remove_diacritics 2')"
        )
        op.execute("CREATE VIRTUAL TABLE chunks_fts_vocab USING fts5vocab(chunks_fts, 'row')")
    elif dialect == 'postgresql':
        op.execute("ALTER TABLE chunks ADD COLUMN tsv tsvector NOT NULL")
        op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")
        available = op.get_bind().execute(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        ).first()
        if available:
            op.execute("CREATE EXTENSION IF NOT EXISTS vector")
            op.execute("ALTER TABLE chunks ADD COLUMN embedding vector")
            # A column without fixed dimensions cannot be indexed as such; the index is on the
            # cast to the local model's 384 dimensions, for the rows that have them.
            op.execute(
                "CREATE INDEX ix_chunks_embedding_384 ON chunks USING hnsw "
                "((embedding::vector(384)) vector_cosine_ops) WHERE vector_dims(embedding) = 384"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        op.execute("DROP TABLE IF EXISTS chunks_fts_vocab")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    op.drop_table('chunks')
    op.drop_table('document_sources')
    op.drop_index('ix_documents_status', table_name='documents')
    op.drop_index('ix_documents_account_id', table_name='documents')
    op.drop_table('documents')
    op.drop_table('collections')
