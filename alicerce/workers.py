"""`alicerce serve --workers N`: uvicorn's supervisor, with worker deaths logged as warnings
that say why.

uvicorn's own supervisor notes a dead worker at info, "Child process [pid] died", with no cause,
and not at all when the log level is warning: a worker restarting in a loop was invisible. Here
each death is one warning naming the worker, its cause (its exit code, the signal that killed
it, or the health check it missed and the supervisor's kill) and the worker started in its
place. A dead worker's share of the live gauges (requests in flight) is dropped from the
metrics directory, as `prometheus_client` asks of multiprocess servers.

The supervision loop is uvicorn's (`uvicorn.supervisors.multiprocess`, 0.54), restated in
`keep_subprocess_alive` with the log line changed.
"""

from __future__ import annotations

import logging
import os
import signal

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger("alicerce.workers")


def signal_name(exitcode: int | None) -> str | None:
    """The signal that ended a process with this exit code (`SIGKILL` for -9), or None."""
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def exit_cause(exitcode: int | None) -> str:
    """A worker's exit code in words: `killed by SIGKILL` for -9, `exited with code 3`."""
    name = signal_name(exitcode)
    return f"killed by {name}" if name else f"exited with code {exitcode}"


class Supervisor(Multiprocess):
    """Keeps `config.workers` workers alive; says why each one it replaces died."""

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return  # the supervisor is exiting: no replacements
        timeout = self.config.timeout_worker_healthcheck
        for idx, process in enumerate(self.processes):
            running = process.process.is_alive()  # False: it has died on its own
            if running and process.is_alive(timeout=timeout):
                continue
            process.kill()  # no-op for a dead worker; a hung one is killed here
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # The app, the socket or TLS is broken: every restart would fail the same way.
                log.error(
                    "worker [%s] failed to start; stopping the server",
                    process.pid,
                    extra={"pid": process.pid, "exit_code": process.exitcode},
                )
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            hung = running and process.exitcode == -signal.SIGKILL  # killed just above
            cause = exit_cause(process.exitcode)
            if hung:
                cause = f"did not answer the health check within {timeout} s; {cause}"
            replacement = Process(self.config, self.sockets)
            replacement.start()
            self.processes[idx] = replacement
            self._forget(process.pid)
            log.warning(
                "worker [%s] died (%s); started worker [%s] in its place",
                process.pid,
                cause,
                replacement.pid,
                extra={
                    "pid": process.pid,
                    "exit_code": process.exitcode,
                    "signal": signal_name(process.exitcode),
                    "health_check_failed": hung,
                    "replacement_pid": replacement.pid,
                },
            )

    @staticmethod
    def _forget(pid: int | None) -> None:
        """A dead worker's live gauges out of the metrics directory (its counters stay)."""
        if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(pid)  # type: ignore[no-untyped-call]


def run(config: Config) -> None:
    """Serves `config` with `config.workers` supervised workers (what `uvicorn.run` does for
    several workers, with this module's supervisor)."""
    sock = config.bind_socket()
    try:
        Supervisor(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
