"""Alicerce side by side with the LiteLLM proxy, in front of the same canned upstream.

One command runs the whole suite on this machine and writes its section of BENCHMARKS.md:

    uv run --frozen python bench/gateway_bench.py

It starts the canned upstream, Alicerce (one worker, and two for the scaling figure) and the
LiteLLM proxy (one worker, in its own venv), then measures in alternating rounds — direct
upstream, Alicerce, LiteLLM, again and again — so that a noisy machine tilts both sides alike:
requests/s at 32 connections, latency at one connection (gateway minus direct), time to first
token of streams (gateway minus direct), and resident memory after load. When a target of issue 6
is missed it profiles Alicerce under load with py-spy. Results go to bench/results/*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import report
import servers
import spyprofile
import ttft
from servers import BENCH_DIR, REPO_DIR, Proc

WRK_SCRIPT = BENCH_DIR / "wrk_post.lua"
LITELLM_VERSION = "1.82.6"
PORTKEY_VERSION = "1.15.2"
ALICERCE_DEPS = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "aiohttp",
    "msgspec",
    "sqlalchemy",
    "pydantic",
)


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def ensure_wrk() -> str:
    """wrk's path, installing it from Debian's packages when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        log("wrk is missing; installing it with apt-get")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True)
        path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed and could not be installed")
    return path


def run_wrk(
    url: str,
    key: str | None,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One wrk run (one thread) with the POST script; the JSON its `done` hook prints."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    argv += ["-s", str(WRK_SCRIPT), url]
    env = {**os.environ, "BENCH_KEY": key or ""}
    if headers:
        env["BENCH_HEADERS"] = "\n".join(f"{name}: {value}" for name, value in headers.items())
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))  # type: ignore[no-any-return]
    raise RuntimeError(f"wrk printed no result:\n{out}")


def check_answers(
    targets: dict[str, tuple[str, str | None]], headers: dict[str, dict[str, str]]
) -> None:
    """One request to each target must come back with the canned answer."""
    body = {"model": servers.MODEL_NAME, "messages": [{"role": "user", "content": "Hi"}]}
    for name, (url, key) in targets.items():
        answer = servers.post_json(url, body, key, headers.get(name))
        content = answer["choices"][0]["message"]["content"]
        if "canned upstream" not in content:
            raise RuntimeError(f"{name} answered {answer!r}")


def machine_info(litellm_version: str) -> dict[str, Any]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": " ".join(wrk_version.split()[:2]) or "wrk",
        "alicerce_deps": {name: metadata.version(name) for name in ALICERCE_DEPS},
        "litellm_version": litellm_version,
        "load_before": _loadavg(),
        "alicerce_commit": _commit(),
    }


