"""Cluster mode: what the extra hop through Redis costs, and fan-out to many listeners over two servers.

    python -m bench.bench_cluster [--rounds 30] [--listeners 500] [--partial-rounds 5]

Runs a real redis-server and two real servers (test engine, so the engine costs nothing) as subprocesses; every
client is in this process, so one clock times them all.

1. Extra hop: a speaker and a German listener on server A, a German listener on server B. For each utterance the
   translation (and its audio) reaches both listeners; B's arrival minus A's is the cost of the cross-server delivery
   (relay through Redis pub/sub and B forwarding it), p50/p95 over the rounds.
1b. Partials: the speaker streams a 7 s clip at real-time pace (streaming partials on, the servers' default); each
   partial (same utterance, kind and seq) at both German listeners: B's arrival minus A's, and how many of A's
   partials B got (a partial still waiting for Redis is replaced by the next one, so B may get fewer).
2. Fan-out: N listeners in one room, on one server alone (no Redis) vs spread evenly over the two servers; the
   speaker on A. Per utterance: from the end of the utterance (the speaker's `end_utterance`) to the last listener
   reading the transcript, and the spread from the first listener to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import websockets

from tests.redisproc import RedisProcess
from tests.serverproc import ServerProcess

CLIP = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")


def one_second() -> bytes:
    with wave.open(str(CLIP)) as w:
        return w.readframes(16000)


async def join(url: str, name: str, language: str, audio: bool = True) -> websockets.ClientConnection:
    ws = await websockets.connect(url, max_size=None, ping_interval=None, open_timeout=60)
    await ws.send(json.dumps({"type": "join", "name": name, "language": language, "room": "bench", "audio": audio}))
    await ws.recv()
    return ws


async def say(speaker: websockets.ClientConnection, pcm: bytes) -> tuple[str, float]:
    """Speak, cut the utterance; its id (from the speaker's own transcript) and when it was cut."""
    for i in range(0, len(pcm), 1280):
        await speaker.send(pcm[i : i + 1280])
    await speaker.send('{"type": "end_utterance"}')
    cut = time.perf_counter()
    while True:
        frame = await asyncio.wait_for(speaker.recv(), 30)
        if isinstance(frame, str) and '"type":"transcript"' in frame:
            return json.loads(frame)["utterance_id"], cut


class Arrivals:
    """When each (message type, utterance id) reached each reader; `changed` is set at every arrival."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], list[float]] = {}
        self.changed = asyncio.Event()

    def record(self, ws: websockets.ClientConnection, kinds: Sequence[str]) -> asyncio.Task[None]:
        async def run() -> None:
            async for frame in ws:
                if isinstance(frame, str):
                    m = json.loads(frame)
                    if m["type"] in kinds:
                        self.times.setdefault((m["type"], m["utterance_id"]), []).append(time.perf_counter())
                        self.changed.set()

        return asyncio.create_task(run())

    async def until(self, done: Callable[[], bool], within: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not done():
                    self.changed.clear()
                    await self.changed.wait()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def extra_hop(a: ServerProcess, b: ServerProcess, rounds: int) -> dict[str, list[float]]:
    speaker = await join(a.ws_url, "S", "en")
    local = await join(a.ws_url, "LA", "de")
    remote = await join(b.ws_url, "LB", "de")
    await asyncio.sleep(1.0)  # presence settled on both servers
    at_local, at_remote = Arrivals(), Arrivals()
    t_local, t_remote = at_local.times, at_remote.times
    readers = [at_local.record(local, ("translation", "audio")), at_remote.record(remote, ("translation", "audio"))]
    pcm = one_second()
    extra: dict[str, list[float]] = {"translation": [], "audio": []}
    for _ in range(rounds):
        uid, _ = await say(speaker, pcm)
        keys = [("translation", uid), ("audio", uid)]
        await at_local.until(lambda k=keys: all(x in t_local for x in k), 10)
        await at_remote.until(lambda k=keys: all(x in t_remote for x in k), 10)
        for kind, key in zip(("translation", "audio"), keys, strict=True):
            if key in t_local and key in t_remote:
                extra[kind].append((t_remote[key][0] - t_local[key][0]) * 1000)
        await asyncio.sleep(0.2)
    for task in readers:
        task.cancel()
    for ws in (speaker, local, remote):
        await ws.close()
    return extra


LONG_CLIP = CLIP.with_name("sense_and_sensibility_01_austen_64kb-0870.wav")  # about 7 s of one reader


async def partial_hop(a: ServerProcess, b: ServerProcess, rounds: int) -> tuple[list[float], int, int]:
    speaker = await join(a.ws_url, "S", "en")
    listeners = [await join(a.ws_url, "LA", "de", audio=False), await join(b.ws_url, "LB", "de", audio=False)]
    await asyncio.sleep(1.0)  # presence settled on both servers
    seen: list[dict[tuple[str, str, int], float]] = [{}, {}]

    async def read(ws: websockets.ClientConnection, into: dict[tuple[str, str, int], float]) -> None:
        async for frame in ws:
            if isinstance(frame, str) and '"type":"partial"' in frame:
                m = json.loads(frame)
                into[(m["utterance_id"], m["kind"], m["seq"])] = time.perf_counter()

    readers = [asyncio.create_task(read(ws, into)) for ws, into in zip(listeners, seen, strict=True)]
    with wave.open(str(LONG_CLIP)) as w:
        pcm = w.readframes(w.getnframes())
    silence = bytes(16000)  # 0.5 s
    for _ in range(rounds):
        began = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm + silence), 640)):
            await speaker.send((pcm + silence)[i : i + 640])
            await asyncio.sleep(max(0.0, began + (k + 1) * 0.02 - time.perf_counter()))
        await asyncio.sleep(2.0)
    for task in readers:
        task.cancel()
    for ws in (speaker, *listeners):
        await ws.close()
    at_a, at_b = seen
    extra = [(at_b[k] - at_a[k]) * 1000 for k in at_a if k in at_b]
    return extra, len(at_a), len(at_b)


async def fan_out(urls: list[str], speaker_url: str, n: int, rounds: int) -> tuple[list[float], list[float], int]:
    arrivals = Arrivals()
    times = arrivals.times
    sockets = []
    for i in range(n):  # a few at a time: the servers share this machine's two cores with us
        sockets.append(await join(urls[i % len(urls)], f"l{i}", "de", audio=False))
    readers = [arrivals.record(ws, ("transcript",)) for ws in sockets]
    speaker = await join(speaker_url, "S", "en")
    await asyncio.sleep(2.0)
    pcm = one_second()
    lags, spreads, missing = [], [], 0
    for _ in range(rounds):
        uid, cut = await say(speaker, pcm)
        await arrivals.until(lambda u=uid: len(times.get(("transcript", u), [])) >= n, 30)
        got = times.get(("transcript", uid), [])
        missing += n - len(got)
        if got:
            lags.append((max(got) - cut) * 1000)
            spreads.append((max(got) - min(got)) * 1000)
        await asyncio.sleep(0.2)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in [*sockets, speaker]), return_exceptions=True)
    return lags, spreads, missing


def start_all(servers: list[ServerProcess]) -> None:
    with ThreadPoolExecutor(len(servers)) as pool:
        for f in [pool.submit(s.start) for s in servers]:
            f.result()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--fanout-rounds", type=int, default=10)
    p.add_argument("--listeners", type=int, default=500)
    p.add_argument("--partial-rounds", type=int, default=5)
    args = p.parse_args()
    print(f"load: {os.getloadavg()[0]:.1f} (1 min), cores: {os.cpu_count()}")
    room = str(args.listeners + 10)
    limits = ("--max-clients-per-room", room, "--max-connections-per-address", room, "--max-joins-per-minute", room)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisProcess(Path(tmp) / "redis").start()
        common = ("--log-level", "warning", *limits, "--redis-url", redis.url, "--partials")
        a, b = ServerProcess(Path(tmp) / "a", *common), ServerProcess(Path(tmp) / "b", *common)
        try:
            start_all([a, b])
            print("\n| cross-server extra latency | n | p50 ms | p95 ms |\n|---|---|---|---|")
            if args.rounds:
                extra = asyncio.run(extra_hop(a, b, args.rounds))
                for kind, values in extra.items():
                    print(f"| {kind} | {len(values)} | {pct(values, 50):.1f} | {pct(values, 95):.1f} |")
            if args.partial_rounds:
                hop, n_a, n_b = asyncio.run(partial_hop(a, b, args.partial_rounds))
                print(f"| partial (translation or transcript) | {len(hop)} | {pct(hop, 50):.1f} | {pct(hop, 95):.1f} |")
                print(f"partials: {n_a} at the listener on A, {n_b} at the listener on B")
            if not args.fanout_rounds:  # the fan-out part is skipped
                return
            two = asyncio.run(fan_out([a.ws_url, b.ws_url], a.ws_url, args.listeners, args.fanout_rounds))
        finally:
            for s in (a, b):
                s.stop()
            redis.kill()
        single = ServerProcess(Path(tmp) / "single", "--log-level", "warning", *limits)
        try:
            start_all([single])
            one = asyncio.run(fan_out([single.ws_url], single.ws_url, args.listeners, args.fanout_rounds))
        finally:
            single.stop()
    print(
        f"\n| {args.listeners} listeners | end of utterance → last listener p50 / max ms "
        "| first → last listener p50 ms | not delivered |"
    )
    print("|---|---|---|---|")
    for label, (lags, spreads, missing) in (("one server", one), ("two servers + Redis", two)):
        print(f"| {label} | {statistics.median(lags):.0f} / {max(lags):.0f} | {statistics.median(spreads):.0f} "
              f"| {missing} |")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.1f} (1 min)")


if __name__ == "__main__":
    main()
