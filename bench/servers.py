"""The processes of the gateway benchmarks: the canned upstream, Alicerce, the LiteLLM proxy and
the Portkey gateway.

Each server runs in its own process group with its output in a log file, and `Proc.stop` ends the
whole group, so nothing is left behind when the suite ends or fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
MODEL_NAME = "bench"  # the gateway's name in Alicerce and the model_name in LiteLLM
UPSTREAM_MODEL = "canned-model"
LITELLM_MASTER_KEY = "sk-bench-master-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """A server process in its own process group, its output going to `log`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.name = name
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after `timeout`."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        with contextlib.suppress(ProcessLookupError):  # workers that outlived their parent
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=5)


def wait_http(proc: Proc, url: str, timeout: float = 90.0) -> None:
    """Wait until GET `url` answers 200, or fail with the process's last output."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not start:\n{proc.tail()}")
        time.sleep(0.2)


def post_json(
    url: str, body: dict[str, Any], key: str | None, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST `body`, return the decoded JSON answer (raises on HTTP errors)."""
    headers = {"content-type": "application/json", **(extra or {})}
    if key:
        headers["authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int) -> tuple[float, int]:
    """(summed RSS in MiB, number of processes) of `pid` and its descendants."""
    pids = process_tree(pid)
    return sum(rss_kib(p) for p in pids) / 1024, len(pids)


def python_pids(pid: int) -> list[int]:
    """The processes of the tree that run Python (the serving ones, for py-spy)."""
    result = []
    for p in process_tree(pid):
        try:
            exe = os.readlink(f"/proc/{p}/exe")
        except OSError:
            continue
        if "python" in Path(exe).name:
            result.append(p)
    return result


# -- the canned upstream ---------------------------------------------------------------------


def start_upstream(
    workdir: Path, stream_gap_ms: float, *extra: str, name: str = "upstream"
) -> tuple[Proc, str]:
    """The canned upstream (`extra`: its pace options); returns it and its OpenAI base URL
    (ending in /v1)."""
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "canned_upstream.py"), "--port", str(port)]
    argv += ["--stream-gap-ms", str(stream_gap_ms), *extra]
    proc = Proc(f"canned {name}", argv, dict(os.environ), workdir, workdir / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(proc, base + "/health", timeout=20)
    except RuntimeError:
        proc.stop()  # not left behind by a run that fails here
        raise
    return proc, base + "/v1"


# -- Alicerce --------------------------------------------------------------------------------


@dataclass
class AlicerceSetup:
    env: dict[str, str]
    workdir: Path
    db_path: Path
    key: str  # an inference key for the bench gateway


def _alicerce_cli(setup_env: dict[str, str], workdir: Path, *args: str, stdin: str = "") -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "alicerce", *args, "--json"],  # the API's JSON, for scripts
        env=setup_env,
        cwd=workdir,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"alicerce {' '.join(args)} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def setup_alicerce(workdir: Path, upstream_base: str) -> AlicerceSetup:
    """A fresh SQLite store with an account, the `bench` gateway and an inference key for it.

    The gateway brings its own endpoint (the canned upstream on loopback), which the operator
    allows with ALICERCE_ALLOW_PRIVATE_UPSTREAMS; the request log stays on, as in production.
    """
    db_path = workdir / "bench.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALICERCE_")},
        "ALICERCE_DATABASE_URL": f"sqlite:///{db_path}",
        "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
        "ALICERCE_LOG_LEVEL": "warning",
    }
    subprocess.run(  # makes the database (and prints a root key, not JSON)
        [sys.executable, "-m", "alicerce", "init"],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    account = _alicerce_cli(env, workdir, "accounts", "create", "bench")
    gateway = {
        "name": MODEL_NAME,
        "endpoint": {"base_url": upstream_base, "api_key": "sk-canned", "model": UPSTREAM_MODEL},
    }
    _alicerce_cli(env, workdir, "gateways", "create", account["id"], "-", stdin=json.dumps(gateway))
    key = _alicerce_cli(
        env, workdir, "keys", "create", account["id"], "--name", "bench", "--role", "inference"
    )
    return AlicerceSetup(env, workdir, db_path, key["key"])


def start_alicerce(
    setup: AlicerceSetup, workers: int, env: dict[str, str] | None = None, tag: str = ""
) -> tuple[Proc, str]:
    """`alicerce serve --workers N` (`env`: settings on top of the setup's); returns it and its
    chat completions URL."""
    port = free_port()
    argv = [sys.executable, "-m", "alicerce", "serve", "--port", str(port)]
    argv += ["--workers", str(workers)]
    log = setup.workdir / f"alicerce-{workers}w{tag}.log"
    env = {**setup.env, **(env or {})}
    proc = Proc(f"alicerce ({workers} workers{tag})", argv, env, setup.workdir, log)
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, base + "/healthz")
    return proc, base + "/api/v1/chat/completions"


