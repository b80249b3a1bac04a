"""`@auto` routing through the `openai` SDK: the local router (the default), the LLM router,
rules that force a tier, thresholds, and what every routed answer says (`generation_context.
routing`, the header, the line items, the request log); and the classifier's pure parts."""

from __future__ import annotations

from typing import Any

import pytest

from alicerce import complexity
from alicerce.catalog import LOCAL_ROUTER
from alicerce.inference.routing import complexity_of_tier, tier_index
from tests.conftest import Account

TIERS = ["@mock/plain", "@mock/echo", "@mock/priced"]
EASY = "hi, thanks a lot!"
HARD = (
    "Prove that there are infinitely many primes of the form 4k+3, then design an efficient "
    "algorithm to list them below 10^9 and analyse its complexity step by step."
)
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def _routed(account: Account, prompt: str, *, stream: bool = False, **extra: Any) -> Any:
    """`(headers, generation_context, request id)` of one answer through the SDK."""
    client = account.openai()
    request: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}], **extra}
    if stream:
        with client.chat.completions.with_streaming_response.create(stream=True, **request) as raw:
            chunks = list(raw.parse())
            headers = raw.headers
        last = chunks[-1]
        return headers, last.model_extra["generation_context"], last.id
    raw = client.chat.completions.with_raw_response.create(**request)
    answer = raw.parse()
    return raw.headers, answer.model_extra["generation_context"], answer.id


def _skus(context: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["sku"]: item for item in context["generated_usage"]}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("prompt", "tier", "digits"), [(EASY, "@mock/plain", {1, 2}), (HARD, "@mock/priced", {4, 5})]
)
def test_the_local_router_sends_easy_prompts_small_and_hard_ones_large(
    account: Account, prompt: str, tier: str, digits: set[int], stream: bool
) -> None:
    gateway = account.create_gateway(model="@auto", routing={"tiers": TIERS})
    assert gateway["routing"]["router"] == LOCAL_ROUTER  # the default
    headers, context, request_id = _routed(account, prompt, stream=stream, model=gateway["id"])
    assert headers["x-alicerce-model"] == tier
    assert int(headers["x-alicerce-routed-complexity"]) in digits
    routing = context["routing"]
    assert routing["router"] == LOCAL_ROUTER
    assert routing["tier"] == routing["model"] == tier
    assert routing["complexity"] == int(headers["x-alicerce-routed-complexity"])
    assert 0 <= routing["score"] <= 1 and routing["rule"] is None
    items = _skus(context)
    routing_in = items["inference.resolving.routing_complexity.in"]
    assert routing_in["quantity"] > 0  # the e5 tokens it read, at the (free) catalog price
    assert routing_in["amount"] == 0 and routing_in["unit_price"] == 0
    assert items["inference.resolving.routing_complexity.out"]["quantity"] == 0
    assert "inference.chat_completions.in" in items
    row = account.alicerce.wait_for_record(request_id)
    assert row.routing == routing  # the request log keeps it
    with account.http() as client:
        listed = client.get(f"/requests/{request_id}").json()
    assert listed["routing"] == routing


@pytest.mark.parametrize("stream", [False, True])
def test_a_rule_forces_its_tier_whatever_the_router_thinks(account: Account, stream: bool) -> None:
    gateway = account.create_gateway(
        model="@auto",
        routing={
            "tiers": TIERS,
            "rules": [
                {"tools": True, "tier": "@mock/priced"},
                {"min_tokens": 400, "tier": "@mock/echo"},
            ],
        },
    )
    headers, context, _ = _routed(account, EASY, stream=stream, model=gateway["id"], tools=[TOOL])
    assert headers["x-alicerce-model"] == "@mock/priced"
    assert headers["x-alicerce-routed-complexity"] == "5"
    assert context["routing"] | {"score": None} == {
        "router": LOCAL_ROUTER,
        "complexity": 5,
        "score": None,
        "tier": "@mock/priced",
        "model": "@mock/priced",
        "rule": 0,
    }
    items = _skus(context)  # routing still shows on the bill, at zero: a rule decided
    assert items["inference.resolving.routing_complexity.in"]["quantity"] == 0

    headers, context, _ = _routed(account, "hello " * 500, model=gateway["id"])
    assert headers["x-alicerce-model"] == "@mock/echo"
    assert context["routing"]["rule"] == 1
    headers, _, _ = _routed(account, EASY, model=gateway["id"])  # no rule matches
    assert headers["x-alicerce-model"] == "@mock/plain"


def test_thresholds_steer_the_cost_quality_trade(account: Account) -> None:
    """The same prompt goes to a cheaper tier when the cuts are above its score."""
    medium = "Explain how a refrigerator keeps food cold."
    default = account.create_gateway(model="@auto", routing={"tiers": TIERS})
    headers, context, _ = _routed(account, medium, model=default["id"])
    score = context["routing"]["score"]
    assert headers["x-alicerce-model"] == "@mock/echo" and 0 < score < 1
    frugal = account.create_gateway(
        model="@auto", routing={"tiers": TIERS, "thresholds": [(1 + score) / 2, (3 + score) / 4]}
    )
    headers, context, _ = _routed(account, medium, model=frugal["id"])
    assert headers["x-alicerce-model"] == "@mock/plain" and context["routing"]["score"] == score
    generous = account.create_gateway(
        model="@auto", routing={"tiers": TIERS, "thresholds": [score / 4, score / 2]}
    )
    headers, _, _ = _routed(account, medium, model=generous["id"])
    assert headers["x-alicerce-model"] == "@mock/priced"