def _commit() -> str:
    """The commit benchmarked, noting uncommitted changes to the package."""
    git = ["git", "-C", str(REPO_DIR)]
    sha = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "alicerce"], capture_output=True)
    changes = " with uncommitted changes in alicerce/" if dirty.stdout.strip() else ""
    return sha.stdout.strip() + changes


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Suite:
    """The servers of one run and the rounds measured against them."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.targets: dict[str, tuple[str, str | None]] = {}  # name -> (URL, key)
        self.headers: dict[str, dict[str, str]] = {}  # name -> routing headers (Portkey's)
        self.servers: dict[str, Proc] = {}
        self.alicerce: servers.AlicerceSetup | None = None
        self.portkey_version = "not run"

    def start(self, litellm_venv: Path) -> None:
        upstream, base = servers.start_upstream(self.workdir, self.args.stream_gap_ms)
        self.procs.append(upstream)
        self.targets["direct"] = (base + "/chat/completions", None)
        log(f"canned upstream at {base}")
        self.alicerce = servers.setup_alicerce(self.workdir, base)
        self.alicerce.env.update(item.split("=", 1) for item in self.args.alicerce_env)
        for name, workers in (("alicerce", 1), ("alicerce-2w", 2)):
            if workers == 2 and self.args.skip_workers_2:
                continue
            proc, url = servers.start_alicerce(self.alicerce, workers)
            self.procs.append(proc)
            self.servers[name] = proc
            self.targets[name] = (url, self.alicerce.key)
            log(f"{proc.name} at {url}")
        if not self.args.skip_litellm:
            proc, url = servers.start_litellm(litellm_venv, self.workdir, base)
            self.procs.append(proc)
            self.servers["litellm"] = proc
            self.targets["litellm"] = (url, servers.LITELLM_MASTER_KEY)
            log(f"{proc.name} at {url}")
        if not self.args.skip_portkey:
            start_server, self.portkey_version = servers.ensure_portkey(
                self.args.portkey_prefix, PORTKEY_VERSION
            )
            proc, url = servers.start_portkey(start_server, self.workdir)
            self.procs.append(proc)
            self.servers["portkey"] = proc
            self.targets["portkey"] = (url, "sk-canned")
            headers = servers.portkey_headers(base)
            self.headers["portkey"] = {k: v for k, v in headers.items() if k != "authorization"}
            log(f"{proc.name} at {url}")
        check_answers(self.targets, self.headers)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def _present(self, *names: str) -> list[str]:
        return [n for n in names if n in self.targets]

    def warm_up(self) -> None:
        for name in self._present("alicerce", "litellm", "portkey", "alicerce-2w"):
            url, key = self.targets[name]
            run_wrk(url, key, self.args.connections, self.args.warmup, self.headers.get(name))
            ttft.run(url, key, self.args.warmup, 0, self.headers.get(name))

    def round(self, index: int) -> dict[str, dict[str, dict[str, Any]]]:
        """One round of every figure, targets alternating within each figure."""
        a = self.args
        result: dict[str, dict[str, dict[str, Any]]] = {"throughput": {}, "latency": {}, "ttft": {}}
        for name in self._present("direct", "alicerce", "litellm", "portkey", "alicerce-2w"):
            url, key = self.targets[name]
            wrk = run_wrk(url, key, a.connections, a.duration, self.headers.get(name))
            result["throughput"][name] = wrk
            log(
                f"round {index}: {name} {wrk['requests'] / (wrk['duration_us'] / 1e6):,.0f} rps "
                f"at {a.connections} connections"
            )
        for name in self._present("direct", "alicerce", "litellm", "portkey"):
            url, key = self.targets[name]
            wrk = run_wrk(url, key, 1, a.duration, self.headers.get(name))
            result["latency"][name] = wrk
            lat = wrk["latency_us"]
            log(f"round {index}: {name} p50 {lat['p50']} us, p99 {lat['p99']} us at 1 connection")
        for name in self._present("direct", "alicerce", "litellm", "portkey"):
            url, key = self.targets[name]
            measured = asdict(ttft.run(url, key, a.ttft_duration, 0.3, self.headers.get(name)))
            result["ttft"][name] = measured
            log(f"round {index}: {name} time to first token p50 {measured['ttft_p50_us']:.0f} us")
        return result

    def rss(self) -> dict[str, dict[str, float]]:
        """Summed RSS of each server's process tree, read from /proc."""
        out = {}
        for name, proc in self.servers.items():
            mib, count = servers.tree_rss_mib(proc.pid)
            out[name] = {"mib": round(mib, 1), "processes": count}
        return out

    def profile(self, output: Path, stream: bool) -> spyprofile.ProfileSummary:
        """py-spy on Alicerce's single worker while wrk holds 32 connections on it."""
        url, key = self.targets["alicerce"]
        pid = servers.python_pids(self.servers["alicerce"].pid)[0]
        seconds = self.args.profile_seconds
        argv = ["wrk", "-t1", f"-c{self.args.connections}", f"-d{round(seconds) + 3}s"]
        argv += ["-s", str(WRK_SCRIPT), url]
        env = {**os.environ, "BENCH_KEY": key or ""}
        if stream:
            env["BENCH_BODY"] = json.dumps(ttft.DEFAULT_BODY)
        load = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
        try:
            time.sleep(1)
            spyprofile.record(pid, seconds, output, rate=self.args.profile_rate)
        finally:
            load.wait(timeout=seconds + 30)
        return spyprofile.summarise(output)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Alicerce against the LiteLLM proxy on a canned upstream."
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--ttft-duration", type=float, default=6, help="seconds per TTFT run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=32, help="for the throughput figure")
    parser.add_argument(
        "--stream-gap-ms",
        type=float,
        default=1.0,
        help="the upstream's pause after its first content chunk",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="py-spy profile of Alicerce: when a target is missed, always, never",
    )
    parser.add_argument("--profile-seconds", type=float, default=10)
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--litellm-version", default=LITELLM_VERSION)
    parser.add_argument("--litellm-venv", type=Path, default=BENCH_DIR / ".venv-litellm")
    parser.add_argument("--skip-litellm", action="store_true", help="Alicerce and direct only")
    parser.add_argument("--skip-workers-2", action="store_true", help="no --workers 2 figure")
    parser.add_argument("--skip-portkey", action="store_true", help="no Portkey gateway")
    parser.add_argument(
        "--portkey-prefix",
        type=Path,
        default=Path("/tmp/alicerce-bench-portkey"),
        help="where npm installs @portkey-ai/gateway (never the project's tree)",
    )
    parser.add_argument(
        "--alicerce-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra setting for Alicerce's servers (repeat), for experiments",
    )
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--benchmarks-md", type=Path, default=REPO_DIR / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: write BENCHMARKS.md's section from a results file",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary working dir")
    return parser.parse_args(argv)


