"""Accounts and their API keys: creation, listing, revocation, and authentication.

The root key (`ALICERCE_ROOT_KEY`, or made by `alicerce init`) belongs to no account and can
only manage accounts. `admin` keys manage their account; `inference` keys may only call the
inference endpoints, and only their listed gateways when they have a list. A key may carry
limits (`rpm`, `tpm`, `monthly_budget`, enforced by `alicerce.limits`) and an expiry; all of it
but the secret can be changed later (`KeyService.update`, a merge patch).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator
from sqlalchemy import delete, select

from alicerce.cache import TTLCache
from alicerce.clock import rfc3339, utcnow
from alicerce.errors import AuthenticationFailed, InvalidRequest, NotFound
from alicerce.ids import new_id
from alicerce.security import display_prefix, generate_api_key, hash_api_key, keys_equal
from alicerce.store import Database
from alicerce.store.tables import AccountRow, ApiKeyRow
from alicerce.validation import Name, Strict, parse_body

Role = Literal["root", "admin", "inference"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from the bearer key, cached on the hot path."""

    key_id: str
    account_id: str | None
    role: Role
    gateways: frozenset[str] | None
    rpm: int | None = None
    tpm: int | None = None
    monthly_budget: Decimal | None = None
    expires_at: float | None = None  # Unix seconds; compared on every request, so a number

    def may_use_gateway(self, gateway_id: str) -> bool:
        return self.gateways is None or gateway_id in self.gateways


ROOT_PRINCIPAL_ID = "root"
_ROOT = Principal(ROOT_PRINCIPAL_ID, None, "root", None)


class AccountCreate(Strict):
    name: Name


class AccountUpdate(Strict):
    name: Name | None = None


MAX_RATE = 10**9
"""The largest `rpm` or `tpm`: far beyond any real limit, and within a 32-bit PostgreSQL
integer (SQLite's 64-bit one would otherwise overflow into a 500 on a huge number)."""
MAX_BUDGET = 10**12


def _utc(moment: datetime) -> datetime:
    """RFC 3339 or Unix seconds, as pydantic reads them; a time without offset is UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


Rate = Annotated[int, Field(ge=1, le=MAX_RATE)]
Budget = Annotated[
    Decimal,
    Field(ge=0, le=MAX_BUDGET, decimal_places=12),  # bounded: stored as text of 64 characters
    AfterValidator(lambda amount: amount + 0),  # -0 is 0
]
Expiry = Annotated[datetime, AfterValidator(_utc)]


class KeyCreate(Strict):
    name: Name
    role: Literal["admin", "inference"] = "inference"
    gateways: list[str] | None = None
    rpm: Rate | None = None
    tpm: Rate | None = None
    monthly_budget: Budget | None = None
    expires_at: Expiry | None = None

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, moment: datetime | None) -> datetime | None:
        """A new key that could never be used is a mistake (a PATCH may expire a key now)."""
        if moment is not None and moment <= utcnow():
            raise ValueError("a new key's expiry must be in the future")
        return moment


class KeyUpdate(Strict):
    """A JSON merge patch of a key (RFC 7396): the fields sent change, `null` clears a limit
    (`gateways`: no list, any gateway; `rpm`, `tpm`, `monthly_budget`: none; `expires_at`:
    never), the fields left out stay. The secret never changes."""

    name: Name | None = None
    role: Literal["admin", "inference"] | None = None
    gateways: list[str] | None = None
    rpm: Rate | None = None
    tpm: Rate | None = None
    monthly_budget: Budget | None = None
    expires_at: Expiry | None = None

    @field_validator("name", "role", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null (a key always has one)")
        return value


def account_view(row: AccountRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "account",
        "name": row.name,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


def key_view(row: ApiKeyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "api_key",
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
        "gateways": row.gateways,
        "rpm": row.rpm,
        "tpm": row.tpm,
        "monthly_budget": (float(row.monthly_budget) if row.monthly_budget is not None else None),
        "expires_at": rfc3339(row.expires_at) if row.expires_at is not None else None,
        "created_at": rfc3339(row.created_at),
    }


def _principal(row: ApiKeyRow) -> Principal:
    return Principal(
        key_id=row.id,
        account_id=row.account_id,
        role=row.role,  # type: ignore[arg-type]
        gateways=frozenset(row.gateways) if row.gateways is not None else None,
        rpm=row.rpm,
        tpm=row.tpm,
        monthly_budget=Decimal(row.monthly_budget) if row.monthly_budget is not None else None,
        expires_at=_utc(row.expires_at).timestamp() if row.expires_at is not None else None,
    )


def _expired(principal: Principal) -> AuthenticationFailed:
    moment = datetime.fromtimestamp(principal.expires_at or 0, UTC)
    return AuthenticationFailed(f"This API key expired at {rfc3339(moment)}.", code="key_expired")


GatewayIds = Callable[[str, str], str | None]
"""`(account_id, ref)` -> the id of the account's gateway `ref` (id or slug), or None."""


