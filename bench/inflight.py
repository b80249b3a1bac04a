"""Requests in flight: Alicerce, the Portkey gateway and the LiteLLM proxy in front of a slow
upstream, under an open-loop load (issue 15).

    uv run --frozen python bench/inflight.py            # everything, ~15 minutes
    uv run --frozen python bench/inflight.py --only rates --rates 300,1000 --skip-litellm

What limits a gateway in front of real LLM APIs is how many requests it holds at once: an
upstream that answers in 1.5 s at 1,000 requests/s means 1,500 in flight. Scenarios, each
measuring the direct upstream in the same run:

- `rates`: at each rate, each target (direct, Alicerce with default settings, Portkey, LiteLLM)
  for `--duration` s against an upstream answering after `--latency-ms`: success, latency
  p50/p99/max (from each request's due time: `bench/openloop.py`), the target's CPU seconds
  and peak resident memory, and the generator's own lag and CPU.
- `overload`: Alicerce with `ALICERCE_MAX_REQUESTS_IN_FLIGHT=--bound` at a rate just past what
  that bound holds: the admitted requests keep the upstream's latency, the rest get 503 at once;
  `/metrics` counts them and the request log holds every admitted request.
- `streams`: `--streams` streams of `--chunks` chunks `--chunk-interval-ms` apart (2,000 of 400 at
  50 ms: 20 s each), opened over `--ramp` s, direct and through one Alicerce worker: every stream
  complete, each chunk's delay (arrival - the upstream's stamp) and the gaps between chunks,
  CPU per 1,000 relayed chunks, resident memory per open stream.
- `workers`: Alicerce `--workers 2` at the highest rates.

Results go to bench/results/inflight-*.json and BENCHMARKS.md's "Requests in flight" section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import inflight_report
import loopback_cost
import servers
from servers import BENCH_DIR, REPO_DIR, Proc

LITELLM_VERSION = "1.82.6"
PORTKEY_VERSION = "1.15.2"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def tree_cpu_s(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` and its descendants, from /proc."""
    user = system = 0
    for p in servers.process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime
    return user / CLOCK_TICKS, system / CLOCK_TICKS


