"""Gateways: the virtual models operators define (SPEC section 2), validated and cached.

A gateway is stored as its public definition (JSON) plus the upstream key encrypted apart;
the hot path reads the resolved, decrypted `Gateway` from a short-lived cache.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alicerce.cache import TTLCache
from alicerce.catalog import AUTO_MODEL, LOCAL_ROUTER, Catalog
from alicerce.clock import rfc3339, utcnow
from alicerce.errors import Conflict, InvalidRequest, NotFound
from alicerce.function_schemas import check_function_schema
from alicerce.gateway_routing import Routing as Routing  # re-exported: part of a gateway
from alicerce.gateway_routing import RoutingRule as RoutingRule
from alicerce.ids import new_id, slug_for
from alicerce.knowledge.modes import Mode
from alicerce.security import CredentialCipher, check_upstream_url
from alicerce.store import Database
from alicerce.store.tables import GatewayRow
from alicerce.validation import Strict, parse_body

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
OVERRIDABLE = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
)
DEFAULT_OVERRIDABLE = ["temperature", "top_p", "max_tokens", "stop", "seed"]
_SLUG = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,99}):(?P<suffix>[0-9a-f]{4})$")


class Parameters(Strict):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=2**31 - 1)  # int32, as requests
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    prefill: str | None = Field(default=None, max_length=20_000)

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value


class Endpoint(Strict):
    base_url: str = Field(min_length=1, max_length=2000)
    api_key: str | None = Field(default=None, max_length=4000)
    model: str = Field(min_length=1, max_length=200)
    headers: dict[str, str] | None = None


class Knowledge(Strict):
    collections: list[str] = Field(default_factory=list)
    strategy: Literal["none", "always", "concatenate", "rewrite", "tool"] = "none"
    top_k: int = Field(default=5, ge=1, le=50)
    min_score: float = Field(default=0.2, ge=0)
    context_turns: int = Field(default=3, ge=1, le=50)
    mode: Mode = "hybrid"
    # When no chunk passes `min_score`: the best few still go to the model, marked as
    # low-confidence, or nothing does (the model is told nothing matched).
    below_threshold: Literal["low_confidence", "drop"] = "low_confidence"
    # `always`: how much the conversation (the last `context_turns` user turns, searched
    # apart) weighs against the last turn in the ranking; 0 searches the last turn alone.
    context_weight: float = Field(default=0.7, ge=0, le=1)


class Function(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    url: str
    headers: dict[str, str] | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("parameters")
    @classmethod
    def _a_json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_function_schema(value)
        if value.get("type", "object") != "object":
            raise ValueError("a function's parameters must be a JSON Schema of type 'object'")
        return value


class GatewaySpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    instructions: str = Field(default="", max_length=200_000)
    model: str | None = None
    endpoint: Endpoint | None = None
    parameters: Parameters = Field(default_factory=Parameters)
    overridable: list[str] = Field(default_factory=lambda: list(DEFAULT_OVERRIDABLE))
    knowledge: Knowledge = Field(default_factory=Knowledge)
    functions: list[Function] = Field(default_factory=list, max_length=64)
    fallbacks: list[str] = Field(default_factory=list, max_length=10)
    routing: Routing | None = None

    @field_validator("overridable")
    @classmethod
    def _known_parameters(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(OVERRIDABLE))
        if unknown:
            raise ValueError(f"not overridable: {unknown}; choose from {list(OVERRIDABLE)}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _one_upstream(self) -> GatewaySpec:
        """The checks across fields. Each names the field to change in `param` (raised as
        `InvalidRequest`, which pydantic lets through), so a form can show it beside it."""
        if (self.model is None) == (self.endpoint is None):
            raise _across("model", "set exactly one of 'model' and 'endpoint'")
        if self.model == AUTO_MODEL and self.routing is None:
            raise _across("routing", "'routing' is required with model '@auto'")
        if self.routing is not None and self.model != AUTO_MODEL:
            raise _across("routing", "'routing' is only for model '@auto'")
        if self.routing is not None and (problem := self.routing.problem()) is not None:
            raise _across(*problem)
        if self.knowledge.strategy != "none" and not self.knowledge.collections:
            raise _across(
                "knowledge.collections", "knowledge.strategy needs at least one collection"
            )
        names = [f.name for f in self.functions]
        for i, name in enumerate(names):
            if name in names[:i] or (
                name == "search_knowledge" and self.knowledge.strategy == "tool"
            ):
                raise _across(
                    f"functions.{i}.name",
                    f"function names must be unique ('search_knowledge' is knowledge's): {name!r}",
                )
        return self


def _across(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param)


@dataclass(frozen=True, slots=True)
class Gateway:
    """A gateway as the inference path sees it, with the upstream key decrypted."""

    id: str
    account_id: str
    slug: str
    spec: GatewaySpec
    endpoint_api_key: str | None


def _merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: objects merge key by key, `null` removes."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge_patch(result[key], value)
        else:
            result[key] = value
    return result


GatewayRef = dict[str, str]  # {"id", "name", "slug"}: a gateway as a 409 names it


def _ref(row: GatewayRow) -> GatewayRef:
    return {"id": row.id, "name": row.name, "slug": slug_for(row.name, row.id)}


OwnedCollections = Callable[[str, list[str]], set[str]]
"""`(account_id, collection_ids)` -> those of the ids that are collections of the account.

