"""Requests made through the API for the Overview and Requests pages to show: answers on a
priced catalog model (some streamed, some with metadata) and failures on a broken one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import openai

from tests.console.conftest import ConsoleAccount


@dataclass
class Traffic:
    answers: dict[str, Any]  # the gateway on `@mock/priced`
    broken: dict[str, Any]  # the gateway on `@mock/broken`
    key: dict[str, Any]  # the inference key that made the failing ones
    ids: list[str]  # every request's id, oldest first


def make_traffic(
    account: ConsoleAccount, *, answered: int = 5, streamed: int = 2, failed: int = 2
) -> Traffic:
    with account.api() as api:
        answers = api.post(
            "/gateways", json={"name": "support-bot", "model": "@mock/priced"}
        ).json()
        broken = api.post("/gateways", json={"name": "flaky", "model": "@mock/broken"}).json()
        key = api.post("/keys", json={"name": "web-app"}).json()
    base = account.server.url + "/api/v1"
    admin = openai.OpenAI(base_url=base, api_key=account.admin_key, max_retries=0)
    app = openai.OpenAI(base_url=base, api_key=key["key"], max_retries=0)
    ask = [{"role": "user", "content": "Where is my order?"}]
    ids = []
    for n in range(answered):
        answer = admin.chat.completions.create(
            model=answers["slug"], messages=ask, metadata={"ticket": f"T-{n}"}
        )
        ids.append(answer.id)
    for _ in range(streamed):
        stream = admin.chat.completions.create(model=answers["slug"], messages=ask, stream=True)
        ids.append(stream.response.headers["x-request-id"])
        list(stream)
    for _ in range(failed):
        try:
            app.chat.completions.create(model=broken["slug"], messages=ask)
        except openai.APIStatusError as err:
            ids.append(err.response.headers["x-request-id"])
    wait_for_log(account, len(ids))
    return Traffic(answers, broken, key, ids)


def wait_for_log(account: ConsoleAccount, count: int, timeout: float = 10) -> None:
    """Until the request log holds `count` records (it is written every 50 ms here)."""
    deadline = time.monotonic() + timeout
    with account.api() as api:
        while len(api.get("/requests", params={"limit": 1000}).json()["data"]) < count:
            assert time.monotonic() < deadline, "the request log never held every request"
            time.sleep(0.05)
