"""A loopback TCP proxy that counts what crosses it: bytes each way, and round trips.

Both peernode (a WebSocket) and PouchDB (HTTP) are measured through the same proxy, so their
figures are counted the same way, at the socket, TCP payload (not TCP/IP headers).
A round trip is counted each time the client sends after the server last spoke (or first
speaks): for HTTP that is one per request; for peernode one per Request or Ack that goes out
after an answer came in, plus the handshake.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Self


@dataclass
class Traffic:
    up: int = 0  # client to server
    down: int = 0  # server to client
    round_trips: int = 0
    connections: int = 0

    @property
    def total(self) -> int:
        return self.up + self.down


class LoopbackProxy:
    """A TCP server on 127.0.0.1:``port`` (any free one if 0) run by an event loop of its own
    thread, for a proxy to 127.0.0.1:``target_port``; subclasses say what a connection does
    (``_handle``). Also tests/proxy.py's faulty link."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def stop(self) -> None:
        """Cancel the open connections, then stop the loop: nothing is left pending."""

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:
            # stop() ends open connections on purpose; a connection task that ended cancelled
            # would be logged by asyncio's stream server as an error in a callback.
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class CountingProxy(LoopbackProxy):
    """Forward 127.0.0.1:``port`` (any free one if 0) to 127.0.0.1:``target_port``, counting
    into ``traffic``."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        super().__init__(target_port, port)
        self.traffic = Traffic()
        self._lock = threading.Lock()

    def reset(self) -> Traffic:
        """The counts so far; counting starts again from zero."""
        with self._lock:
            counted, self.traffic = self.traffic, Traffic()
        return counted

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        with self._lock:
            self.traffic.connections += 1
        last = ["down"]  # who spoke last on this connection; the client opening is a turn
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer, "up", last)),
            asyncio.ensure_future(self._pipe(up_reader, writer, "down", last)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            for end in (writer, up_writer):
                end.close()

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        direction: str,
        last: list[str],
    ) -> None:
        while data := await source.read(65536):
            with self._lock:
                if direction == "up":
                    self.traffic.up += len(data)
                    if last[0] == "down":
                        self.traffic.round_trips += 1
                else:
                    self.traffic.down += len(data)
                last[0] = direction
            sink.write(data)
            await sink.drain()
