"""A small, fast webhook receiver for benchmarks: an asyncio HTTP/1.1 server
on 127.0.0.1 that records when each request arrived (by its webhook-id) and
answers 200. Fast, so that it does not add its own lateness."""

from __future__ import annotations

import asyncio
import threading
import time


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.arrivals.setdefault(headers.get("webhook-id", ""), arrived)
                self.count += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> str:
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)
        return f"http://127.0.0.1:{self.port}/hook"

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