Knowledge answers it (`knowledge.names`, wired in `alicerce.admin`): gateways name collections
but never read knowledge's tables."""


class GatewayService:
    def __init__(
        self,
        db: Database,
        cipher: CredentialCipher,
        catalog: Callable[[], Catalog],
        *,
        owned_collections: OwnedCollections,
        allow_private_upstreams: bool,
        cache_ttl_s: float,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._catalog = catalog
        self._owned_collections = owned_collections
        self._allow_private = allow_private_upstreams
        self._cache: TTLCache[tuple[str, str], Gateway | None] = TTLCache(cache_ttl_s)

    # -- validation ----------------------------------------------------------------------

    def parse(self, payload: Any) -> GatewaySpec:
        spec = parse_body(GatewaySpec, payload)
        self._check_models(spec)
        self._check_urls(spec)
        return spec

    def _check_models(self, spec: GatewaySpec) -> None:
        catalog = self._catalog()
        named: list[tuple[str, str]] = []
        if spec.model is not None and spec.model != AUTO_MODEL:
            named.append(("model", spec.model))
        named += [(f"fallbacks.{i}", m) for i, m in enumerate(spec.fallbacks)]
        if spec.routing:
            if spec.routing.router != LOCAL_ROUTER:  # the local router is no catalog model
                named.append(("routing.router", spec.routing.router))
            named += [(f"routing.tiers.{i}", m) for i, m in enumerate(spec.routing.tiers)]
        for param, model_id in named:
            model = catalog.get(model_id)
            if model is None:
                raise InvalidRequest(
                    f"{param}: {model_id!r} is not a model of this server's catalog "
                    "(GET /api/v1/models lists them).",
                    param=param,
                    code="model_not_found",
                )
            if model.kind != "chat":
                raise InvalidRequest(
                    f"{param}: {model_id!r} is an embedding model; a gateway needs a chat model.",
                    param=param,
                    code="model_not_chat",
                )

    def _check_collections(
        self, account_id: str, spec: GatewaySpec, known: frozenset[str] = frozenset()
    ) -> None:
        """Every collection named is one of the account's (those in `known`, kept from before
        a patch, are not checked again: a deleted collection then just finds nothing)."""
        wanted = [c for c in spec.knowledge.collections if c not in known]
        if not wanted:
            return
        owned = self._owned_collections(account_id, wanted)
        for i, ref in enumerate(spec.knowledge.collections):
            if ref not in owned and ref not in known:
                raise InvalidRequest(
                    f"knowledge.collections.{i}: no collection {ref!r} in this account.",
                    param=f"knowledge.collections.{i}",
                )

    def _check_urls(self, spec: GatewaySpec) -> None:
        if spec.endpoint is not None:
            check_upstream_url(
                spec.endpoint.base_url, allow_private=self._allow_private, param="endpoint.base_url"
            )
        for i, function in enumerate(spec.functions):
            check_upstream_url(
                function.url, allow_private=self._allow_private, param=f"functions.{i}.url"
            )

    # -- CRUD ----------------------------------------------------------------------------

    def create(self, account_id: str, payload: Any) -> dict[str, Any]:
        spec = self.parse(payload)
        self._check_collections(account_id, spec)
        now = utcnow()
        row = GatewayRow(
            id=new_id(),
            account_id=account_id,
            name=spec.name,
            spec=self._public_spec(spec),
            endpoint_api_key=self._encrypt_key(spec),
            created_at=now,
            updated_at=now,
        )
        try:
            with self._db.session() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(f"A gateway named {spec.name!r} already exists.", param="name") from None
        self._cache.clear()
        return self._view(row)

    def list(self, account_id: str) -> list[dict[str, Any]]:
        with self._db.session() as session:
            rows = session.scalars(
                select(GatewayRow)
                .where(GatewayRow.account_id == account_id)
                .order_by(GatewayRow.id)
            )
            return [self._view(r) for r in rows]

    def get(self, account_id: str, ref: str) -> dict[str, Any]:
        with self._db.session() as session:
            return self._view(self._row(session, account_id, ref))

    def update(self, account_id: str, ref: str, patch: Any) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise InvalidRequest("The body must be a JSON object.")
        patch = dict(patch)
        # Choosing one kind of upstream drops the other, so a PATCH can switch between them.
        if patch.get("model") is not None and "endpoint" not in patch:
            patch["endpoint"] = None
        if patch.get("endpoint") is not None and "model" not in patch:
            patch["model"] = None
        with self._db.session() as session:
            row = self._row(session, account_id, ref)
            merged = _merge_patch(row.spec, patch)
            spec = self.parse(merged)
            known = row.spec.get("knowledge", {}).get("collections", [])
            self._check_collections(account_id, spec, frozenset(known))
            keep_old_key = (
                spec.endpoint is not None
                and isinstance(patch.get("endpoint"), dict)
                and "api_key" not in patch["endpoint"]
            ) or (spec.endpoint is not None and "endpoint" not in patch)
            row.name = spec.name
            row.spec = self._public_spec(spec)
            if not keep_old_key:
                row.endpoint_api_key = self._encrypt_key(spec)
            row.updated_at = utcnow()
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(
                    f"A gateway named {spec.name!r} already exists.", param="name"
                ) from None
            view = self._view(row)
        self._cache.clear()
        return view

    def delete(self, account_id: str, ref: str) -> None:
        with self._db.session() as session:
            session.delete(self._row(session, account_id, ref))
        self._cache.clear()

    def forget_cached(self) -> None:
        self._cache.clear()

    # -- the collections gateways name (`knowledge.service.CollectionUsers`) -------------

    def using_collection(self, account_id: str, collection_id: str) -> builtins.list[GatewayRef]:
        """The account's gateways whose `knowledge.collections` names the collection."""
        with self._db.session() as session:
            return [_ref(row) for row in self._naming(session, account_id, collection_id)]

    def detach_collection(self, account_id: str, collection_id: str) -> builtins.list[GatewayRef]:
        """Takes the collection out of every gateway naming it (a gateway left with none
        gets strategy `none`, as its definition requires) and forgets the cached gateways,
        as an update does; those gateways."""
        with self._db.session() as session:
            rows = self._naming(session, account_id, collection_id)
            for row in rows:
                spec = dict(row.spec)
                knowledge = dict(spec.get("knowledge") or {})
                kept = [c for c in knowledge.get("collections", []) if c != collection_id]
                knowledge["collections"] = kept
                if not kept:
                    knowledge["strategy"] = "none"
                row.spec = spec | {"knowledge": knowledge}
                row.updated_at = utcnow()
            detached = [_ref(row) for row in rows]
        if detached:
            self._cache.clear()
        return detached

    @staticmethod
    def _naming(session: Any, account_id: str, collection_id: str) -> builtins.list[GatewayRow]:
        rows = session.scalars(
            select(GatewayRow).where(GatewayRow.account_id == account_id).order_by(GatewayRow.id)
        )
        return [
            row
            for row in rows
            if collection_id in (row.spec.get("knowledge") or {}).get("collections", [])
        ]

    # -- hot path ------------------------------------------------------------------------

    def peek(self, account_id: str, ref: str) -> tuple[bool, Gateway | None]:
        """The cached answer of `resolve`, if there is one; never touches the database."""
        return self._cache.get((account_id, ref))

    def resolve(self, account_id: str, ref: str) -> Gateway | None:
        """The gateway `ref` (id or slug) of this account, or None; cached."""
        found, gateway = self._cache.get((account_id, ref))
        if found:
            return gateway
        with self._db.session() as session:
            row = self._find(session, account_id, ref)
            gateway = self._to_gateway(row) if row is not None else None
        self._cache.put((account_id, ref), gateway)
        return gateway

    def id_of(self, account_id: str, ref: str) -> str | None:
        """The id of gateway `ref` (id or slug) of this account, or None; cached, as `resolve`."""
        gateway = self.resolve(account_id, ref)
        return gateway.id if gateway is not None else None

    def resolve_id(self, account_id: str, ref: str) -> str:
        """The id of gateway `ref` (id or slug) of this account; 404 when there is none."""
        gateway_id = self.id_of(account_id, ref)
        if gateway_id is None:
            raise NotFound(f"No gateway {ref!r}.", param="model", code="model_not_found")
        return gateway_id

    # -- helpers -------------------------------------------------------------------------

    def _row(self, session: Any, account_id: str, ref: str) -> GatewayRow:
        row = self._find(session, account_id, ref)
        if row is None:
            raise NotFound(f"No gateway {ref!r}.")
        return row

    @staticmethod
    def _find(session: Any, account_id: str, ref: str) -> GatewayRow | None:
        match = _SLUG.match(ref)
        if match:
            rows = session.scalars(
                select(GatewayRow).where(
                    GatewayRow.account_id == account_id, GatewayRow.name == match["name"]
                )
            )
            suffix = match["suffix"]
            return next((r for r in rows if r.id.replace("-", "").endswith(suffix)), None)
        row = session.get(GatewayRow, ref)
        if row is None:  # names are unique in an account, so a bare name is an address too
            row = session.scalar(
                select(GatewayRow).where(
                    GatewayRow.account_id == account_id, GatewayRow.name == ref
                )
            )
        if row is None or row.account_id != account_id:
            return None
        return row  # type: ignore[no-any-return]

    def _encrypt_key(self, spec: GatewaySpec) -> str | None:
        if spec.endpoint is None or not spec.endpoint.api_key:
            return None
        return self._cipher.encrypt(spec.endpoint.api_key)

    @staticmethod
    def _public_spec(spec: GatewaySpec) -> dict[str, Any]:
        data = spec.model_dump(mode="json")
        if data.get("endpoint") is not None:
            data["endpoint"].pop("api_key", None)
        return data

    def _to_gateway(self, row: GatewayRow) -> Gateway:
        spec = GatewaySpec.model_validate(row.spec)
        key = self._cipher.decrypt(row.endpoint_api_key) if row.endpoint_api_key else None
        return Gateway(row.id, row.account_id, slug_for(row.name, row.id), spec, key)

    @staticmethod
    def _view(row: GatewayRow) -> dict[str, Any]:
        spec = dict(row.spec)
        if spec.get("endpoint") is not None:
            spec["endpoint"] = dict(spec["endpoint"]) | {
                "api_key_set": row.endpoint_api_key is not None
            }
        return {
            "id": row.id,
            "object": "gateway",
            "slug": slug_for(row.name, row.id),
            **spec,
            "created_at": rfc3339(row.created_at),
            "updated_at": rfc3339(row.updated_at),
        }
