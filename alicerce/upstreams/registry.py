"""Turns a gateway (or a catalog id) into the upstream that serves it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from alicerce.catalog import AUTO_MODEL, Catalog, CatalogModel
from alicerce.errors import InvalidRequest, NotFound
from alicerce.security import check_upstream_url
from alicerce.upstreams.base import Upstream
from alicerce.upstreams.http import HttpClients, OpenAIHttpUpstream

if TYPE_CHECKING:
    from alicerce.gateways import Gateway


@dataclass(frozen=True, slots=True)
class Target:
    """An upstream to call and the catalog entry that prices it (None: bring your own, at
    `base_url`)."""

    upstream: Upstream
    model: CatalogModel | None
    base_url: str | None = None

    @property
    def name(self) -> str:
        """How logs name it: its catalog id, or a gateway's own endpoint by its host (and
        port), never its path or credentials."""
        if self.model is not None:
            return self.model.id
        netloc = urlsplit(self.base_url or "").netloc
        return netloc.rpartition("@")[2] or "endpoint"

    @property
    def label(self) -> str:
        """How metrics label it: its catalog id, or `endpoint` (a value users choose is no
        label)."""
        return self.model.id if self.model is not None else "endpoint"


@functools.lru_cache(maxsize=4096)
def _checked_endpoint_url(url: str, allow_private: bool) -> str:
    """`check_upstream_url` without DNS, a pure function of the URL: computed once per URL,
    not for every request (parsing it cost about 5 µs a request)."""
    return check_upstream_url(
        url, allow_private=allow_private, param="endpoint.base_url", resolve=False
    )


class UpstreamRegistry:
    def __init__(
        self,
        clients: HttpClients,
        catalog: Callable[[], Catalog],
        local: Upstream,
        *,
        allow_private_upstreams: bool,
    ) -> None:
        self._clients = clients
        self._catalog = catalog
        self._local = local
        self._allow_private = allow_private_upstreams

    def targets(self, gateway: Gateway, model_id: str | None = None) -> list[Target]:
        """What may serve the gateway, in order: its upstream (or `model_id`, the model
        `@auto` routing chose), then its fallbacks."""
        spec = gateway.spec
        primary = self.for_model(model_id) if model_id else self.for_gateway(gateway)
        return [primary] + [self.for_model(m) for m in spec.fallbacks]

    def for_gateway(self, gateway: Gateway) -> Target:
        spec = gateway.spec
        if spec.endpoint is not None:
            assert self._clients.guarded is not None
            # Literal internal IPs are refused here; names are checked again at connect time.
            base_url = _checked_endpoint_url(spec.endpoint.base_url, self._allow_private)
            upstream = OpenAIHttpUpstream(
                self._clients.guarded,
                base_url=base_url,
                model=spec.endpoint.model,
                api_key=gateway.endpoint_api_key,
                headers=spec.endpoint.headers,
                label=f"'{spec.endpoint.model}' of gateway {gateway.slug}",
                slots=self._clients.slots,
                deadlines=self._clients.stream_deadlines,
            )
            return Target(upstream, None, base_url)
        assert spec.model is not None
        if spec.model == AUTO_MODEL:  # routed requests name their tier; this is the default
            assert spec.routing is not None
            tiers = spec.routing.tiers
            return self.for_model(tiers[len(tiers) // 2])
        return self.for_model(spec.model)

    def for_model(self, model_id: str) -> Target:
        model = self._catalog().get(model_id)
        if model is None:
            raise NotFound(
                f"The model {model_id!r} is not in this server's catalog.",
                param="model",
                code="model_not_found",
            )
        if model.provider.kind == "local":
            return Target(self._local, model)
        if model.provider.base_url is None:
            raise InvalidRequest(f"The model {model_id!r} has no provider URL.", param="model")
        assert self._clients.trusted is not None
        upstream = OpenAIHttpUpstream(
            self._clients.trusted,
            base_url=model.provider.base_url,
            model=model.upstream_model,
            api_key=model.provider.api_key,
            headers=model.provider.headers,
            label=f"'{model.id}'",
            slots=self._clients.slots,
            deadlines=self._clients.stream_deadlines,
        )
        return Target(upstream, model)
