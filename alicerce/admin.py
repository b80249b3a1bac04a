"""The parts that manage tenants: accounts and keys, gateways, spending. Wired here once, for
the server (`services.Services.build` builds the inference and knowledge stack around them)
and for the CLI's admin commands, which need nothing more.

Nothing here imports the knowledge store, the embedders or the HTTP stack (they import numpy,
usearch, onnxruntime, aiohttp): `alicerce accounts list` answers without loading them. The one
thing the admin parts need of the store, deleting an account's collections with their vector
indexes, they ask of it through `knowledge`, only when the account has some.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alicerce.catalog import Catalog
from alicerce.gateways import GatewayService
from alicerce.keys import KeyService
from alicerce.knowledge.names import collection_ids
from alicerce.security import CredentialCipher
from alicerce.settings import Settings
from alicerce.store import Database
from alicerce.store.readiness import prepare_database
from alicerce.store.url import DatabaseProblem
from alicerce.usage import UsageService

if TYPE_CHECKING:
    from alicerce.knowledge.store import KnowledgeStore


def open_database(settings: Settings, *, migrate: bool = True, create: bool = False) -> Database:
    """The configured database, checked and upgraded (`migrate`); `create` (or the setting)
    lets it start from nothing. Raises `DatabaseProblem`, one line."""
    db = Database(settings.database_url)
    if migrate:
        try:
            prepare_database(db, create=create or settings.create_database)
        except DatabaseProblem:
            db.dispose()
            raise
    return db


@dataclass
class AdminParts:
    db: Database
    cipher: CredentialCipher  # gateways' upstream keys, and knowledge's embedding endpoints
    keys: KeyService
    gateways: GatewayService
    usage: UsageService

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        *,
        catalog: Callable[[], Catalog],
        knowledge: Callable[[], KnowledgeStore],
    ) -> AdminParts:
        """`catalog`: the current one (the server reloads it); `knowledge`: the store, asked for
        only when an account with collections is deleted (the CLI builds it then)."""
        cipher = CredentialCipher.load_or_create(settings.secret_key, settings.secret_key_path())
        gateways = GatewayService(
            db,
            cipher,
            catalog,
            owned_collections=lambda account_id, ids: {
                id_ for id_ in collection_ids(db, account_id).values() if id_ in ids
            },
            allow_private_upstreams=settings.allow_private_upstreams,
            cache_ttl_s=settings.cache_ttl_s,
        )

        def drop_collections(account_id: str) -> None:
            if collection_ids(db, account_id):
                knowledge().delete_account_collections(account_id)

        keys = KeyService(
            db,
            root_key=settings.root_key,
            cache_ttl_s=settings.cache_ttl_s,
            gateway_id=gateways.id_of,
            forget_gateways=gateways.forget_cached,
            drop_collections=drop_collections,
        )
        usage = UsageService(db, currency=lambda: catalog().currency, gateway_id=gateways.id_of)
        return cls(db=db, cipher=cipher, keys=keys, gateways=gateways, usage=usage)