class RssPeak:
    """Samples a process tree's resident memory every `interval` s; the peak and the last."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            mib, _ = servers.tree_rss_mib(self.pid)
            self.samples.append((time.monotonic() - start, mib))
            self.peak = max(self.peak, mib)
            self._stop.wait(self.interval)


class Target:
    """Something to load: its URL, key, headers and (except the upstream) its process."""

    def __init__(
        self,
        name: str,
        url: str,
        proc: Proc | None,
        key: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name, self.url, self.proc, self.key = name, url, proc, key
        self.headers = headers or {}


def generate(
    target: Target,
    rate: float,
    duration: float,
    args: argparse.Namespace,
    stream: bool = False,
    upstream: Proc | None = None,
) -> dict[str, Any]:
    """One open-loop run (bench/openloop.py in a process of its own) against `target`, with the
    target's CPU seconds (and the upstream's, given its process) and resident memory."""
    argv = [sys.executable, str(BENCH_DIR / "openloop.py"), "--url", target.url]
    argv += ["--rate", str(rate), "--duration", str(duration), "--timeout", str(args.timeout)]
    if target.key:
        argv += ["--key", target.key]
    for name, value in target.headers.items():
        if name == "authorization" and target.key:
            continue
        argv += ["--header", f"{name}: {value}"]
    if stream:
        argv += ["--stream", "--chunks", str(args.chunks), "--timeout", str(args.timeout + 30)]
    load_before = loadavg()
    pid = target.proc.pid if target.proc else None
    cpu0 = tree_cpu_s(pid) if pid else (0.0, 0.0)
    upstream_cpu0 = sum(tree_cpu_s(upstream.pid)) if upstream else 0.0
    rss0 = servers.tree_rss_mib(pid)[0] if pid else 0.0
    started = time.monotonic()
    if pid:
        with RssPeak(pid) as rss:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
    else:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-2000:]}")
    out = done.stdout
    result: dict[str, Any] = json.loads(out)
    result["wall_s"] = round(time.monotonic() - started, 2)
    result["load_before"] = load_before
    result["load_after"] = loadavg()
    if pid:
        user, system = tree_cpu_s(pid)
        result["target_cpu_s"] = round(user + system - sum(cpu0), 2)
        result["target_cpu_system_s"] = round(system - cpu0[1], 2)
        result["rss_before_mib"] = round(rss0, 1)
        result["rss_peak_mib"] = round(rss.peak, 1)
        result["rss_after_mib"] = round(servers.tree_rss_mib(pid)[0], 1)
        result["rss_samples"] = [(round(t, 2), round(m, 1)) for t, m in rss.samples[::4]]
    if upstream:
        result["upstream_cpu_s"] = round(sum(tree_cpu_s(upstream.pid)) - upstream_cpu0, 2)
    lat = result["latency_ms"] or {}
    log(
        f"{target.name} at {rate:g}/s{' (streams)' if stream else ''}: "
        f"{result['success']:.1%} ok, p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, "
        f"max {lat.get('max')} ms, cpu {result.get('target_cpu_s', '-')} s, "
        f"peak rss {result.get('rss_peak_mib', '-')} MiB, generator lag p99 "
        f"{result['lag_ms']['p99']} ms, load {result['load_after']}"
    )
    return result


def metrics_text(url: str) -> str:
    base = url.split("/api/v1/")[0]
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        return str(response.read().decode())


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The sum of a metric's samples whose label text contains `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not labels or labels in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.setup: servers.AlicerceSetup | None = None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def _upstream(self, *extra: str, name: str) -> tuple[Target, str]:
        proc, base = servers.start_upstream(self.workdir, 0, *extra, name=name)
        self.procs.append(proc)
        return Target("direct", base + "/chat/completions", None), base

    def _alicerce(
        self, base: str, workers: int = 1, env: dict[str, str] | None = None, tag: str = ""
    ) -> Target:
        if self.setup is None:
            self.setup = servers.setup_alicerce(self.workdir, base)
        else:  # the gateway's endpoint is the upstream of this scenario
            self.setup = servers.setup_alicerce(Path(tempfile.mkdtemp(dir=self.workdir)), base)
        proc, url = servers.start_alicerce(self.setup, workers, env, tag)
        self.procs.append(proc)
        name = "alicerce" if workers == 1 else f"alicerce-{workers}w"
        return Target(name + tag, url, proc, self.setup.key)

    def _warm(self, targets: list[Target]) -> None:
        for t in targets:
            if t.proc is not None:
                generate(t, 50, 2, self.args)

    def rates(self) -> dict[str, Any]:
        a = self.args
        direct, base = self._upstream("--latency-ms", str(a.latency_ms), name="slow-upstream")
        targets = [direct, self._alicerce(base)]
        main_setup = self._setup()
        # main's default pool, for the figure of the issue: a queue in front of 256 connections
        old_pool = {"ALICERCE_UPSTREAM_POOL_SIZE": "256"}
        targets.append(self._alicerce(base, env=old_pool, tag="-pool-256"))
        if not a.skip_portkey:
            proc, url = servers.start_portkey(a.portkey_start, self.workdir)
            self.procs.append(proc)
            targets.append(Target("portkey", url, proc, headers=servers.portkey_headers(base)))
        if not a.skip_litellm:
            proc, url = servers.start_litellm(a.litellm_venv, self.workdir, base)
            self.procs.append(proc)
            targets.append(Target("litellm", url, proc, servers.LITELLM_MASTER_KEY))
        self._warm(targets)
        runs: dict[str, dict[str, Any]] = {}
        for rate in a.rates:
            runs[f"{rate:g}"] = {
                t.name: generate(t, rate, a.duration, a)
                for t in targets
                if t.name in ("direct", "alicerce")
                or (rate in a.competitor_rates and t.name != "alicerce-pool-256")
                or (rate == a.rates[0] and t.name == "alicerce-pool-256")
            }
        time.sleep(1.5)
        rows = servers.request_log_rows(main_setup)
        self.stop()
        return {"runs": runs, "alicerce_request_log_rows": rows}

    def overload(self) -> dict[str, Any]:
        a = self.args
        direct, base = self._upstream("--latency-ms", str(a.latency_ms), name="slow-upstream")
        env = {"ALICERCE_MAX_REQUESTS_IN_FLIGHT": str(a.bound)}
        target = self._alicerce(base, env=env, tag=f"-bound-{a.bound}")
        self._warm([target])
        rate = a.overload_rate or round(a.bound / (a.latency_ms / 1000) * 1.25)
        time.sleep(1.5)  # the warm-up's last request log batch
        before = metrics_text(target.url)
        rows0 = servers.request_log_rows(self._setup())
        runs = {
            "direct": generate(direct, rate, a.duration, a),
            target.name: generate(target, rate, a.duration, a),
        }
        time.sleep(1.5)  # the request log's last batch
        after = metrics_text(target.url)
        shed_metric = metric_value(
            after, "alicerce_requests_shed_total", 'reason="in_flight"'
        ) - metric_value(before, "alicerce_requests_shed_total", 'reason="in_flight"')
        rows = servers.request_log_rows(self._setup()) - rows0
        measured = runs[target.name]
        admitted = measured["requests"] - measured["statuses"].get("503", 0)
        self.stop()
        return {
            "rate": rate,
            "bound": a.bound,
            "runs": runs,
            "shed_counted_in_metrics": shed_metric,
            "request_log_rows": rows,
            "admitted": admitted,
        }

    def _setup(self) -> servers.AlicerceSetup:
        assert self.setup is not None
        return self.setup

    def streams(self) -> dict[str, Any]:
        a = self.args
        pace = ["--chunks", str(a.chunks), "--chunk-interval-ms", str(a.chunk_interval_ms)]
        direct, base = self._upstream(*pace, name="paced-upstream")
        upstream = self.procs[-1]
        target = self._alicerce(base)
        generate(target, 20, 1, a, stream=True)  # warm-up: a few whole streams
        sizes: dict[str, Any] = {}
        for count in a.streams:
            rate = count / a.ramp
            sizes[str(count)] = {
                "streams": count,
                "rate": rate,
                "runs": {
                    "direct": generate(direct, rate, a.ramp, a, stream=True, upstream=upstream),
                    target.name: generate(target, rate, a.ramp, a, stream=True, upstream=upstream),
                },
            }
        time.sleep(1.5)
        rows = servers.request_log_rows(self._setup())
        self.stop()
        loopback = loopback_cost.measure()
        return {"sizes": sizes, "request_log_rows": rows, "loopback": loopback}

    def workers(self) -> dict[str, Any]:
        a = self.args
        direct, base = self._upstream("--latency-ms", str(a.latency_ms), name="slow-upstream")
        targets = [direct, self._alicerce(base, workers=2)]
        self._warm(targets)
        runs = {
            f"{r:g}": {t.name: generate(t, r, a.duration, a) for t in targets}
            for r in a.worker_rates
        }
        self.stop()
        return {"runs": runs}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=("rates", "overload", "streams", "workers"),
        help="run only these scenarios (repeat)",
    )
    parser.add_argument("--rates", default="300,1000,1500", help="requests/s, comma-separated")
    parser.add_argument(
        "--competitor-rates", default="300,1000", help="the rates Portkey and LiteLLM run at"
    )
    parser.add_argument("--worker-rates", default="1000,2000")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per run")
    parser.add_argument("--latency-ms", type=float, default=1500, help="the upstream's")
    parser.add_argument("--timeout", type=float, default=60, help="a request's, in the client")
    parser.add_argument("--bound", type=int, default=500, help="overload: requests in flight")
    parser.add_argument("--overload-rate", type=float, default=0, help="default: 1.25 x bound")
    parser.add_argument("--streams", default="1000,2000", help="concurrent streams, per run")
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--chunk-interval-ms", type=float, default=50)
    parser.add_argument("--ramp", type=float, default=4, help="seconds to open the streams")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-portkey", action="store_true")
    parser.add_argument("--litellm-venv", type=Path, default=Path("/tmp/alicerce-bench-litellm"))
    parser.add_argument("--portkey-prefix", type=Path, default=Path("/tmp/alicerce-bench-portkey"))
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--benchmarks-md", type=Path, default=REPO_DIR / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        nargs="+",
        help="measure nothing: write the section from results files (merged)",
    )
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r]
    args.worker_rates = [float(r) for r in args.worker_rates.split(",") if r]
    args.streams = [int(n) for n in args.streams.split(",") if n]
    args.competitor_rates = [float(r) for r in args.competitor_rates.split(",") if r]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        merged: dict[str, Any] = {}
        for path in args.render:
            data = json.loads(path.read_text())
            merged.setdefault("meta", data["meta"])
            merged.update({k: v for k, v in data.items() if k != "meta"})
        inflight_report.write_section(args.benchmarks_md, inflight_report.markdown(merged))
        return 0
    wanted = args.only or ["rates", "overload", "streams", "workers"]
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "load_before": loadavg(),
        "latency_ms": args.latency_ms,
        "chunks": args.chunks,
        "chunk_interval_ms": args.chunk_interval_ms,
        "duration_s": args.duration,
        "ulimit_n": subprocess.run(
            ["sh", "-c", "ulimit -n"], capture_output=True, text=True
        ).stdout.strip(),
        "scenarios": wanted,
    }
    if "rates" in wanted and not args.skip_litellm:
        meta["litellm_version"] = servers.ensure_litellm(args.litellm_venv, LITELLM_VERSION)
    if "rates" in wanted and not args.skip_portkey:
        args.portkey_start, meta["portkey_version"] = servers.ensure_portkey(
            args.portkey_prefix, PORTKEY_VERSION
        )
    git = ["git", "-C", str(REPO_DIR)]
    meta["alicerce_commit"] = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    workdir = Path(tempfile.mkdtemp(prefix="alicerce-inflight-"))
    bench = Bench(args, workdir)
    result: dict[str, Any] = {"meta": meta}
    try:
        for scenario in wanted:
            log(f"scenario {scenario}")
            result[scenario] = getattr(bench, scenario)()
    finally:
        bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["load_after"] = loadavg()
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results / f"inflight-{stamp}.json"
    path.write_text(json.dumps(result, indent=1))
    log(f"results in {path}")
    if not args.no_write and set(wanted) == {"rates", "overload", "streams", "workers"}:
        inflight_report.write_section(args.benchmarks_md, inflight_report.markdown(result))
        log(f"wrote the in-flight section of {args.benchmarks_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
