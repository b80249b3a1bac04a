"""The operator's model catalog: which models accounts may use, where they run, what they cost.

`@local/smollm2-135m` is always present. More models come from the `[providers.*]` and
`[[models]]` tables of the TOML file named by `ALICERCE_CONFIG`; its `[knowledge]` table prices
searches (`search_price`, per search) and indexing (`indexing_price`, per 1,000 tokens). Every
price is in the file's one `currency` (an ISO 4217 code, `USD` when the file names none), which
is shown beside every amount the API answers.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alicerce.money import DEFAULT_CURRENCY, FREE, Money, currency_code

LOCAL_CHAT_MODEL = "@local/smollm2-135m"
# The in-process embedding model (`alicerce.embeddings`) is named here, beside the local chat
# model, so that listing the models needs neither it nor its libraries.
LOCAL_EMBEDDING_MODEL = "@local/multilingual-e5-small"
LOCAL_DIMENSIONS = 384
AUTO_MODEL = "@auto"
# `@auto`'s default router, in process (`alicerce.complexity`): billed at the catalog's price
# for this id when the file lists it, else free.
LOCAL_ROUTER = "@local/complexity-router"
PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    kind: Literal["openai", "local"]
    base_url: str | None = None
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CatalogModel:
    id: str
    provider: Provider
    upstream_model: str
    price_in: Decimal = FREE  # per token; `Money`, so each price is formatted once
    price_out: Decimal = FREE
    price_cached_in: Decimal = FREE
    context_length: int | None = None
    kind: Literal["chat", "embedding"] = "chat"
    dimensions: int | None = None  # of an embedding model's vectors


@dataclass(frozen=True, slots=True)
class KnowledgePrices:
    """The `knowledge.*` SKUs' prices, per unit of their line items' quantity."""

    per_search: Decimal = FREE
    per_indexed_token: Decimal = FREE  # the file says per 1,000 tokens


class _ProviderFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class _ModelFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^@[a-z0-9][a-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._:-]*$")
    provider: str
    upstream_model: str | None = None
    price_in: Decimal = Field(default=Decimal(0), ge=0, description="per million tokens")
    price_out: Decimal = Field(default=Decimal(0), ge=0)
    price_cached_in: Decimal | None = Field(default=None, ge=0)
    context_length: int | None = Field(default=None, gt=0)
    kind: Literal["chat", "embedding"] = "chat"
    dimensions: int | None = Field(default=None, gt=0, le=16_384)

    @model_validator(mode="after")
    def _dimensions_for_embeddings(self) -> _ModelFile:
        if (self.kind == "embedding") != (self.dimensions is not None):
            raise ValueError("'dimensions' is required for, and only for, kind = 'embedding'")
        return self


class _KnowledgeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    search_price: Decimal = Field(default=Decimal(0), ge=0, description="per search")
    indexing_price: Decimal = Field(default=Decimal(0), ge=0, description="per 1,000 tokens")


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled table is refused, not ignored
    currency: str = DEFAULT_CURRENCY  # of every price in the file
    server: dict[str, Any] = Field(default_factory=dict)  # the settings' (`settings.py` checks it)
    providers: dict[str, _ProviderFile] = Field(default_factory=dict)
    models: list[_ModelFile] = Field(default_factory=list)
    knowledge: _KnowledgeFile = Field(default_factory=_KnowledgeFile)

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        return currency_code(value)


class CatalogError(ValueError):
    pass


LOCAL_PROVIDER = Provider(name="local", kind="local")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")


def _line_of(text: str, loc: tuple[Any, ...]) -> int:
    """The line of a TOML file that a validation error points at (tomllib keeps no positions):
    the table of `loc` (`[providers.NAME]` or the n-th `[[models]]`), then the key inside it."""
    lines = text.splitlines()
    if not loc:
        return 1
    if loc[0] == "models" and len(loc) > 1 and isinstance(loc[1], int):
        wanted, occurrence, rest = "models", loc[1], loc[2:]
    elif loc[0] == "providers" and len(loc) > 1:
        wanted, occurrence, rest = f"providers.{loc[1]}", 0, loc[2:]
    else:
        wanted, occurrence, rest = str(loc[0]), -1, loc[1:]
    start, seen = 0, -1
    for number, line in enumerate(lines):
        match = _HEADER.match(line)
        if match and match.group(1).replace('"', "") == wanted:
            seen += 1
            if seen == occurrence or occurrence == -1:
                start = number
                break
    else:
        if occurrence != -1:
            return 1
        start, rest = -1, loc  # no such table: a top-level key (`currency`), above the tables
    if not rest:
        return start + 1
    key = re.compile(rf"^\s*\"?{re.escape(str(rest[0]))}\"?\s*=")
    for number in range(max(start, 0), len(lines)):
        if number > start and _HEADER.match(lines[number]):
            break
        if key.match(lines[number]):
            return number + 1
    return start + 1


def _problem(error: Any) -> str:
    """A validation error in the file's words: a misspelled table or key says so."""
    if error["type"] == "extra_forbidden":
        table = len(error["loc"]) == 1 and isinstance(error["input"], dict)
        return "no such table" if table else "no such key"
    if error["type"] == "value_error":  # our own validators' words, without pydantic's prefix
        return str(error["ctx"]["error"])
    return str(error["msg"])