class KeyService:
    def __init__(
        self,
        db: Database,
        *,
        root_key: str | None,
        cache_ttl_s: float,
        gateway_id: GatewayIds,
        forget_gateways: Callable[[], None],
        drop_collections: Callable[[str], object] = lambda _account_id: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`gateway_id` turns the gateway references of a new key into ids; `forget_gateways`
        empties the gateways' cache, which still holds a deleted account's (both from
        `GatewayService`, wired in `alicerce.admin`); `drop_collections` deletes an
        account's knowledge collections before the account (the database's cascade would
        leave their keyword rows and vector graphs behind). `clock` is what expiries are
        compared with (Unix seconds)."""
        self._db = db
        self._gateway_id = gateway_id
        self._forget_gateways = forget_gateways
        self._drop_collections = drop_collections
        self._clock = clock
        self._root_key_hash = hash_api_key(root_key) if root_key else None
        self._cache: TTLCache[str, Principal | None] = TTLCache(cache_ttl_s)
        # Moved by every change to keys, after its commit: a lookup that read the database
        # while a change was made does not cache what it read, which may be the old key.
        self._changes = 0

    # -- authentication (hot path) -------------------------------------------------------

    def cached(self, raw_key: str | None) -> Principal | None:
        """The caller when the cache knows the key (no I/O); None when it must be looked up."""
        key_hash = self._hash(raw_key)
        if self._root_key_hash and keys_equal(key_hash, self._root_key_hash):
            return _ROOT
        found, principal = self._cache.get(key_hash)
        if not found:
            return None
        if principal is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        if principal.expires_at is not None and principal.expires_at <= self._clock():
            raise _expired(principal)
        return principal

    def authenticate(self, raw_key: str | None) -> Principal:
        """The caller, looking the key up in the database when the cache does not know it."""
        principal = self.cached(raw_key)
        if principal is not None:
            return principal
        key_hash = self._hash(raw_key)
        changes = self._changes
        principal = self._lookup(key_hash)
        if changes == self._changes:
            self._cache.put(key_hash, principal)
        if principal is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        if principal.expires_at is not None and principal.expires_at <= self._clock():
            raise _expired(principal)
        return principal

    @staticmethod
    def _hash(raw_key: str | None) -> str:
        if not raw_key:
            raise AuthenticationFailed(
                "Missing API key: send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        return hash_api_key(raw_key)

    def _lookup(self, key_hash: str) -> Principal | None:
        with self._db.session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash))
            return _principal(row) if row is not None else None

    def _forget(self) -> None:
        """After a change to keys is committed: this process sees it from the next request on
        (others when their cache entries expire, `ALICERCE_CACHE_TTL_S`)."""
        self._changes += 1
        self._cache.clear()

    # -- root key ------------------------------------------------------------------------

    def has_root_key(self) -> bool:
        if self._root_key_hash:
            return True
        with self._db.session() as session:
            return session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.role == "root")) is not None

    def create_root_key(self) -> str:
        """Makes a stored root key and returns its secret, which is never shown again."""
        secret = generate_api_key()
        with self._db.session() as session:
            session.add(self._new_row(None, "root", "root", secret, None))
        return secret

    # -- accounts ------------------------------------------------------------------------

    def create_account(self, spec: AccountCreate) -> dict[str, Any]:
        now = utcnow()
        account = AccountRow(id=new_id(), name=spec.name, created_at=now, updated_at=now)
        secret = generate_api_key()
        with self._db.session() as session:
            session.add(account)
            session.flush()
            session.add(self._new_row(account.id, "admin key", "admin", secret, None))
        return account_view(account) | {"admin_key": secret}

    def list_accounts(self) -> list[dict[str, Any]]:
        with self._db.session() as session:
            rows = session.scalars(select(AccountRow).order_by(AccountRow.id))
            return [account_view(r) for r in rows]

    def get_account(self, account_id: str) -> dict[str, Any]:
        with self._db.session() as session:
            return account_view(self._account_row(session, account_id))

    def whoami(self, principal: Principal) -> dict[str, Any]:
        """What the calling key is: its role, its account and itself (the console's login)."""
        if principal.role == "root":
            return {"object": "principal", "role": "root", "key": None, "account": None}
        with self._db.session() as session:
            key = session.get(ApiKeyRow, principal.key_id)
            account = session.get(AccountRow, principal.account_id)
            return {
                "object": "principal",
                "role": principal.role,
                "key": {"id": key.id, "name": key.name} if key is not None else None,
                "account": {"id": account.id, "name": account.name} if account else None,
            }

    def find_account(self, ref: str) -> dict[str, Any] | None:
        """The account with id or name `ref` (for people at a shell, who know the name)."""
        with self._db.session() as session:
            row = session.get(AccountRow, ref) or session.scalar(
                select(AccountRow).where(AccountRow.name == ref).order_by(AccountRow.id).limit(1)
            )
            return account_view(row) if row is not None else None

    def update_account(self, account_id: str, spec: AccountUpdate) -> dict[str, Any]:
        with self._db.session() as session:
            row = self._account_row(session, account_id)
            if spec.name is not None:
                row.name = spec.name
            row.updated_at = utcnow()
            return account_view(row)

    def delete_account(self, account_id: str) -> None:
        with self._db.session() as session:
            self._account_row(session, account_id)  # 404 before anything is deleted
        self._drop_collections(account_id)
        with self._db.session() as session:
            row = self._account_row(session, account_id)
            session.execute(delete(ApiKeyRow).where(ApiKeyRow.account_id == account_id))
            session.delete(row)  # its gateways and collections go with it (ON DELETE CASCADE)
        self._forget()
        self._forget_gateways()

    @staticmethod
    def _account_row(session: Any, account_id: str) -> AccountRow:
        row = session.get(AccountRow, account_id)
        if row is None:
            raise NotFound(f"No account with id {account_id!r}.")
        return row  # type: ignore[no-any-return]

    # -- keys ----------------------------------------------------------------------------

    def create_key(self, account_id: str, spec: KeyCreate) -> dict[str, Any]:
        """A new key; its `gateways` may name gateways by id or slug, and are stored as ids."""
        if spec.gateways is not None:
            spec = spec.model_copy(
                update={"gateways": self._gateway_ids(account_id, spec.gateways)}
            )
        secret = generate_api_key()
        row = self._new_row(account_id, spec.name, spec.role, secret, spec)
        with self._db.session() as session:
            session.add(row)
        return key_view(row) | {"key": secret}

    def list_keys(self, account_id: str) -> list[dict[str, Any]]:
        with self._db.session() as session:
            rows = session.scalars(
                select(ApiKeyRow).where(ApiKeyRow.account_id == account_id).order_by(ApiKeyRow.id)
            )
            return [key_view(r) for r in rows]

    def delete_key(self, account_id: str, key_id: str) -> None:
        with self._db.session() as session:
            result = session.execute(
                delete(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.account_id == account_id)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"No key with id {key_id!r}.")
        self._forget()

    def update(
        self, account_id: str, key_id: str, changes: KeyUpdate | dict[str, Any]
    ) -> dict[str, Any]:
        """Applies a merge patch (`KeyUpdate`, or its JSON object) to the account's key, whose
        secret stays; answers the key as listed. `gateways` may name gateways by id or slug."""
        patch = changes if isinstance(changes, KeyUpdate) else parse_body(KeyUpdate, changes)
        values = {field: getattr(patch, field) for field in patch.model_fields_set}
        if values.get("gateways") is not None:
            values["gateways"] = self._gateway_ids(account_id, values["gateways"])
        if values.get("monthly_budget") is not None:
            values["monthly_budget"] = str(values["monthly_budget"])
        with self._db.session() as session:
            row = session.scalar(
                select(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.account_id == account_id)
            )
            if row is None:
                raise NotFound(f"No key with id {key_id!r}.")
            for field, value in values.items():
                setattr(row, field, value)
            view = key_view(row)
        self._forget()
        return view

    def _gateway_ids(self, account_id: str, refs: list[str]) -> list[str]:
        ids = []
        for i, ref in enumerate(refs):
            gateway_id = self._gateway_id(account_id, ref)
            if gateway_id is None:
                raise InvalidRequest(
                    f"gateways.{i}: no gateway {ref!r} in this account.", param=f"gateways.{i}"
                )
            ids.append(gateway_id)
        return ids

    @staticmethod
    def _new_row(
        account_id: str | None, name: str, role: str, secret: str, spec: KeyCreate | None
    ) -> ApiKeyRow:
        return ApiKeyRow(
            id=new_id(),
            account_id=account_id,
            name=name,
            role=role,
            key_hash=hash_api_key(secret),
            prefix=display_prefix(secret),
            gateways=spec.gateways if spec else None,
            rpm=spec.rpm if spec else None,
            tpm=spec.tpm if spec else None,
            monthly_budget=(
                str(spec.monthly_budget) if spec and spec.monthly_budget is not None else None
            ),
            expires_at=spec.expires_at if spec else None,
            created_at=utcnow(),
        )
