"""Resident memory after a fuzz: a leak, or memory the allocator keeps?

    python -m bench.bench_fuzz_memory [--clients 10] [--messages 1000]

Serves the app (test engine) with uvicorn in this process, so the same process can look at itself afterwards. Each
client joins and sends `--messages` generated messages: large noise frames (up to max_frame_bytes), junk and
oversized-field text, depth bombs, pings. Then `--sessions` short sessions come and go (join, a moment of audio, a
depth bomb). Then all disconnect, and the server's memory is read four ways: RSS,
Python's own live allocations (tracemalloc, started before the fuzz), and RSS again after `malloc_trim(0)` (glibc
hands free heap pages back to the OS). A leak keeps Python allocations (and asyncio tasks) up; allocator retention
shows as RSS that falls after the trim while Python's live allocations are back near where they started.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import random
import socket
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import psutil
import uvicorn
import websockets

from babelfish.app import create_app
from babelfish.cli import _Server
from babelfish.config import Settings
from babelfish.engines.fake import FakeEngine


def _mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


async def fuzz_client(url: str, i: int, n: int) -> None:
    rng = random.Random(i)
    try:
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "join", "name": f"f{i}", "language": "en", "room": f"r{i % 3}"}))
            await ws.recv()

            async def drain() -> None:
                async for _ in ws:
                    pass

            reader = asyncio.create_task(drain())
            for k in range(n):
                roll = rng.random()
                if roll < 0.3:
                    await ws.send(rng.randbytes(rng.randrange(2, 64_000, 2)))
                elif roll < 0.5:
                    await ws.send("[" * rng.randint(900, 2000) + "]" * 10)
                elif roll < 0.7:
                    await ws.send(json.dumps({"type": "ping", "id": "x" * rng.randint(1, 4000)})[:4096])
                elif roll < 0.9:
                    await ws.send("".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 1300))))
                else:
                    await ws.send(json.dumps({"type": "ping", "id": k}))
            await asyncio.sleep(1.0)
            reader.cancel()
    except websockets.ConnectionClosed:
        pass


async def short_session(url: str, i: int) -> None:
    """Join, speak a moment (so the server sets up VAD state for it), send a depth bomb, and go."""
    rng = random.Random(i)
    try:
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "join", "name": f"s{i}", "language": "en", "room": "short"}))
            await ws.recv()
            await ws.send(rng.randbytes(16000))
            await ws.send("[" * 1500 + "]" * 1500)
            await asyncio.sleep(0.05)
    except websockets.ConnectionClosed:
        pass


async def fuzz(url: str, clients: int, messages: int, sessions: int) -> None:
    await asyncio.gather(*(fuzz_client(url, i, messages) for i in range(clients)))
    for start in range(0, sessions, 10):  # then many short sessions, ten at a time
        await asyncio.gather(*(short_session(url, i) for i in range(start, min(sessions, start + 10))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=400, help="short sessions after the fuzz")
    args = parser.parse_args()
    me = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), max_control_rate=1e6, control_burst=1e6)
        app = create_app(settings, engine=FakeEngine())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="error", ws_max_size=256_000, ws_per_message_deflate=False)
        server = _Server(config, app, "http", "127.0.0.1")
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        time.sleep(0.5)
        gc.collect()
        tracemalloc.start()
        rss0, py0 = me.memory_info().rss, tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        asyncio.run(fuzz(f"ws://127.0.0.1:{port}/ws/client", args.clients, args.messages, args.sessions))
        took = time.monotonic() - started
        time.sleep(2.0)
        gc.collect()
        rss1, (py1, peak) = me.memory_info().rss, tracemalloc.get_traced_memory()
        trimmed = ctypes.CDLL("libc.so.6").malloc_trim(0)
        rss2 = me.memory_info().rss
        hub = app.state.hub
        print(f"load: {os.getloadavg()[0]:.2f} (1-min average)")
        print(
            f"{args.clients} clients × {args.messages} messages, then {args.sessions} short sessions, in {took:.0f} s; "
            f"connections left: {len(hub.connections)}"
        )
        print(f"RSS: before {_mb(rss0)}, after {_mb(rss1)}, after malloc_trim {_mb(rss2)} (trim returned {trimmed})")
        print(f"Python live allocations (tracemalloc): before {_mb(py0)}, after {_mb(py1)}, peak {_mb(peak)}")
        top = tracemalloc.take_snapshot().statistics("filename")[:5]
        for stat in top:
            print(f"  {stat}")
        server.should_exit = True
        thread.join(20)


if __name__ == "__main__":
    main()
