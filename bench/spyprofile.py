"""Where a server's CPU goes under load: py-spy samples, summarised by function and by layer.

py-spy (from PyPI, run through `uv tool run`, so never in the project's lock) records the
server's Python stacks, one line per thread and stack (`thread (TID): NAME;frame;... count`);
`summarise` gives each thread's share of the samples, then, for the event loop's thread (the one
that bounds a worker's throughput), the share of samples whose innermost frame is each function
(self time), the share that passes through each Alicerce function (inclusive time), and the share
of each layer (the package of the innermost frame: uvicorn, aiohttp, alicerce, ...).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


@dataclass
class ProfileSummary:
    samples: int  # of every thread
    loop_samples: int = 0  # of the event loop's thread
    threads: list[tuple[str, float]] = field(default_factory=list)  # (name, share of samples)
    self_time: list[tuple[str, float]] = field(default_factory=list)  # (function, share)
    alicerce_inclusive: list[tuple[str, float]] = field(default_factory=list)
    layers: list[tuple[str, float]] = field(default_factory=list)


def record(pid: int, seconds: float, output: Path, rate: int = 200) -> None:
    """Sample `pid` for `seconds` into `output` (collapsed stacks)."""
    argv = ["uv", "tool", "run", "py-spy", "record", "--pid", str(pid), "--duration"]
    argv += [str(max(1, round(seconds))), "--rate", str(rate), "--format", "raw"]
    argv += ["--threads", "--nonblocking", "--output", str(output)]
    subprocess.run(argv, check=True, capture_output=True, timeout=seconds + 120)


def _frame_parts(frame: str) -> tuple[str, str]:
    """(function label `module:function`, layer) of one collapsed frame."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame, "other"
    func, path = match.group("func"), match.group("file")
    module = _module_of(path)
    return f"{module}:{func}", module.split(".")[0]


def _module_of(path: str) -> str:
    """A dotted module name from a file path (site-packages and stdlib prefixes dropped)."""
    p = path.replace("\\", "/")
    for marker in ("site-packages/", "/lib/python3.", "/work/main/"):
        if marker in p:
            p = p.split(marker, 1)[1]
            if marker == "/lib/python3.":
                p = p.split("/", 1)[1] if "/" in p else p
            break
    p = p.removesuffix(".py").removesuffix("/__init__")
    name = p.strip("/").replace("/", ".")
    return name or path


def _thread_name(frame: str) -> str:
    """`MainThread` from `thread (1234): MainThread`; pool threads lose their number."""
    name = frame.split(":", 1)[1].strip() if ":" in frame else frame
    return re.sub(r"_\d+$", "_N", name)


def summarise(collapsed: Path, top: int = 12) -> ProfileSummary:
    """Thread shares; self time by function, inclusive Alicerce time, layers of the loop."""
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack.startswith("thread (") or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *rest = stack.split(";")
        name = _thread_name(thread)
        frames = [_frame_parts(f) for f in rest if f.strip()]
        if frames and frames[-1][0] in IDLE_LEAVES:
            continue  # a wait that py-spy took for work
        threads[name] += count
        if name != "MainThread" or not frames:
            continue
        leaf_func, leaf_layer = frames[-1]
        self_time[leaf_func] += count
        layers[leaf_layer] += count
        for func in {f for f, layer in frames if layer == "alicerce" and f not in _ROOTS}:
            inclusive[func] += count
    total, loop = sum(threads.values()), threads["MainThread"]
    if not total or not loop:
        return ProfileSummary(samples=total)
    return ProfileSummary(
        samples=total,
        loop_samples=loop,
        threads=[(name, n / total) for name, n in threads.most_common(top)],
        self_time=[(f, n / loop) for f, n in self_time.most_common(top)],
        alicerce_inclusive=[(f, n / loop) for f, n in inclusive.most_common(top)],
        layers=[(name, n / loop) for name, n in layers.most_common(top)],
    )


# Innermost frames that are waits, not work: on this machine py-spy samples threads blocked in
# them although it is told to skip idle threads.
IDLE_LEAVES = {
    "threading:Condition.wait",
    "threading:Event.wait",
    "queue:Queue.get",
    "concurrent.futures.thread:_worker",  # blocked in its work queue's C `get`
    "selectors:EpollSelector.select",
}
_ROOTS = {"alicerce.__main__:<module>", "alicerce.cli:serve", "alicerce.cli:_serve"}
