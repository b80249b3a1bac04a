"""From the rounds of the gateway benchmark to figures, verdicts and the BENCHMARKS.md section."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START, END = "<!-- gateway:start -->", "<!-- gateway:end -->"
HEADING = "## Gateway overhead: Alicerce vs LiteLLM"
COMMAND = "uv run --frozen python bench/gateway_bench.py"

TTFT_TARGET = "added time to first token (streaming, p50)"
Rounds = list[dict[str, dict[str, dict[str, Any]]]]  # round -> figure -> target -> measurement


@dataclass
class Target:
    """One requirement of issue 6 and whether this run met it."""

    name: str
    goal: str
    value: str
    met: bool


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _rps(wrk: dict[str, Any]) -> float:
    return float(wrk["requests"]) / (float(wrk["duration_us"]) / 1e6)


def series(rounds: Rounds, figure: str, target: str, value: str) -> list[float]:
    """One value of one target's figure in each round that measured it."""
    out = []
    for r in rounds:
        m = r.get(figure, {}).get(target)
        if m is None:
            continue
        if value == "rps":
            out.append(_rps(m))
        elif value.startswith("lat_"):
            out.append(float(m["latency_us"][value[4:]]))
        else:
            out.append(float(m[value]))
    return out


def added(rounds: Rounds, figure: str, target: str, value: str) -> list[float]:
    """Per round, the target's value minus the direct upstream's in the same round."""
    out = []
    for r in rounds:
        gateway, direct = r.get(figure, {}).get(target), r.get(figure, {}).get("direct")
        if gateway is None or direct is None:
            continue
        if value.startswith("lat_"):
            key = value[4:]
            out.append(float(gateway["latency_us"][key]) - float(direct["latency_us"][key]))
        else:
            out.append(float(gateway[value]) - float(direct[value]))
    return out


def errors(rounds: Rounds, target: str) -> int:
    """Failed requests of a target over every wrk run (non-2xx, timeouts, socket errors)."""
    total = 0
    for r in rounds:
        for figure in ("throughput", "latency"):
            m = r.get(figure, {}).get(target)
            if m is not None:
                total += sum(m["errors"].values())
        t = r.get("ttft", {}).get(target)
        if t is not None:
            total += int(t["errors"])
    return total


