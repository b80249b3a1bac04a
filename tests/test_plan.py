"""Planning: what the upstream is sent, given the gateway and the client's request."""

from __future__ import annotations

import json

from alicerce.gateways import GatewaySpec
from alicerce.inference.plan import build_messages, plan_chat
from alicerce.inference.request import parse_chat_request


def _request(**body: object) -> object:
    body.setdefault("model", "g")
    body.setdefault("messages", [{"role": "user", "content": "Q"}])
    return parse_chat_request(json.dumps(body).encode())


def test_build_messages_merges_leading_system_messages_only() -> None:
    messages = [
        {"role": "developer", "content": "dev"},
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": "u1"},
        {"role": "system", "content": "late"},
    ]
    built = build_messages("ops", messages)
    assert built[0] == {"role": "system", "content": "ops\n\ndev\n\nsys"}
    assert built[1:] == messages[2:]
    assert build_messages("", [{"role": "user", "content": "u"}]) == [
        {"role": "user", "content": "u"}
    ]
    assert build_messages("", [{"role": "system", "content": "s"}]) == [
        {"role": "system", "content": "s"}
    ]


def test_plan_applies_overridable_rule_and_prefill() -> None:
    spec = GatewaySpec(
        name="g",
        model="@local/smollm2-135m",
        instructions="I",
        parameters={"temperature": 0.2, "stop": ["END"], "prefill": "Sure:"},
        overridable=["stop"],
    )
    plan = plan_chat(
        spec,
        _request(temperature=1.0, stop="X", stream=True, stream_options={"include_usage": True}),
    )
    assert plan.body["temperature"] == 0.2
    assert plan.body["stop"] == "X"
    assert plan.body["messages"][-1] == {"role": "assistant", "content": "Sure:"}
    assert plan.prefill == "Sure:"
    assert plan.include_usage is True
    assert "metadata" not in plan.body  # recorded, never sent upstream
