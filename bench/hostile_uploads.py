"""Peak memory of a real `alicerce serve` while it reads each hostile upload (issue 14).

Starts a server on a fresh SQLite database, loads the embedding model with one small document,
then for each case resets the server's peak RSS (`/proc/PID/clear_refs`), uploads the file,
waits for its final status and reads the kernel's high-water mark (`VmHWM`). It also times the
fairness case: account A's long document, then account B's one-liner.

    uv run --frozen python bench/hostile_uploads.py
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import Proc, free_port, wait_http
from tests import hostile_files as files

ROOT = Path(__file__).resolve().parent.parent
ROOT_KEY = "alc_bench_root_" + uuid.uuid4().hex
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CASES: list[tuple[str, Callable[[], bytes], str]] = [
    ("bomb.docx (1.07 GB of short paragraphs)", files.docx_bomb_short_paragraphs, DOCX),
    ("markup.docx (1 GB of empty runs)", files.docx_bomb_markup, DOCX),
    ("spaces.docx (1 GB mostly whitespace)", files.docx_bomb_whitespace, DOCX),
    ("node.docx (one 1.06 GB text node)", files.docx_one_huge_text_node, DOCX),
    ("entries.docx (5,000 entries)", files.docx_many_entries, DOCX),
    ("laughs.docx (billion laughs)", files.docx_billion_laughs, DOCX),
    ("pages.pdf (2,500 pages)", lambda: files.pdf_pages(2500), "application/pdf"),
    ("locked.pdf (encrypted)", files.pdf_encrypted, "application/pdf"),
    ("deep.html (1,000,000 levels)", files.deep_html, "text/html"),
    ("deep.json (100,000 levels)", files.deep_json, "application/json"),
    ("customers.csv (200,000 rows)", lambda: files.csv_rows(200_000), "text/csv"),
]


def start(workdir: Path) -> tuple[Proc, str]:
    import os

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALICERCE_")},
        "ALICERCE_DATABASE_URL": f"sqlite:///{workdir / 'alicerce.db'}",
        "ALICERCE_CREATE_DATABASE": "true",
        "ALICERCE_ROOT_KEY": ROOT_KEY,
        "ALICERCE_SECRET_KEY": "bench-secret",
        "ALICERCE_LOG_LEVEL": "warning",
    }
    port = free_port()
    argv = [sys.executable, "-m", "alicerce", "serve", "--port", str(port)]
    proc = Proc("alicerce", argv, env, ROOT, workdir / "serve.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, base + "/readyz")
    return proc, base


def status_kb(pid: int, field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def account(base: str) -> httpx.Client:
    root = httpx.Client(base_url=base + "/api/v1", headers={"authorization": f"Bearer {ROOT_KEY}"})
    made = root.post("/accounts", json={"name": "acct-" + uuid.uuid4().hex[:6]})
    key = made.raise_for_status().json()["admin_key"]
    return httpx.Client(
        base_url=base + "/api/v1", headers={"authorization": f"Bearer {key}"}, timeout=120
    )


def upload(client: httpx.Client, collection: str, name: str, data: bytes, media: str) -> str:
    response = client.post(
        f"/collections/{collection}/documents", files={"file": (name, data, media)}
    )
    return str(response.raise_for_status().json()["id"])


def wait(client: httpx.Client, collection: str, document: str, until: set[str]) -> dict[str, Any]:
    while True:
        found = client.get(f"/collections/{collection}/documents/{document}").json()
        if found["status"] in until:
            return found  # type: ignore[no-any-return]
        time.sleep(0.05)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start(Path(tmp))
        try:
            client = account(base)
            collection = client.post("/collections", json={"name": "kb"}).json()["id"]
            warm = upload(client, collection, "warm.txt", b"warm up the model", "text/plain")
            wait(client, collection, warm, {"ready", "failed"})
            warmed = status_kb(proc.pid, "VmRSS") / 1024
            print(f"server pid {proc.pid}, RSS after warm-up {warmed:.0f} MB")
            print(
                "| upload | size | server RSS before | peak RSS | seconds | final status: reason |"
            )
            print("| --- | --- | --- | --- | --- | --- |")
            for label, build, media in CASES:
                data = build()
                name = label.split(" ")[0]
                before = status_kb(proc.pid, "VmRSS") / 1024
                Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
                started = time.perf_counter()
                document = upload(client, collection, name, data, media)
                found = wait(client, collection, document, {"ready", "failed"})
                seconds = time.perf_counter() - started
                peak = status_kb(proc.pid, "VmHWM") / 1024
                reason = found["error"] or f"{found['chunks']} chunk(s)"
                print(
                    f"| {label} | {len(data) / 1e6:.1f} MB | {before:.0f} MB | {peak:.0f} MB | "
                    f"{seconds:.1f} | "
                    f"{found['status']}: {reason} |"
                )
            fairness(base)
        finally:
            proc.stop()


def fairness(base: str) -> None:
    a, b = account(base), account(base)
    a_collection = a.post("/collections", json={"name": "a"}).json()["id"]
    b_collection = b.post("/collections", json={"name": "b"}).json()["id"]
    started = time.perf_counter()
    big = upload(a, a_collection, "big.txt", files.long_text(150, seed=7), "text/plain")
    wait(a, a_collection, big, {"indexing"})
    sent = time.perf_counter()
    small = upload(b, b_collection, "one.txt", b"The Orbital Bakery opens at seven.", "text/plain")
    wait(b, b_collection, small, {"ready"})
    b_seconds = time.perf_counter() - sent
    done = wait(a, a_collection, big, {"ready", "failed"})
    a_seconds = time.perf_counter() - started
    print(
        f"\nfairness: A's document ({done['chunks']} chunks) {done['status']} after "
        f"{a_seconds:.1f} s; B's one-line document, sent while A's was indexing, ready after "
        f"{b_seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