def request_log_rows(setup: AlicerceSetup) -> int:
    """How many requests Alicerce recorded in its request log."""
    import sqlite3

    with sqlite3.connect(setup.db_path) as db:
        return int(db.execute("SELECT count(*) FROM request_log").fetchone()[0])


# -- LiteLLM ---------------------------------------------------------------------------------


def ensure_litellm(venv: Path, version: str) -> str:
    """A venv of its own with `litellm[proxy]==version` (never the project's lock); its version.

    Pinned: 1.82.7 and 1.82.8 were a credential-stealing supply-chain compromise (a
    `litellm_init.pth` that runs at every interpreter start), so the suite refuses such a file.
    """
    python = venv / "bin" / "python"
    installed = _litellm_version(python)
    if installed != version:
        if not python.exists():
            subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        spec = f"litellm[proxy]=={version}"
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(python), spec], check=True)
        installed = _litellm_version(python)
    if any(venv.glob("lib/python*/site-packages/litellm_init.pth")):
        raise RuntimeError(f"{venv} holds litellm_init.pth, the mark of a compromised release")
    return installed or "?"


def _litellm_version(python: Path) -> str | None:
    if not python.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


LITELLM_CONFIG = """\
model_list:
  - model_name: {model_name}
    litellm_params:
      model: openai/{upstream_model}
      api_base: {api_base}
      api_key: sk-canned
general_settings:
  master_key: {master_key}
litellm_settings:
  set_verbose: false
  telemetry: false
"""


def start_litellm(venv: Path, workdir: Path, upstream_base: str) -> tuple[Proc, str]:
    """The LiteLLM proxy, one worker, master key on, no database, no network look-ups."""
    config = workdir / "litellm.yaml"
    config.write_text(
        LITELLM_CONFIG.format(
            model_name=MODEL_NAME,
            upstream_model=UPSTREAM_MODEL,
            api_base=upstream_base,
            master_key=LITELLM_MASTER_KEY,
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VIRTUAL_ENV")},
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list at start
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",  # no .env loading
        "LITELLM_TELEMETRY": "False",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
        "DISABLE_ADMIN_UI": "True",
    }
    port = free_port()
    argv = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--num_workers", "1", "--telemetry", "False"]
    proc = Proc("litellm proxy", argv, env, workdir, workdir / "litellm.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, base + "/health/liveliness", timeout=180)
    return proc, base + "/v1/chat/completions"


# -- Portkey ---------------------------------------------------------------------------------

PORTKEY_PACKAGE = "@portkey-ai/gateway"


def ensure_portkey(prefix: Path, version: str) -> tuple[Path, str]:
    """`npm install @portkey-ai/gateway@version` under `prefix` (never the project's tree);
    the path of its `build/start-server.js` and the version installed."""
    package = prefix / "node_modules" / PORTKEY_PACKAGE
    installed = _npm_version(package)
    if installed != version:
        prefix.mkdir(parents=True, exist_ok=True)
        if not (prefix / "package.json").exists():
            (prefix / "package.json").write_text('{"private": true}\n')
        spec = f"{PORTKEY_PACKAGE}@{version}"
        subprocess.run(["npm", "install", "--silent", "--prefix", str(prefix), spec], check=True)
        installed = _npm_version(package)
    return package / "build" / "start-server.js", installed or "?"


def _npm_version(package: Path) -> str | None:
    manifest = package / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text())["version"])


def portkey_headers(upstream_base: str) -> dict[str, str]:
    """What routes a request through Portkey to the canned upstream (its OpenAI provider, at a
    custom host), with the upstream's key."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream_base,
        "authorization": "Bearer sk-canned",
    }


def start_portkey(start_server: Path, workdir: Path) -> tuple[Proc, str]:
    """The Portkey gateway (Node.js, one process), headless: no console, no cache, no logs."""
    port = free_port()
    argv = ["node", str(start_server), f"--port={port}", "--headless"]
    proc = Proc("portkey gateway", argv, dict(os.environ), workdir, workdir / "portkey.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, base + "/", timeout=60)
    return proc, base + "/v1/chat/completions"
