"""Hostile connections against a running `alicerce serve`: RSS and open file descriptors before
and after (issue 14, "Connection exhaustion").

    uv run --frozen python bench/connections.py --port 8000 --pid <the server's pid>

Three attacks, one after the other: `--slow` connections that send half a request line and
stay; `--big` connections that each send `--header-mb` of one unterminated header; and one
ordinary request while the slow ones are held (served, or refused at once with 503). The server's
RSS and descriptors are read from /proc before, at the peak and after the timeouts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(pid: int) -> dict[str, float]:
    return {"rss_mb": round(rss_mb(pid), 1), "fds": open_fds(pid)}


def ordinary(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return str(answer.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except OSError as exc:
        return type(exc).__name__


def slow(port: int, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /healthz HT")
        held.append(sock)
    return held


def big_header(port: int, megabytes: int, done: list[int], release: threading.Event) -> None:
    """Sends the header, then holds the connection until `release` (the server holds it too)."""
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-big: ")
            piece = b"a" * 65536
            while sent < megabytes * 1024 * 1024:
                sock.sendall(piece)
                sent += len(piece)
            done.append(sent)
            release.wait(60)
            return
    except OSError:
        pass
    done.append(sent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--slow", type=int, default=2000)
    parser.add_argument("--big", type=int, default=250)
    parser.add_argument("--header-mb", type=int, default=5)
    parser.add_argument("--settle-s", type=float, default=12.0)
    args = parser.parse_args()
    pid, port = args.pid, args.port
    report: dict[str, object] = {"before": sample(pid)}

    held = slow(port, args.slow)
    time.sleep(1)
    report["slow_held"] = sample(pid)
    report["ordinary_request_while_held"] = ordinary(port)
    time.sleep(args.settle_s)
    report["slow_after_timeout"] = sample(pid)
    closed = 0
    for sock in held:
        sock.setblocking(False)
        try:
            sock.recv(65536)  # the server's 408, or b"": it closed the connection
            closed += 1
        except BlockingIOError:
            pass  # still open
        except OSError:
            closed += 1
        sock.close()
    report["slow_closed_by_server"] = closed

    done: list[int] = []
    release = threading.Event()
    peak = {"rss_mb": 0.0, "fds": 0.0}
    threads = [
        threading.Thread(target=big_header, args=(port, args.header_mb, done, release))
        for _ in range(args.big)
    ]
    for thread in threads:
        thread.start()
    while len(done) < args.big:
        now = sample(pid)
        peak = {k: max(peak[k], now[k]) for k in peak}
        time.sleep(0.2)
    now = sample(pid)
    peak = {k: max(peak[k], now[k]) for k in peak}
    release.set()
    for thread in threads:
        thread.join()
    report["big_headers_peak"] = peak
    report["big_header_bytes_sent_mean_kb"] = round(sum(done) / max(1, len(done)) / 1024)
    time.sleep(args.settle_s)
    report["after"] = sample(pid)
    report["ordinary_request_after"] = ordinary(port)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
