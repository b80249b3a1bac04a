"""An account's collections by name, read from the collections table alone.

What the parts that only name collections ask of knowledge (a gateway's `knowledge.collections`,
a CLI command counting or naming them): it needs no `KnowledgeStore`, whose indexes import
numpy and usearch, so those parts, and the CLI's admin commands, start without them.
"""

from __future__ import annotations

import sqlalchemy as sa

from alicerce.store import Database
from alicerce.store.tables import CollectionRow


def collection_ids(db: Database, account_id: str) -> dict[str, str]:
    """The account's collections: their ids by name (names are unique in an account)."""
    with db.session() as session:
        rows = session.execute(
            sa.select(CollectionRow.name, CollectionRow.id).where(
                CollectionRow.account_id == account_id
            )
        )
        return {name: id_ for name, id_ in rows}
