"""A loopback TCP proxy for tests that can flip one byte of the server-to-client stream."""

from __future__ import annotations

import asyncio
import threading

from bench.wire import LoopbackProxy


class FlippingProxy(LoopbackProxy):
    """Forward 127.0.0.1:<port> to ``target``, as a faulty link would: flip byte ``flip_at`` of
    the server-to-client stream (once), and/or cut every connection after ``cut_after`` seconds.
    Counts connections and the bytes carried from server to client. With ``record``, keeps
    every byte of every connection, as an eavesdropper on the line would: ``streams`` holds
    (client-to-server, server-to-client) per connection."""

    def __init__(
        self,
        target_port: int,
        flip_at: int | None = None,
        cut_after: float | None = None,
        record: bool = False,
    ) -> None:
        super().__init__(target_port)
        self.flip_at = flip_at
        self.cut_after = cut_after
        self.record = record
        self.streams: list[tuple[bytearray, bytearray]] = []
        self.flipped = False
        self.connections = 0
        self.bytes_down = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.connections += 1
        up, down = bytearray(), bytearray()
        if self.record:
            self.streams.append((up, down))
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer, None, sink=up)),
            asyncio.ensure_future(self._pipe(up_reader, writer, self.flip_at, True, sink=down)),
        ]
        _, pending = await asyncio.wait(pipes, timeout=self.cut_after)
        if pending:  # the link drops: both ends see the connection reset
            for end in (writer, up_writer):
                end.transport.abort()
            for pipe in pending:
                pipe.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        flip: int | None,
        down: bool = False,
        sink: bytearray | None = None,
    ) -> None:
        offset = 0
        try:
            while chunk := await reader.read(65536):
                if flip is not None and not self.flipped and offset <= flip < offset + len(chunk):
                    self.flipped = True
                    data = bytearray(chunk)
                    data[flip - offset] ^= 0x20
                    chunk = bytes(data)
                offset += len(chunk)
                if down:
                    self.bytes_down += len(chunk)
                if self.record and sink is not None:
                    sink += chunk
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


class Switchboard:
    """Many loopback links on one event loop thread, each of which can be cut and healed.

    ``link(target_port)`` opens a listening port that forwards to the target. A cut link drops
    its open connections (both ends see a reset) and refuses new ones until it is healed, as a
    broken line between two libraries would.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._open: dict[int, set[asyncio.StreamWriter]] = {}
        self.cut_links: set[int] = set()

    def start(self) -> Switchboard:
        self._thread.start()
        return self

    def link(self, target_port: int) -> tuple[int, int]:
        """A new link to ``target_port``: (its id, the port to dial instead)."""
        index = len(self._servers)
        self._open[index] = set()

        async def listen() -> asyncio.Server:
            return await asyncio.start_server(
                lambda r, w: self._handle(index, target_port, r, w), "127.0.0.1", 0
            )

        server = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)
        self._servers.append(server)
        return index, int(server.sockets[0].getsockname()[1])

    def cut(self, links: set[int]) -> None:
        async def apply() -> None:
            self.cut_links = set(links)
            for index in links:
                for writer in list(self._open[index]):
                    writer.transport.abort()

        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(10)

    def heal(self) -> None:
        self.cut(set())

    def stop(self) -> None:
        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(
        self, index: int, target: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if index in self.cut_links:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.transport.abort()
            return
        ends = {writer, up_writer}
        self._open[index] |= ends
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            self._open[index] -= ends
            for end in ends:
                end.transport.abort()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
