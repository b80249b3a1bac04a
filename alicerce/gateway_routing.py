"""The `routing` of an `@auto` gateway (SPEC section 2): its router, tiers, thresholds and
rules, as operators write them. `inference/routing.py` acts on them."""

from __future__ import annotations

from pydantic import Field

from alicerce.catalog import LOCAL_ROUTER
from alicerce.validation import Strict


class RoutingRule(Strict):
    """Sends every request that meets all its conditions to `tier`, without asking the router."""

    tier: str
    tools: bool | None = None  # the request offers tools (the client's or the gateway's)
    min_tokens: int | None = Field(default=None, ge=1)  # its prompt is at least this long
    images: bool | None = None  # it carries an image


class Routing(Strict):
    """`@auto`: the router rates each request's difficulty, a score in [0, 1]; `thresholds`
    (one fewer than `tiers`, ascending; evenly spread when unset) cut the scores into the
    tiers, the cheapest first. `rules` come first: the first that matches picks the tier."""

    router: str = LOCAL_ROUTER
    tiers: list[str] = Field(min_length=1, max_length=10)
    thresholds: list[float] | None = None
    rules: list[RoutingRule] = Field(default_factory=list, max_length=20)

    def cuts(self) -> list[float]:
        if self.thresholds is not None:
            return self.thresholds
        n = len(self.tiers)
        return [i / n for i in range(1, n)]

    def problem(self) -> tuple[str, str] | None:
        """`(param, message)` of what is inconsistent in this routing, if anything."""
        if self.thresholds is not None:
            if len(self.thresholds) != len(self.tiers) - 1:
                return "routing.thresholds", "give one threshold fewer than there are tiers"
            if any(not 0 < t < 1 for t in self.thresholds) or self.thresholds != sorted(
                set(self.thresholds)
            ):
                return "routing.thresholds", "thresholds must be ascending, each between 0 and 1"
        for i, rule in enumerate(self.rules):
            if rule.tier not in self.tiers:
                return f"routing.rules.{i}.tier", f"{rule.tier!r} is not one of routing.tiers"
            if rule.tools is None and rule.min_tokens is None and rule.images is None:
                return f"routing.rules.{i}", "a rule needs a condition: tools, min_tokens or images"
        return None
