"""A TCP proxy between a test's server and a real database, to take the database away and give
it back the way a network does: ``cut()`` resets every connection and refuses new ones until
``restore()``; ``cut_after(marker)`` lets the next client bytes that hold ``marker`` (a COMMIT,
say) through to the database, then cuts before its answer can come back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._down = False
        self._marker: bytes | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.cuts_after_marker = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer, client=writer),
            self._pipe(up_reader, writer),
            return_exceptions=True,
        )
        self._writers.difference_update((writer, up_writer))

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter | None = None,
    ) -> None:
        """Bytes one way; toward the database (``client`` given) it watches for the marker:
        the client is cut at once, the database a moment later, once it surely has them."""
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if client is not None and self._marker is not None and self._marker in data:
                    self._marker = None
                    self.cuts_after_marker += 1
                    _reset(client)
                    await asyncio.sleep(0.5)
                    return
        except (OSError, RuntimeError):
            pass
        finally:
            _reset(writer)

    def _cut(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    def cut(self) -> None:
        def go() -> None:
            self._down = True
            self._cut()

        self._loop.call_soon_threadsafe(go)

    def restore(self) -> None:
        def go() -> None:
            self._down = False

        self._loop.call_soon_threadsafe(go)

    def cut_after(self, marker: bytes) -> None:
        def go() -> None:
            self._marker = marker

        self._loop.call_soon_threadsafe(go)

    def close(self) -> None:
        def stop() -> None:
            self._cut()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)


def _reset(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


@contextlib.contextmanager
def proxy_to(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    try:
        yield proxy
    finally:
        proxy.close()
