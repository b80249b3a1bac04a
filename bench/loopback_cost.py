"""What one small write over TCP loopback costs the writer, with and without waking the reader.

On loopback the kernel delivers a segment in the writer's system call: the reader's TCP
receive path, and waking the reader's process if it sleeps in `recv`, are charged to the
writer. A gateway relaying a chunk every 50 ms to each of thousands of idle clients pays that
wake-up on every chunk; behind a real network card it would not (the NIC takes the segment,
and the client's machine wakes its own reader). This measures both, so the stream figures of
`bench/inflight.py` can be read for what they are on the machine that produced them.

    uv run --frozen python bench/loopback_cost.py
"""

from __future__ import annotations

import json
import os
import socket
import time

PAYLOAD = b"x" * 250  # about one relayed `chat.completion.chunk` event


def _sender_cpu_us(sends: int, pause_s: float) -> float:
    """CPU microseconds per `send` of PAYLOAD to a reader in another process, pausing
    `pause_s` between sends (a pause long enough lets the reader fall asleep in `recv`)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    reader = os.fork()
    if reader == 0:  # the reader: read until everything has arrived, then leave
        conn = socket.create_connection(("127.0.0.1", port))
        expected, got = sends * len(PAYLOAD), 0
        while got < expected:
            data = conn.recv(65536)
            if not data:
                break
            got += len(data)
        os._exit(0)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    time.sleep(0.05)  # the reader is in its first recv
    pauses_cpu = 0.0
    if pause_s:
        start = time.process_time()
        for _ in range(sends):
            time.sleep(pause_s)
        pauses_cpu = time.process_time() - start  # what the pauses alone cost, taken off
    start = time.process_time()
    for _ in range(sends):
        conn.sendall(PAYLOAD)
        if pause_s:
            time.sleep(pause_s)
    spent = time.process_time() - start - pauses_cpu
    os.waitpid(reader, 0)
    conn.close()
    listener.close()
    return max(spent, 0.0) / sends * 1e6


def measure(sends: int = 2000) -> dict[str, float]:
    """Writer's CPU per 250-byte send: waking a sleeping reader each time, and back to back."""
    return {
        "send_waking_reader_us": round(_sender_cpu_us(sends, 0.001), 1),
        "send_back_to_back_us": round(_sender_cpu_us(sends * 10, 0.0), 1),
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
