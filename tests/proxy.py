"""A loopback TCP proxy for tests that can flip one byte of the server-to-client stream."""

from __future__ import annotations

import asyncio
import threading


class FlippingProxy:
    """Forward 127.0.0.1:<port> to ``target``, as a faulty link would: flip byte ``flip_at`` of
    the server-to-client stream (once), and/or cut every connection after ``cut_after`` seconds.
    Counts connections and the bytes carried from server to client."""

    def __init__(
        self, target_port: int, flip_at: int | None = None, cut_after: float | None = None
    ) -> None:
        self.target_port = target_port
        self.flip_at = flip_at
        self.cut_after = cut_after
        self.flipped = False
        self.connections = 0
        self.bytes_down = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FlippingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
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

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.connections += 1
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer, None)),
            asyncio.ensure_future(self._pipe(up_reader, writer, self.flip_at, True)),
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
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