def profiles_wanted(args: argparse.Namespace, verdicts: list[report.Target]) -> list[str]:
    """Which loads to profile: `chat` for a missed non-streaming target, `stream` for TTFT."""
    if args.profile == "never":
        return []
    if args.profile == "always":
        return ["chat", "stream"]
    missed = {t.name for t in verdicts if not t.met}
    wanted = ["chat"] if missed - {report.TTFT_TARGET} else []
    return wanted + (["stream"] if report.TTFT_TARGET in missed else [])


def run(args: argparse.Namespace, meta: dict[str, Any], stamp: str) -> dict[str, Any]:
    """Start everything, measure the rounds, profile if wanted, stop everything."""
    workdir = Path(tempfile.mkdtemp(prefix="alicerce-bench-"))
    suite = Suite(args, workdir)
    profiles: dict[str, spyprofile.ProfileSummary] = {}
    try:
        suite.start(args.litellm_venv)
        meta["portkey_version"] = suite.portkey_version
        log("warming up")
        suite.warm_up()
        rounds = [suite.round(i + 1) for i in range(args.rounds)]
        rss = suite.rss()
        meta["load_after"] = _loadavg()
        summary = report.summarise(rounds, rss)
        verdicts = report.targets(summary)
        for kind in profiles_wanted(args, verdicts):
            output = args.results / f"alicerce-profile-{kind}-{stamp}.collapsed.txt"
            log(f"profiling Alicerce ({kind}) with py-spy into {output}")
            profiles[kind] = suite.profile(output, stream=kind == "stream")
            meta[f"profile_file_{kind}"] = str(output.relative_to(REPO_DIR))
        meta.update(profile_s=args.profile_seconds, profile_rate=args.profile_rate)
        assert suite.alicerce is not None
        meta["request_log_rows"] = servers.request_log_rows(suite.alicerce)
    finally:
        suite.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "meta": meta,
        "rounds": rounds,
        "summary": summary,
        "targets": [asdict(t) for t in verdicts],
        "profiles": {kind: asdict(p) for kind, p in profiles.items()},
    }


def render(path: Path, benchmarks_md: Path) -> None:
    """Rewrite the section from a results file, summarising its rounds and profiles again."""
    result = json.loads(path.read_text())
    old = result["summary"]
    rss = {t: s["rss"] for t, s in old.items() if isinstance(s, dict) and "rss" in s}
    result["summary"] = report.summarise(result["rounds"], rss)
    result["targets"] = [asdict(t) for t in report.targets(result["summary"])]
    for kind in result["profiles"]:
        collapsed = REPO_DIR / result["meta"][f"profile_file_{kind}"]
        result["profiles"][kind] = asdict(spyprofile.summarise(collapsed))
    report.write_section(benchmarks_md, report.markdown(result))
    log(f"wrote the gateway section of {benchmarks_md} from {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        render(args.render, args.benchmarks_md)
        return 0
    ensure_wrk()
    litellm_version = "not run"
    if not args.skip_litellm:
        log(f"preparing litellm[proxy]=={args.litellm_version} in {args.litellm_venv}")
        litellm_version = servers.ensure_litellm(args.litellm_venv, args.litellm_version)
    meta = machine_info(litellm_version)
    meta.update(
        rounds=args.rounds,
        duration_s=args.duration,
        ttft_duration_s=args.ttft_duration,
        connections=args.connections,
        stream_gap_ms=args.stream_gap_ms,
        alicerce_env=args.alicerce_env,
    )
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = run(args, meta, stamp)
    path = args.results / f"gateway-{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    log(f"results in {path}")
    for t in result["targets"]:
        log(f"{t['name']}: {t['value']} (goal {t['goal']}) {'met' if t['met'] else 'MISSED'}")
    if args.alicerce_env or args.skip_litellm:
        log("an experiment (--alicerce-env or --skip-litellm): BENCHMARKS.md left alone")
    elif not args.no_write:
        report.write_section(args.benchmarks_md, report.markdown(result))
        log(f"wrote the gateway section of {args.benchmarks_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
