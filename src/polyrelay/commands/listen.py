"""Listening sockets bound by us before uvicorn starts: a bad or busy port is one line and a non-zero
exit (uvicorn would log a traceback per server, or silently wrap a port over 65535), and
"listening" is printed only once the server has started on the bound socket."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from polyrelay.commands.database import fail

BUSY = 1  # exit code when a port cannot be bound (2 is a usage or config error)


def port_option(value: int) -> int:
    """typer callback: a TCP port a server can listen on (Python's socket would take 70000 modulo 65536)."""
    if not 1 <= value <= 65535:
        fail(f"port {value} is not a TCP port: use a number from 1 to 65535")
    return value


def bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart while old connections linger
    try:
        # Linux refuses this bind while another socket listens on the port, SO_REUSEADDR or not; we
        # listen only when uvicorn starts serving, so early connections are refused, not left hanging
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        reason = "already in use" if e.errno == 98 else (e.strerror or str(e))
        fail(f"cannot listen on {host}:{port} for the {what}: {reason}", BUSY)
    return sock


class Server(uvicorn.Server):
    """A uvicorn server that calls `on_started` once it serves (lifespan done, socket accepting)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()


class QuietServer(Server):
    """Signals are handled by whoever runs several servers in one loop (uvicorn's own handler would
    stop only the server that installed it last)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_together(servers: list[tuple[Server, socket.socket]]) -> bool:
    """Run servers in this loop until SIGINT/SIGTERM or until one stops; True if all started."""
    loop = asyncio.get_running_loop()

    def stop_all() -> None:
        for server, _ in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)
    tasks = [asyncio.create_task(server.serve([sock])) for server, sock in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop_all()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return all(server.started for server, _ in servers)



class Workers(Multiprocess):
    """uvicorn's worker supervisor, calling `on_started` once every worker serves the socket. SIGHUP
    (sent by an operator, or by a worker serving POST /admin/reload) replaces the workers one by one
    (uvicorn's restart: a new one serves before an old one is stopped, gracefully) once
    `before_restart` says the config can be served (validated, its keys written to the store)."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket],
                 on_started: Callable[[], None], before_restart: Callable[[], bool] | None = None) -> None:
        super().__init__(config, sockets)
        self.on_started = on_started
        self.before_restart = before_restart

    def handle_hup(self) -> None:
        if self.before_restart is None or self.before_restart():
            super().handle_hup()

    def init_processes(self) -> None:
        super().init_processes()
        if all(p.wait_until_ready(60, self.should_exit) for p in self.processes):
            self.on_started()
