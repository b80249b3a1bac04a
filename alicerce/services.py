"""The application's parts, wired once from the settings (in the app's lifespan or a CLI
command) and handed to whoever needs them. No module-level state anywhere else.

Accounts, keys, gateways and usage are wired in `alicerce.admin` (the CLI's admin commands
open those alone); `Services.around` builds the inference and knowledge stack around them."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field

from alicerce.admin import AdminParts, open_database
from alicerce.catalog import Catalog, CatalogError
from alicerce.embedders import EmbedderRegistry
from alicerce.embeddings import LocalE5Embedder
from alicerce.gateways import GatewayService
from alicerce.inference.chat import ChatService
from alicerce.inference.embeddings import EmbeddingsService
from alicerce.inference.fallback import RetryPolicy
from alicerce.inference.functions import GatewayTools
from alicerce.inference.grounding import Grounder
from alicerce.inference.pipeline import Pipeline
from alicerce.inference.routing import ComplexityRouter
from alicerce.keys import KeyService
from alicerce.knowledge.indexer import Indexer
from alicerce.knowledge.service import KnowledgeService
from alicerce.knowledge.store import KnowledgeStore
from alicerce.ledger import UsageLedger
from alicerce.limits import LimitBackend, Limiter, MemoryBackend
from alicerce.metrics import Metrics
from alicerce.redis_limits import RedisBackend
from alicerce.request_log import RequestLog
from alicerce.settings import Settings
from alicerce.store import Database
from alicerce.tokens import TokenCounter
from alicerce.upstreams.http import HttpClients
from alicerce.upstreams.local import LocalUpstream
from alicerce.upstreams.registry import UpstreamRegistry
from alicerce.usage import UsageService

log = logging.getLogger("alicerce.catalog")


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@dataclass
class Services:
    settings: Settings
    db: Database
    catalog: Catalog
    keys: KeyService
    gateways: GatewayService
    http: HttpClients
    local: LocalUpstream
    upstreams: UpstreamRegistry
    request_log: RequestLog
    ledger: UsageLedger  # every billed thing is recorded through it
    metrics: Metrics
    chat: ChatService
    router: ComplexityRouter
    usage: UsageService
    limiter: Limiter
    tools: GatewayTools
    embedder: LocalE5Embedder  # one model in memory, for the route and knowledge alike
    embedders: EmbedderRegistry  # which embedder embeds what, for the route and knowledge
    embeddings: EmbeddingsService
    knowledge: KnowledgeService
    grounder: Grounder  # puts a gateway's knowledge into its requests
    pipeline: Pipeline = field(init=False)  # an inference request, from door to ledger
    _catalog_mtime: int | None = None  # of the file the catalog was loaded from
    _watcher: asyncio.Task[None] | None = None
    _in_flight_sync: asyncio.Task[None] | None = None  # with several workers (`metrics.py`)
    _catalog_read: asyncio.Event = field(default_factory=asyncio.Event)  # set, then replaced

    @classmethod
    def build(
        cls, settings: Settings, *, migrate: bool = True, create_database: bool = False
    ) -> Services:
        """Raises `CatalogError` or `DatabaseProblem` (one line each) for a bad configuration.
        `migrate` checks the database and upgrades it; `create_database` (or the setting) lets
        it start from nothing."""
        catalog_mtime = _mtime(settings.config) if settings.config else None
        catalog = Catalog.load(settings.config)
        db = open_database(settings, migrate=migrate, create=create_database)
        services: Services
        admin = AdminParts.build(
            settings,
            db,
            catalog=lambda: services.catalog,
            knowledge=lambda: services.knowledge.store,
        )
        services = cls.around(admin, settings, catalog, catalog_mtime=catalog_mtime)
        return services

    @classmethod
    def around(
        cls,
        admin: AdminParts,
        settings: Settings,
        catalog: Catalog,
        *,
        catalog_mtime: int | None = None,
    ) -> Services:
        """The inference and knowledge stack built around `admin`'s parts (the CLI's admin
        commands have only those; a command that needs knowledge builds the rest with this)."""
        db, cipher, gateways = admin.db, admin.cipher, admin.gateways
        services: Services

        def current_catalog() -> Catalog:
            return services.catalog

        http = HttpClients(
            allow_private=settings.allow_private_upstreams,
            pool_size=settings.upstream_pool_size,
            per_host=settings.upstream_max_connections_per_host,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            read_timeout_s=settings.upstream_read_timeout_s,
        )
        local = LocalUpstream(
            settings.local_model_path,
            context=settings.local_model_context,
            threads=settings.local_model_threads,
            concurrency=settings.local_model_concurrency,
            queue_timeout_s=settings.local_model_queue_timeout_s,
        )
        metrics = Metrics(max_gateways=settings.metrics_max_gateways)
        db.on_unavailable = metrics.unavailable.labels("database").inc
        request_log = RequestLog(
            db,
            flush_interval_s=settings.request_log_flush_interval_s,
            batch_size=settings.request_log_batch_size,
            max_pending=settings.request_log_max_pending,
            metrics=metrics,
        )
        http.slots.on_refused = functools.partial(metrics.shed, "upstream_connections")
        embedder = LocalE5Embedder()  # loads on first use
        backend: LimitBackend = (
            RedisBackend(settings.redis_url) if settings.redis_url else MemoryBackend()
        )
        limiter = Limiter(
            backend,
            admin.usage.spent,
            local=MemoryBackend() if settings.redis_url else None,  # rpm/tpm while Redis is away
            on_unavailable=metrics.unavailable.labels("redis").inc,
        )
        tokens = TokenCounter(settings.local_model_path)
        ledger = UsageLedger(request_log, limiter, metrics, log_requests=settings.log_requests)
        embedders = EmbedderRegistry(
            embedder,
            cipher=cipher,
            http=http,
            catalog=current_catalog,
            # the same model with a one-thread pool of its own: searches stay fast while
            # documents are indexed
            indexing=LocalE5Embedder(threads=1, sharing=embedder),
        )
        store = KnowledgeStore(db, index_dir=settings.vector_index_dir())
        indexer = Indexer(
            store,
            embedders,
            catalog=current_catalog,
            ledger=ledger,
            max_document_bytes=settings.max_document_bytes,
            chunk_tokens=settings.knowledge_chunk_tokens,
            overlap_tokens=settings.knowledge_chunk_overlap_tokens,
            workers=settings.knowledge_indexing_workers,
            max_chunks=settings.knowledge_max_document_chunks,
            max_seconds=settings.knowledge_max_indexing_s,
        )
        knowledge = KnowledgeService(
            store,
            embedders,
            indexer,
            users=gateways,  # a collection gateways use is not deleted from under them
            cipher=cipher,
            catalog=current_catalog,
            ledger=ledger,
            allow_private_upstreams=settings.allow_private_upstreams,
            max_document_bytes=settings.max_document_bytes,
        )
        upstreams = UpstreamRegistry(
            http,
            current_catalog,
            local,
            allow_private_upstreams=settings.allow_private_upstreams,
        )
        policy = RetryPolicy(
            retries=settings.upstream_retries, max_backoff_s=settings.upstream_max_backoff_s
        )
        services = cls(
            settings=settings,
            db=db,
            catalog=catalog,
            keys=admin.keys,
            gateways=gateways,
            http=http,
            local=local,
            upstreams=upstreams,
            request_log=request_log,
            ledger=ledger,
            metrics=metrics,
            chat=ChatService(ledger, policy, tokens),
            router=ComplexityRouter(upstreams, tokens, embedder, current_catalog),
            usage=admin.usage,
            limiter=limiter,
            tools=GatewayTools(http),
            embedder=embedder,
            embedders=embedders,
            embeddings=EmbeddingsService(embedders, current_catalog, ledger, limiter),
            knowledge=knowledge,
            grounder=Grounder(knowledge, tokens),
            _catalog_mtime=catalog_mtime,
        )
        services.pipeline = Pipeline(
            gateways=services.gateways,
            catalog=current_catalog,
            upstreams=upstreams,
            tools=services.tools,
            router=services.router,
            grounder=services.grounder,
            limiter=limiter,
            chat=services.chat,
            embeddings=services.embeddings,
            ledger=ledger,
        )
        return services

    async def start(self) -> None:
        await self.http.start()
        await self.request_log.start()
        # after the log (indexing is billed) and the HTTP clients
        await self.knowledge.indexer.start()
        if self.settings.config:
            watch = self._watch_catalog(self.settings.config, self._catalog_mtime)
            self._watcher = asyncio.create_task(watch)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self._in_flight_sync = asyncio.create_task(self.metrics.sync_in_flight())

    async def _watch_catalog(self, path: str, last: int | None) -> None:
        """Reloads the catalog when its file changes; a bad file keeps the last good catalog."""
        while True:
            await asyncio.sleep(self.settings.catalog_poll_interval_s)
            current = _mtime(path)
            if current == last:
                continue
            last = current
            try:
                self.catalog = await asyncio.to_thread(Catalog.load, path)
            except CatalogError as exc:
                log.error("catalog not reloaded, keeping the previous one: %s", exc)
            else:
                log.info("catalog reloaded from %s: %d models", path, len(self.catalog.models()))
            read, self._catalog_read = self._catalog_read, asyncio.Event()
            read.set()

    def next_catalog_read(self) -> Awaitable[bool]:
        """Done when the watcher has next read the changed catalog file, whether it loaded it or
        kept the last good one. Take it before changing the file (as a test does), so that a
        read which comes quickly is not missed."""
        return self._catalog_read.wait()

    async def close(self) -> None:
        for task in (self._watcher, self._in_flight_sync):
            if task is not None:
                task.cancel()
        await self.knowledge.indexer.close()
        # the vector graphs' saved copies let the next start skip rebuilding them
        await asyncio.to_thread(self.knowledge.store.vectors.save_all)
        await self.request_log.close()
        await self.limiter.close()
        await self.http.close()
        await self.local.close()
        self.db.dispose()