def summarise(rounds: Rounds, rss: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Medians over the rounds of every figure, per target."""
    summary: dict[str, Any] = {}
    for target in ("direct", "alicerce", "litellm", "portkey", "alicerce-2w"):
        s: dict[str, Any] = {
            "rps_32": _median(series(rounds, "throughput", target, "rps")),
            "rps_32_rounds": [round(v) for v in series(rounds, "throughput", target, "rps")],
            "p50_us": _median(series(rounds, "latency", target, "lat_p50")),
            "p99_us": _median(series(rounds, "latency", target, "lat_p99")),
            "ttft_p50_us": _median(series(rounds, "ttft", target, "ttft_p50_us")),
            "ttft_p99_us": _median(series(rounds, "ttft", target, "ttft_p99_us")),
            "errors": errors(rounds, target),
        }
        if target != "direct":
            s["added_p50_us"] = _median(added(rounds, "latency", target, "lat_p50"))
            s["added_p99_us"] = _median(added(rounds, "latency", target, "lat_p99"))
            s["added_ttft_p50_us"] = _median(added(rounds, "ttft", target, "ttft_p50_us"))
            s["added_ttft_p99_us"] = _median(added(rounds, "ttft", target, "ttft_p99_us"))
        if target in rss:
            s["rss"] = rss[target]
        summary[target] = s
    a, lite = summary["alicerce"], summary["litellm"]
    measured = lite["rps_32"] == lite["rps_32"] and lite["rps_32"] > 0  # NaN when not run
    summary["throughput_ratio"] = a["rps_32"] / lite["rps_32"] if measured else None
    pairs = zip(a["rps_32_rounds"], lite["rps_32_rounds"], strict=False)
    summary["throughput_ratio_rounds"] = [round(x / y, 1) for x, y in pairs if y]
    pk = summary["portkey"]["rps_32"]
    summary["portkey_ratio"] = a["rps_32"] / pk if pk == pk and pk > 0 else None
    two = summary["alicerce-2w"]["rps_32"]
    summary["scaling_2w"] = two / a["rps_32"] if a["rps_32"] and two == two else None
    return summary


def targets(summary: dict[str, Any]) -> list[Target]:
    """The issue's four targets for Alicerce, one worker, non-streaming unless said."""
    a = summary["alicerce"]
    ratio = summary["throughput_ratio"]
    return [
        Target(
            "throughput at 32 connections",
            ">= 10x LiteLLM",
            f"{ratio:.1f}x" if ratio else "n/a",
            bool(ratio and ratio >= 10),
        ),
        Target(
            "added latency p50, 1 connection",
            "< 1 ms",
            _ms(a["added_p50_us"]),
            a["added_p50_us"] < 1000,
        ),
        Target(
            "added latency p99, 1 connection",
            "< 2 ms",
            _ms(a["added_p99_us"]),
            a["added_p99_us"] < 2000,
        ),
        Target(
            "added time to first token (streaming, p50)",
            "< 1 ms",
            _ms(a["added_ttft_p50_us"]),
            a["added_ttft_p50_us"] < 1000,
        ),
    ]


def _ms(us: float) -> str:
    return "n/a" if us != us else f"{us / 1000:.2f} ms"


def _rps_text(v: float) -> str:
    return "n/a" if v != v else f"{v:,.0f}"


def _rss_text(s: dict[str, Any]) -> str:
    rss = s.get("rss")
    if not rss:
        return "—"
    procs = int(rss["processes"])
    return f"{rss['mib']:.0f} MiB" + (f" ({procs} processes)" if procs > 1 else "")


def markdown(result: dict[str, Any]) -> str:
    """The body of the gateway section (between the markers)."""
    meta, summary = result["meta"], result["summary"]
    d, a, lite, a2 = (summary[t] for t in ("direct", "alicerce", "litellm", "alicerce-2w"))
    pk = summary.get("portkey") or {"rps_32": float("nan")}
    ratio = summary["throughput_ratio"]
    pk_ratio = summary.get("portkey_ratio")
    lines = [
        f"Measured {meta['date']} with `{COMMAND}` "
        f"({meta['rounds']} alternating rounds — direct, Alicerce, LiteLLM, Portkey — of "
        f"{meta['duration_s']:g} s per wrk run and {meta['ttft_duration_s']:g} s per "
        "time-to-first-token run; the figures are medians of the rounds, the JSON under "
        "`bench/results/` has every round).",
        "",
        "| figure (one worker process each) | direct upstream | Alicerce | LiteLLM | "
        "Alicerce / LiteLLM |",
        "| --- | --- | --- | --- | --- |",
        f"| requests/s, 32 connections | {_rps_text(d['rps_32'])} | {_rps_text(a['rps_32'])} | "
        f"{_rps_text(lite['rps_32'])} | {ratio:.1f}x |"
        if ratio
        else "| requests/s | n/a |",
        f"| latency p50, 1 connection | {_ms(d['p50_us'])} | {_ms(a['p50_us'])} | "
        f"{_ms(lite['p50_us'])} | |",
        f"| latency p99, 1 connection | {_ms(d['p99_us'])} | {_ms(a['p99_us'])} | "
        f"{_ms(lite['p99_us'])} | |",
        f"| **added** latency p50 | — | {_ms(a['added_p50_us'])} | {_ms(lite['added_p50_us'])} | |",
        f"| **added** latency p99 | — | {_ms(a['added_p99_us'])} | {_ms(lite['added_p99_us'])} | |",
        f"| time to first token p50 (stream) | {_ms(d['ttft_p50_us'])} | "
        f"{_ms(a['ttft_p50_us'])} | {_ms(lite['ttft_p50_us'])} | |",
        f"| **added** time to first token p50 | — | {_ms(a['added_ttft_p50_us'])} | "
        f"{_ms(lite['added_ttft_p50_us'])} | |",
        f"| **added** time to first token p99 | — | {_ms(a['added_ttft_p99_us'])} | "
        f"{_ms(lite['added_ttft_p99_us'])} | |",
        f"| resident memory after load | — | {_rss_text(a)} | {_rss_text(lite)} | |",
        f"| failed requests (all runs) | {d['errors']} | {a['errors']} | {lite['errors']} | |",
        "",
        *_portkey_lines(meta, a, pk, pk_ratio),
        f"Alicerce with `--workers 2`: {_rps_text(a2['rps_32'])} requests/s at 32 connections "
        f"({summary['scaling_2w']:.2f}x one worker; {_rss_text(a2)}; "
        f"{meta['nproc']} cores shared with wrk and the upstream)."
        if summary["scaling_2w"]
        else "Alicerce with `--workers 2`: not measured.",
        "",
        "Requests/s in each round: "
        + "; ".join(
            f"{name} {', '.join(f'{v:,}' for v in summary[key]['rps_32_rounds'])}"
            for name, key in (
                ("direct", "direct"),
                ("Alicerce", "alicerce"),
                ("LiteLLM", "litellm"),
                ("Alicerce 2 workers", "alicerce-2w"),
            )
        )
        + "; Alicerce / LiteLLM "
        + ", ".join(f"{r:g}x" for r in summary["throughput_ratio_rounds"])
        + ".",
        "",
        "The canned upstream's own p99 at one connection ranged "
        f"{_ms(min(series(result['rounds'], 'latency', 'direct', 'lat_p99')))} to "
        f"{_ms(max(series(result['rounds'], 'latency', 'direct', 'lat_p99')))} across the rounds: "
        "on this shared 2-core machine the tail is mostly scheduling, and the added p99 is the "
        "noisiest figure here.",
        "",
        "### Targets (Alicerce, one worker, SQLite, key auth and request log on)",
        "",
        "| target | goal | measured | |",
        "| --- | --- | --- | --- |",
    ]
    for t in result["targets"]:
        lines.append(
            f"| {t['name']} | {t['goal']} | {t['value']} | {'met' if t['met'] else '**missed**'} |"
        )
    for kind, profile in result["profiles"].items():
        if profile["samples"]:
            lines += ["", *_profile_lines(result["meta"], kind, profile)]
    lines += ["", "### Setup", "", *_setup_lines(meta)]
    return "\n".join(lines)


def _portkey_lines(
    meta: dict[str, Any], a: dict[str, Any], pk: dict[str, Any], ratio: float | None
) -> list[str]:
    """The Portkey gateway's figures from the same rounds, beside Alicerce's."""
    if ratio is None:
        return []
    return [
        f"The Portkey gateway {meta.get('portkey_version', '?')} (Node.js, one process, "
        "`--headless`, routed with `x-portkey-provider: openai` and `x-portkey-custom-host`) in "
        "the same rounds:",
        "",
        "| figure | Alicerce | Portkey | Alicerce / Portkey |",
        "| --- | --- | --- | --- |",
        f"| requests/s, 32 connections | {_rps_text(a['rps_32'])} | {_rps_text(pk['rps_32'])} | "
        f"{ratio:.1f}x |",
        f"| **added** latency p50 | {_ms(a['added_p50_us'])} | {_ms(pk['added_p50_us'])} | |",
        f"| **added** latency p99 | {_ms(a['added_p99_us'])} | {_ms(pk['added_p99_us'])} | |",
        f"| **added** time to first token p50 | {_ms(a['added_ttft_p50_us'])} | "
        + (
            f"{_ms(pk['added_ttft_p50_us'])} | |"
            if pk["ttft_p50_us"]
            else "every stream failed (500: a `TypeError: immutable` in Portkey's "
            "`updateHeaders` on Node.js 20) | |"
        ),
        f"| resident memory after load | {_rss_text(a)} | {_rss_text(pk)} | |",
        f"| failed requests (all runs) | {a['errors']} | {pk['errors']} | |",
        "",
    ]


def _profile_lines(meta: dict[str, Any], kind: str, profile: dict[str, Any]) -> list[str]:
    """A profile's tables; `profile` is a `spyprofile.ProfileSummary` as a dict."""
    load = "streaming" if kind == "stream" else "non-streaming"
    threads = ", ".join(f"{name} {share:.0%}" for name, share in profile["threads"][:4])
    return [
        f"### Where Alicerce's time goes: {load} requests",
        "",
        f"py-spy (`--threads --nonblocking`), {profile['samples']} samples at "
        f"{meta['profile_rate']} Hz during {meta['profile_s']:g} s of 32-connection {load} load "
        "on the one worker; samples of a thread waiting (in a poll, a queue or a condition) are "
        f"dropped, so the shares are of busy time. By thread: {threads} (besides the event "
        "loop's `MainThread`, the loop's executor, where `asyncio.to_thread` writes the request "
        "log). The tables are the "
        f"event loop's thread ({profile['loop_samples']} samples); collapsed stacks in "
        f"`{meta[f'profile_file_{kind}']}`.",
        "",
        "| layer (innermost frame's package) | share |",
        "| --- | --- |",
        *(f"| {name} | {share:.0%} |" for name, share in profile["layers"][:8]),
        "",
        "| function, self time | share |",
        "| --- | --- |",
        *(f"| `{name}` | {share:.1%} |" for name, share in profile["self_time"][:12]),
        "",
        "| Alicerce function, inclusive | share |",
        "| --- | --- |",
        *(f"| `{name}` | {share:.0%} |" for name, share in profile["alicerce_inclusive"][:10]),
    ]


def _setup_lines(meta: dict[str, Any]) -> list[str]:
    deps = ", ".join(f"{k} {v}" for k, v in meta["alicerce_deps"].items())
    return [
        "- **Upstream**: `bench/canned_upstream.py`, a raw uvloop protocol answering a fixed "
        "`chat.completion` body, or a fixed SSE stream in chunked encoding "
        f"({meta['stream_gap_ms']:g} ms between the first content chunk and the rest), "
        "so the upstream costs next to nothing.",
        f"- **Alicerce** at `{meta.get('alicerce_commit', '?')}`: "
        "`alicerce serve --workers 1` (uvloop, httptools) on a fresh SQLite "
        "file, a bring-your-own gateway `bench` on the canned upstream "
        "(`ALICERCE_ALLOW_PRIVATE_UPSTREAMS=true`), an inference key, request log on "
        f"({meta.get('request_log_rows', 0):,} rows written in this run).",
        f"- **LiteLLM**: `litellm[proxy]=={meta['litellm_version']}` in its own venv "
        "(`bench/.venv-litellm`, pinned below the compromised 1.82.7/1.82.8 releases), "
        "`litellm --num_workers 1` with one `openai/` model on the canned upstream and a "
        "master key (auth on). It runs **without a database**: its spend logs and virtual "
        "keys need PostgreSQL through Prisma (not in `litellm[proxy]`), whose client "
        "generation downloads Prisma's engine binaries and Node.js from outside the package "
        "registries, which this machine cannot reach; so LiteLLM writes no request log while "
        "Alicerce does. "
        "Network look-ups off (`LITELLM_LOCAL_MODEL_COST_MAP=True`, `--telemetry False`).",
        "- **Load**: `wrk -t1` with `bench/wrk_post.lua` (a one-message non-streaming body); "
        "time to first token by `bench/ttft.py` (aiohttp, one connection, sequential). "
        "Added figures are a gateway's value minus the direct upstream's in the same round.",
        f"- **Machine**: {meta['cpu']}, {meta['nproc']} cores, Linux {meta['kernel']}, "
        f"Python {meta['python']}, {meta['wrk']}; load average {meta['load_before']} before "
        f"and {meta['load_after']} after (other work may share the machine, hence the "
        "alternating rounds).",
        f"- **Versions**: {deps}.",
    ]


def write_section(path: Path, body: str) -> None:
    """Replace what is between the gateway markers of BENCHMARKS.md (adding them if absent)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    path.write_text(text)