@pytest.mark.parametrize("stream", [False, True])
def test_the_llm_router_is_still_asked_for_a_digit_and_billed(
    account: Account, stream: bool
) -> None:
    gateway = account.create_gateway(
        model="@auto", routing={"router": "@mock/router", "tiers": TIERS}
    )
    headers, context, _ = _routed(account, "HARD: prove it", stream=stream, model=gateway["id"])
    assert headers["x-alicerce-model"] == "@mock/priced"
    assert context["routing"] == {
        "router": "@mock/router",
        "complexity": 5,
        "score": 1.0,
        "tier": "@mock/priced",
        "model": "@mock/priced",
        "rule": None,
    }
    items = _skus(context)
    assert items["inference.resolving.routing_complexity.in"]["quantity"] > 0
    assert items["inference.resolving.routing_complexity.in"]["amount"] > 0
    assert items["inference.resolving.routing_complexity.out"]["quantity"] > 0


def test_a_router_that_fails_sends_to_the_middle_tier_and_says_so(account: Account) -> None:
    gateway = account.create_gateway(
        model="@auto", routing={"router": "@mock/down", "tiers": TIERS}
    )
    headers, context, _ = _routed(account, "anything", model=gateway["id"])
    assert headers["x-alicerce-model"] == "@mock/echo"
    assert context["routing"]["fallback"] is True and context["routing"]["complexity"] == 3


def test_unrouted_answers_carry_no_routing(account: Account) -> None:
    gateway = account.create_gateway(model="@mock/plain")
    _, context, _ = _routed(account, EASY, model=gateway["id"])
    assert "routing" not in context


@pytest.mark.parametrize(
    ("routing", "param"),
    [
        ({"tiers": TIERS, "thresholds": [0.5]}, "routing.thresholds"),
        ({"tiers": TIERS, "thresholds": [0.7, 0.3]}, "routing.thresholds"),
        ({"tiers": TIERS, "thresholds": [0.0, 0.5]}, "routing.thresholds"),
        (
            {"tiers": TIERS, "rules": [{"tools": True, "tier": "@mock/agent"}]},
            "routing.rules.0.tier",
        ),
        ({"tiers": TIERS, "rules": [{"tier": "@mock/plain"}]}, "routing.rules.0"),
        ({"tiers": TIERS, "rules": [{"min_tokens": 0, "tier": "@mock/plain"}]}, "routing"),
        ({"router": "@mock/nope", "tiers": TIERS}, "routing.router"),
    ],
)
def test_bad_routing_is_refused_naming_the_field(
    account: Account, routing: dict[str, Any], param: str
) -> None:
    with account.http() as client:
        response = client.post(
            "/gateways", json={"name": "bad", "model": "@auto", "routing": routing}
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith(param)


# -- the pure parts -------------------------------------------------------------------------


def test_scores_fall_into_tiers_by_the_cuts() -> None:
    assert [tier_index(s, [1 / 3, 2 / 3]) for s in (0.0, 0.33, 0.34, 0.9, 1.0)] == [0, 0, 1, 2, 2]
    assert [complexity_of_tier(i, 3) for i in range(3)] == [1, 3, 5]
    assert complexity_of_tier(0, 1) == 1


def _features(text: str) -> dict[str, float]:
    return dict(zip(complexity.FEATURES, complexity.features(text), strict=True))


def test_features_see_code_math_steps_and_language() -> None:
    code = _features("```python\ndef f(x):\n    return x\n```")
    assert code["code"] > 0 and code["lines"] > 0
    math = _features("Prove the theorem, then derive x^2")
    assert math["math"] > 0 and math["steps"] > 0
    pt = _features("Qual é a capital do Brasil? Não sei.")
    assert pt["pt"] == 1.0 and pt["questions"] > 0


def test_a_long_prompt_is_embedded_by_its_head_and_tail() -> None:
    text = "start " + "middle " * 2000 + "end"
    seen = complexity.embedded_text(text)
    assert len(seen) <= complexity.EMBED_CHARS + 3
    assert seen.startswith("start") and seen.endswith("end")


def test_training_and_evaluation_sets_are_apart_and_labelled() -> None:
    training = complexity.load_examples(complexity.TRAIN)
    evaluation = complexity.load_examples(complexity.EVAL)
    assert len(evaluation) >= 200
    assert not {t for t, _, _ in training} & {t for t, _, _ in evaluation}
    for rows in (training, evaluation):
        assert {(tier, lang) for _, tier, lang in rows} == {
            (tier, lang) for tier in complexity.TIERS for lang in ("en", "pt")
        }


def test_the_shipped_weights_fit_the_features() -> None:
    classifier = complexity.shipped()
    assert classifier.weights.shape == (384 + len(complexity.FEATURES), 3)


@pytest.mark.slow
def test_the_shipped_router_meets_its_targets_on_the_held_out_set() -> None:
    """Issue 16's bar, on `eval.jsonl` (never trained on): at least 90% of the easy and hard
    prompts on exactly their own tier, and at most 5% of the hard ones on the smallest."""
    from alicerce.embeddings import LocalE5Embedder

    evaluation = complexity.load_examples(complexity.EVAL)
    texts = [complexity.embedded_text(t) for t, _, _ in evaluation]
    vectors = LocalE5Embedder(threads=1).embed_sync(texts, kind="query").vectors
    classifier = complexity.shipped()
    tiers = [
        tier_index(classifier.judge(complexity.inputs(v, t)).score, [1 / 3, 2 / 3])
        for v, (t, _, _) in zip(vectors, evaluation, strict=True)
    ]
    truth = [complexity.TIERS.index(tier) for _, tier, _ in evaluation]
    extremes = [(t, p) for t, p in zip(truth, tiers, strict=True) if t != 1]
    assert sum(t == p for t, p in extremes) / len(extremes) >= 0.9
    hard = [p for t, p in zip(truth, tiers, strict=True) if t == 2]
    assert sum(p == 0 for p in hard) / len(hard) <= 0.05
