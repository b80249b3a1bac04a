"""BENCHMARKS.md's "Requests in flight" section, from a results file of bench/inflight.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

START, END = "<!-- inflight:start -->", "<!-- inflight:end -->"
HEADING = "## Requests in flight: slow upstreams and long streams (issue 15)"
COMMAND = "uv run --frozen python bench/inflight.py"
NAMES = {
    "direct": "upstream directly",
    "alicerce": "Alicerce, default settings",
    "alicerce-2w": "Alicerce `--workers 2`",
    "alicerce-pool-256": "Alicerce, pool of 256 (main's default): 503 past it, not a queue",
    "portkey": "Portkey gateway",
    "litellm": "LiteLLM proxy",
}


def _ms(value: Any) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def _ms2(value: Any) -> str:
    return "—" if value is None else f"{value:,.2f} ms"


def _cpu(cpu: float | None, requests: int) -> str:
    if cpu is None:
        return "—"
    return f"{cpu:.1f} s ({cpu / max(requests, 1) * 1e6:,.0f} µs/request)"


def _row(name: str, run: dict[str, Any]) -> str:
    lat = run.get("latency_ms") or {}
    failed = {**run.get("errors", {})}
    for status, count in run.get("statuses", {}).items():
        if status != "200":
            failed[status] = count
    fails = ", ".join(f"{k}: {v:,}" for k, v in sorted(failed.items())) or "none"
    cpu = run.get("target_cpu_s")
    rss = run.get("rss_peak_mib")
    return (
        f"| {NAMES.get(name, name)} | {run['success']:.1%} | {_ms(lat.get('p50'))} | "
        f"{_ms(lat.get('p99'))} | {_ms(lat.get('max'))} | "
        f"{_cpu(cpu, run['requests'])} | "
        f"{'—' if rss is None else f'{rss:.0f} MiB'} | "
        f"{fails} | {run['lag_ms']['p99']:.0f} ms, {run['generator_cpu_s']:.1f} s | "
        f"{run['load_before']} |"
    )


HEADER = [
    "| target | success | p50 | p99 | max | target CPU | peak RSS | failed | generator lag p99, "
    "CPU | load average before |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
]


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"Measured {meta['date']} with `{COMMAND}` at `{meta.get('alicerce_commit', '?')}` on "
        f"{meta['nproc']} cores shared by the gateway, the upstream and the load generator "
        f"(`ulimit -n` {meta.get('ulimit_n')}); load average {meta['load_before']} before, "
        f"{meta.get('load_after', '?')} after. Every run: one gateway worker unless said, an "
        f"open-loop load (`bench/openloop.py`: request i is due at t0 + i/rate and its latency "
        f"counts from then), {meta['duration_s']:g} s of sending, a request that has no answer "
        "after 60 s counts as failed.",
    ]
    if "rates" in result:
        lines += ["", f"### Non-streaming, upstream answering after {meta['latency_ms']:g} ms", ""]
        lines += [
            "Portkey " + meta.get("portkey_version", "not run") + " (Node.js, one process), "
            "LiteLLM " + meta.get("litellm_version", "not run") + " (`--num_workers 1`, no "
            "database). Target CPU is the seconds its processes used over the run (sending and "
            "draining); generator lag is how late requests left the generator (its "
            "schedule kept) and its CPU.",
        ]
        for rate, runs in result["rates"]["runs"].items():
            in_flight = float(rate) * meta["latency_ms"] / 1000
            lines += ["", f"**{float(rate):,.0f} requests/s** (≈{in_flight:,.0f} in flight)", ""]
            lines += HEADER + [_row(name, run) for name, run in runs.items()]
        rows = result["rates"].get("alicerce_request_log_rows")
        if rows is not None:
            lines += [
                "",
                f"Alicerce's request log holds {rows:,} rows after these runs "
                "(warm-up included): every request it answered.",
            ]
    if "overload" in result:
        o = result["overload"]
        run = o["runs"][next(n for n in o["runs"] if n != "direct")]
        shed = run["shed_latency_ms"] or {}
        lines += [
            "",
            f"### Just past capacity: `ALICERCE_MAX_REQUESTS_IN_FLIGHT={o['bound']}`, "
            f"{o['rate']:,.0f} requests/s",
            "",
            f"{o['rate']:,.0f} requests/s at {meta['latency_ms']:g} ms want "
            f"{o['rate'] * meta['latency_ms'] / 1000:,.0f} in flight, past the bound of "
            f"{o['bound']:,}: the worker admits what it can hold and answers the rest 503 "
            "`too_many_requests_in_flight` with `retry-after: 1` at once, instead of queueing "
            "them (the success column counts only 200s).",
            "",
            *HEADER,
            _row("direct", o["runs"]["direct"]),
            _row(f"Alicerce, bound {o['bound']:,}", run),
            "",
            f"Shed: {run['statuses'].get('503', 0):,} requests, answered in "
            f"{_ms2(shed.get('p50'))} (p50), {_ms2(shed.get('p99'))} (p99); "
            f'`alicerce_requests_shed_total{{reason="in_flight"}}` rose by '
            f"{o['shed_counted_in_metrics']:,.0f}. Admitted: {o['admitted']:,}; the request log "
            f"gained {o['request_log_rows']:,} rows (every admitted request, none of the shed).",
        ]
    if "streams" in result:
        loopback = result["streams"].get("loopback")
        if loopback:
            lines += [
                "",
                "On this machine one 250-byte write over TCP loopback costs the writer "
                f"{loopback['send_waking_reader_us']:g} µs of CPU when it wakes a reader asleep "
                f"in `recv` and {loopback['send_back_to_back_us']:g} µs when the reader is "
                "awake (`bench/loopback_cost.py`): loopback delivers in the writer's system "
                "call, so whoever writes a chunk pays for waking whoever reads it. A relayed "
                "chunk is two such deliveries, the upstream's to the gateway and the "
                "gateway's to its client.",
            ]
        for size in result["streams"]["sizes"].values():
            lines += _stream_lines(size, meta)
        lines += [
            "",
            f"The request log holds {result['streams']['request_log_rows']:,} rows after these "
            "runs (warm-up streams included): every stream, recorded when it ended.",
        ]
    if "workers" in result:
        lines += ["", "### `--workers 2`, same upstream", ""]
        for rate, runs in result["workers"]["runs"].items():
            in_flight = float(rate) * meta["latency_ms"] / 1000
            lines += ["", f"**{float(rate):,.0f} requests/s** (≈{in_flight:,.0f} in flight)", ""]
            lines += HEADER + [_row(name, run) for name, run in runs.items()]
    return "\n".join(lines)


def _cpu_row(label: str, d: dict[str, Any] | None, a: dict[str, Any], chunks: int) -> str:
    """The gateway's CPU (with its kernel share), or the upstream's in both runs, and per
    1,000 chunks relayed (milliseconds per 1,000 chunks are microseconds per chunk)."""
    if d is None:
        cpu, system = a.get("target_cpu_s") or 0, a.get("target_cpu_system_s")
        kernel = "" if system is None else f" ({system:.1f} s)"
        per_chunk = cpu / max(chunks, 1) * 1e6
        return f"| {label} | | {cpu:.1f} s{kernel} | {per_chunk:.1f} ms per 1,000 chunks |"
    dv, av = d.get("upstream_cpu_s"), a.get("upstream_cpu_s")
    if dv is None or av is None:
        return f"| {label} | | | |"
    return (
        f"| {label} | {dv:.1f} s | {av:.1f} s | "
        f"{av / max(chunks, 1) * 1e6:.1f} ms per 1,000 chunks |"
    )


def _stream_lines(s: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    d, a = s["runs"]["direct"], s["runs"]["alicerce"]
    chunks = a["chunks"]
    per_stream_kib = ((a.get("rss_peak_mib") or 0) - (a.get("rss_before_mib") or 0)) * 1024
    lines = [
        "",
        f"### {s['streams']:,} concurrent streams through one worker",
        "",
        f"Each stream: {meta.get('chunks', 400)} content chunks "
        f"{meta.get('chunk_interval_ms', 50):g} ms apart; the streams are opened at "
        f"{s['rate']:,.0f} per second, so all are open together for most of the run.",
        "",
        "| | direct | Alicerce (1 worker) | added |",
        "| --- | --- | --- | --- |",
        f"| streams complete | {d['ok']:,} / {d['requests']:,} | {a['ok']:,} / "
        f"{a['requests']:,} | |",
        f"| chunks received | {d['chunks']:,} | {a['chunks']:,} | |",
    ]
    for key, label in (
        ("chunk_delay_ms", "chunk delay (arrival - upstream's stamp)"),
        ("chunk_gap_ms", "gap between a stream's chunks"),
    ):
        for q in ("p50", "p99", "p999", "max"):
            dv, av = (d[key] or {}).get(q), (a[key] or {}).get(q)
            added = None if dv is None or av is None else av - dv
            lines.append(f"| {label} {q} | {_ms2(dv)} | {_ms2(av)} | {_ms2(added)} |")
    lines += [
        _cpu_row("gateway CPU (in the kernel)", None, a, chunks),
        _cpu_row("upstream CPU", d, a, chunks),
        f"| gateway resident memory | | {a.get('rss_before_mib', 0):.0f} → "
        f"{a.get('rss_peak_mib', 0):.0f} MiB | {per_stream_kib / s['streams']:.0f} KiB per "
        "open stream |",
        f"| generator CPU | {d['generator_cpu_s']:.1f} s | {a['generator_cpu_s']:.1f} s | |",
        f"| load average before | {d['load_before']} | {a['load_before']} | |",
    ]
    return lines


def write_section(path: Path, body: str) -> None:
    """Replace what is between the in-flight markers of BENCHMARKS.md (adding them if absent,
    after the gateway section)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    elif "<!-- gateway:end -->" in text:
        head, tail = text.split("<!-- gateway:end -->", 1)
        text = head + f"<!-- gateway:end -->\n\n{HEADING}\n\n{block}" + tail
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    path.write_text(text)
