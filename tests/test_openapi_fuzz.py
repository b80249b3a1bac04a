"""The API fuzzed from its own OpenAPI document (schemathesis's command line, against a real
`alicerce serve` of its own with the mock upstream as its catalog): every operation, with
inputs generated from its schema and mutated out of it, never answers 500 and answers what
the document says (status codes, content types, response schemas); the stateful phase chains
operations through the ids they return (create a collection, read it, patch it, delete it),
as a client would. Once with an account's admin key (every route but `/accounts`), once with
the root key (`/accounts`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import ROOT_KEY, Upstream, write_catalog
from tests.servers import ServerProcess

pytestmark = pytest.mark.slow

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
EXAMPLES = os.environ.get("ALICERCE_TEST_FUZZ_EXAMPLES", "20")  # per operation and phase


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[str]:
    """A server of its own: the root key's run creates and deletes accounts."""
    directory = tmp_path_factory.mktemp("fuzz")
    env = {
        "ALICERCE_DATABASE_URL": f"sqlite:///{directory / 'alicerce.db'}",
        "ALICERCE_CREATE_DATABASE": "true",
        "ALICERCE_ROOT_KEY": ROOT_KEY,
        "ALICERCE_SECRET_KEY": "fuzz-secret",
        "ALICERCE_CONFIG": str(write_catalog(directory, upstream)),
        "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
        "ALICERCE_KNOWLEDGE_INDEX_DIR": str(directory / "vectors"),
    }
    process = ServerProcess(env, log=directory / "serve.log").wait_ready(60)
    yield process.url
    process.stop()


def _fuzz(url: str, key: str, *selection: str, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    run = subprocess.run(
        [
            cli,
            "run",
            url + "/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            EXAMPLES,
            "--workers",
            "1",
            "--seed",
            "1",
            "--no-color",
            "--request-timeout",
            "30",
            *selection,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # its reports and cache stay out of the repository
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]


def test_no_operation_of_an_account_fails_or_breaks_its_document(
    server: str, tmp_path: Path
) -> None:
    with httpx.Client(headers={"authorization": f"Bearer {ROOT_KEY}"}) as root:
        account = root.post(server + "/api/v1/accounts", json={"name": "fuzzed"}).json()
    _fuzz(
        server, account["admin_key"], "--exclude-path-regex", "^/api/v1/accounts", tmp_path=tmp_path
    )


def test_no_operation_on_accounts_fails_or_breaks_its_document(server: str, tmp_path: Path) -> None:
    _fuzz(server, ROOT_KEY, "--include-path-regex", "^/api/v1/accounts", tmp_path=tmp_path)
