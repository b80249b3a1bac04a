"""A TCP proxy on loopback that a fault test can cut and restore: the real network failure of
a database or Redis between Alicerce and it, with nothing of our code mocked.

`cut()` resets every connection through it and refuses new ones (each is accepted and reset at
once: the client sees what it sees of a server that went away, at once, not a hang);
`restore()` lets connections through again. Plain threads: the proxy runs beside servers whose
event loops it must not share.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


def _reset(sock: socket.socket) -> None:
    """Closes with a TCP RST (SO_LINGER 0), as a crashed host's kernel answers."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open = True
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.accepted = 0  # connections accepted (also while cut)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the proxy was closed
            self.accepted += 1
            with self._lock:
                if not self._open:
                    _reset(client)
                    continue
                try:
                    upstream = socket.create_connection(self._target, timeout=5)
                except OSError:
                    _reset(client)
                    continue
                upstream.settimeout(None)
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                for sock in (source, sink):
                    if sock in self._sockets:
                        self._sockets.discard(sock)
                        _reset(sock)

    def cut(self) -> None:
        """Every connection through the proxy is reset; new ones are refused until `restore`."""
        with self._lock:
            self._open = False
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._open = True

    def close(self) -> None:
        self.cut()
        self._listener.close()