class Catalog:
    def __init__(
        self,
        models: list[CatalogModel],
        knowledge: KnowledgePrices | None = None,
        currency: str = DEFAULT_CURRENCY,
    ) -> None:
        self._models = {m.id: m for m in models}
        self.knowledge = knowledge or KnowledgePrices()
        self.currency = currency  # of every price here, so of every amount billed at them

    @classmethod
    def builtin(cls) -> Catalog:
        return cls([CatalogModel(LOCAL_CHAT_MODEL, LOCAL_PROVIDER, "smollm2-135m-instruct")])

    @classmethod
    def load(cls, path: str | None, environ: dict[str, str] | None = None) -> Catalog:
        """The built-in models plus the file's; a bad file is refused with the reason."""
        catalog = cls.builtin()
        if not path:
            return catalog
        env = os.environ if environ is None else environ
        try:
            raw: dict[str, Any] = tomllib.loads(Path(path).read_text())
            parsed = _CatalogFile.model_validate(raw)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(f"{path}: {exc}") from exc
        except ValidationError as exc:
            text = Path(path).read_text()
            problems = "\n".join(
                f"line {_line_of(text, err['loc'])}: {'.'.join(str(p) for p in err['loc'])}: "
                f"{_problem(err)}"
                for err in exc.errors()
            )
            raise CatalogError("\n".join(f"{path}: {p}" for p in problems.splitlines())) from exc
        catalog.currency = parsed.currency
        catalog.knowledge = KnowledgePrices(
            per_search=Money(parsed.knowledge.search_price),
            per_indexed_token=Money(parsed.knowledge.indexing_price / 1000),
        )
        providers: dict[str, Provider] = {}
        for name, spec in parsed.providers.items():
            key = None
            if spec.api_key_env:
                key = env.get(spec.api_key_env)
                if key is None:
                    line = _line_of(Path(path).read_text(), ("providers", name, "api_key_env"))
                    raise CatalogError(
                        f"{path}: line {line}: providers.{name}.api_key_env: the environment "
                        f"variable {spec.api_key_env} is not set"
                    )
            providers[name] = Provider(name, "openai", spec.base_url.rstrip("/"), key, spec.headers)
        for item in parsed.models:
            provider = providers.get(item.provider)
            if provider is None:
                index = parsed.models.index(item)
                line = _line_of(Path(path).read_text(), ("models", index, "provider"))
                raise CatalogError(
                    f"{path}: line {line}: model {item.id}: unknown provider {item.provider!r}"
                )
            cached = item.price_cached_in if item.price_cached_in is not None else item.price_in
            catalog._models[item.id] = CatalogModel(
                id=item.id,
                provider=provider,
                upstream_model=item.upstream_model or item.id.split("/", 1)[1],
                price_in=Money(item.price_in / PER_MILLION),
                price_out=Money(item.price_out / PER_MILLION),
                price_cached_in=Money(cached / PER_MILLION),
                context_length=item.context_length,
                kind=item.kind,
                dimensions=item.dimensions,
            )
        return catalog

    def get(self, model_id: str) -> CatalogModel | None:
        return self._models.get(model_id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def models(self) -> list[CatalogModel]:
        return list(self._models.values())


def describe_models(catalog: Catalog) -> list[dict[str, Any]]:
    """What the catalog offers, for people choosing a model (`alicerce models`, the console's
    `GET /api/v1/catalog`): each model with its kind and its prices per million tokens, as
    the catalog file gives them, in `catalog.currency`; and the local embedding model of
    `/embeddings` when the file does not list it."""
    entries = [
        {
            "id": m.id,
            "object": "model",
            "created": 0,
            "owned_by": "alicerce" if m.id == LOCAL_CHAT_MODEL else m.provider.name,
            "kind": m.kind,
            "upstream_model": m.upstream_model,
            "price_in": Money(m.price_in * PER_MILLION),
            "price_out": Money(m.price_out * PER_MILLION),
            "price_cached_in": Money(m.price_cached_in * PER_MILLION),
            "context_length": m.context_length,
            "dimensions": m.dimensions,
        }
        for m in catalog.models()
    ]
    if LOCAL_EMBEDDING_MODEL not in catalog:
        entries.append(
            {
                "id": LOCAL_EMBEDDING_MODEL,
                "object": "model",
                "created": 0,
                "owned_by": "alicerce",
                "kind": "embedding",
                "upstream_model": "multilingual-e5-small",
                "price_in": Money(0),
                "price_out": Money(0),
                "price_cached_in": Money(0),
                "context_length": None,
                "dimensions": LOCAL_DIMENSIONS,
            }
        )
    return entries
