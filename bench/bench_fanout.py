"""Fan-out: time to deliver one result to 1 / 100 / 500 listeners, and memory per idle connection.

    python -m bench.bench_fanout [--listeners 1 100 500] [--rounds 10]

Runs the real server (test engine, so the engine costs nothing) in a subprocess; the listeners are WebSocket
clients in this process. For each utterance, the transcript is broadcast to the whole room at once: the fan-out
time is from the first to the last listener receiving it. Memory per idle connection is the server's resident
memory growth (from /metrics) divided by the number of listeners.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from tests.audio import SPEECH_CLIP, pcm16, read_wav
from tests.serverproc import ServerProcess


async def listener(
    url: str, i: int, times: dict[str, list[float]], ready: asyncio.Event, arrived: asyncio.Event, n: int
) -> None:
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "join", "name": f"l{i}", "language": "de", "room": "bench", "audio": False}))
        await ws.recv()
        times.setdefault("_joined", []).append(0.0)
        if len(times["_joined"]) == n:
            ready.set()
        async for frame in ws:
            if isinstance(frame, str) and '"type":"transcript"' in frame:
                got = times.setdefault(json.loads(frame)["utterance_id"], [])
                got.append(time.perf_counter())
                if len(got) == n:
                    arrived.set()


async def scenario(port: int, n: int, rounds: int) -> tuple[list[float], float]:
    url = f"ws://127.0.0.1:{port}/ws/client"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        await asyncio.sleep(0.5)
        before = (await http.get("/metrics")).json()["memory_mb"]
        times: dict[str, list[float]] = {}
        ready, arrived = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(listener(url, i, times, ready, arrived, n)) for i in range(n)]
        await asyncio.wait_for(ready.wait(), 120)
        await asyncio.sleep(1.0)
        after = (await http.get("/metrics")).json()["memory_mb"]
        pcm = pcm16(read_wav(SPEECH_CLIP))
        spreads = []
        async with websockets.connect(url) as speaker:
            await speaker.send(json.dumps({"type": "join", "name": "S", "language": "en", "room": "bench"}))
            await speaker.recv()
            for _ in range(rounds):
                arrived.clear()
                for i in range(0, 32000, 1280):  # 1 s of speech, then cut
                    await speaker.send(pcm[i : i + 1280])
                await speaker.send('{"type": "end_utterance"}')
                while True:
                    msg = json.loads(await speaker.recv())
                    if msg["type"] == "transcript":
                        break
                uid = msg["utterance_id"]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 30)
                got = times.get(uid, [])
                if len(got) == n:
                    spreads.append((max(got) - min(got)) * 1000)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return spreads, (after - before) * 1024 / n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listeners", type=int, nargs="+", default=[1, 100, 500])
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    print("| listeners | fan-out p50 ms | fan-out max ms | memory per idle connection KiB |")
    print("|---|---|---|---|")
    for n in args.listeners:
        with tempfile.TemporaryDirectory() as tmp:
            srv = ServerProcess(
                Path(tmp) / "data", "--log-level", "warning", "--max-clients-per-room", str(n + 10),
                # every listener comes from this one address: lift the per-address limits for the measurement
                "--max-connections-per-address", str(n + 10), "--max-joins-per-minute", str(n + 10),
            )  # fmt: skip
            srv.start()
            try:
                spreads, per_conn = asyncio.run(scenario(srv.port, n, args.rounds))
            finally:
                srv.stop()
        print(f"| {n} | {statistics.median(spreads):.1f} | {max(spreads):.1f} | {per_conn:.1f} |", flush=True)


if __name__ == "__main__":
    main()
