"""A small, fast webhook receiver for benchmarks: an asyncio HTTP/1.1 server
on 127.0.0.1, in a process of its own (so the benchmark's own work cannot
delay it), that records when each request arrived (by its webhook-id) and
answers 200."""

from __future__ import annotations

import asyncio
import multiprocessing
import time


class Receiver:
    def __init__(self) -> None:
        self._parent, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child,), daemon=True
        )

    def start(self) -> str:
        self._process.start()
        port = self._parent.recv()
        return f"http://127.0.0.1:{port}/hook"

    def arrivals(self) -> tuple[dict[str, float], int]:
        """({webhook-id: first arrival time}, requests received)."""
        self._parent.send("report")
        return self._parent.recv()

    def stop(self) -> None:
        self._process.terminate()


def _serve(pipe) -> None:
    arrivals: dict[str, float] = {}
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
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
                arrivals.setdefault(headers.get("webhook-id", ""), arrived)
                count += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        pipe.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        while True:
            # The pipe is polled from a thread so the loop never blocks on it.
            await loop.run_in_executor(None, pipe.recv)
            pipe.send((dict(arrivals), count))

    asyncio.run(main())
