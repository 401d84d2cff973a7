"""Ingest under load: N clients streaming an open microphone at real-time pace, with the test engine.

    python -m bench.bench_load [--streamers 50] [--seconds 60] [--room-size 5] [--frame-ms 20]

Runs the real server (test engine: the engine costs nothing, so this measures ingest — sockets, VAD, fan-out) in a
subprocess; the clients run in this process. Each client joins a room of `--room-size` (languages alternate, so
translations and speech are produced and fanned out too) and streams, on an absolute 20 ms schedule, the LibriVox
clip then 1.5 s of room tone (-60 dBFS), over and over. It notes on its own clock when the last frame of each clip
left it (the speech end) and when the transcript of that utterance came back.

Prints: disconnects (with close codes), utterances spoken / transcribed / lost, delay from the client's clock
(speech end → own transcript; it includes the 300 ms of silence the VAD waits for before it cuts) per third of the
run, the server's `latency_ms` p95 from /metrics, a ping's round trip, and the server's CPU, resident memory, asyncio
tasks and open file descriptors before and after (after: all clients gone). Exit status 1 when a goal is missed:
0 disconnects, 0 lost, delay p95 ≤ `--max-p95` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import websockets

from bench.realtime import reading, send_paced
from tests.serverproc import ServerProcess

CLIP = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
RATE = 16_000
LANGS = ("en", "de", "fr", "es", "pt")


@dataclass
class Client:
    index: int
    sent_ends: list[float] = field(default_factory=list)  # client clock: last frame of each clip left
    got: list[float] = field(default_factory=list)  # client clock: own transcript arrived
    pings: list[float] = field(default_factory=list)
    shed: int = 0  # utterances the server skipped and said so (dropped_utterance notices)
    closed: str | None = None
    my_id: str = ""


def _pcm(pause: float) -> tuple[bytes, bytes]:
    with wave.open(str(CLIP)) as w:
        speech = w.readframes(w.getnframes())
    tone = np.random.default_rng(0).standard_normal(int(pause * RATE)) * 10 ** (-60 / 20) * 32767
    return speech, tone.astype("<i2").tobytes()


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_client(url: str, c: Client, args: argparse.Namespace, speech: bytes, pause: bytes, stop: float) -> None:
    step = RATE * args.frame_ms // 1000 * 2
    lang = LANGS[c.index % len(LANGS)]
    pending_pings: dict[str, float] = {}
    try:
        async with websockets.connect(url, max_size=None, ping_interval=None, open_timeout=60) as ws:
            room = f"r{c.index // args.room_size}"
            await ws.send(json.dumps({"type": "join", "name": f"c{c.index}", "language": lang, "room": room}))
            welcome = json.loads(await ws.recv())
            c.my_id = welcome["client_id"]

            def on_message(msg: dict[str, Any], now: float) -> None:
                if msg["type"] == "transcript" and msg.get("client_id") == c.my_id:  # `speaker` is the recognised voice
                    c.got.append(now)
                elif msg["type"] == "notice" and msg.get("code") == "dropped_utterance":
                    c.shed += 1
                elif msg["type"] == "pong" and msg.get("id") in pending_pings:
                    c.pings.append(now - pending_pings.pop(msg["id"]))

            async with reading(ws, on_message):
                t = time.monotonic() + (c.index % 10) * 0.1  # staggered starts: people do not all talk in sync
                next_ping = t + 2.0
                while t < stop:
                    for part, is_speech in ((speech, True), (pause, False)):
                        t = await send_paced(ws, part, t, step, args.frame_ms / 1000)
                        if is_speech:
                            c.sent_ends.append(time.monotonic())
                        if t >= next_ping:
                            pending_pings[str(next_ping)] = time.monotonic()
                            await ws.send(json.dumps({"type": "ping", "id": str(next_ping)}))
                            next_ping += 2.0
                await asyncio.sleep(3.0)  # the last utterance's answer
    except websockets.ConnectionClosed as exc:
        c.closed = f"{exc.rcvd.code if exc.rcvd else 'no close frame'} {exc.rcvd.reason if exc.rcvd else ''}".strip()
    except (OSError, TimeoutError) as exc:
        c.closed = f"{type(exc).__name__}: {exc}"


def _server_stats(proc: psutil.Process, metrics: dict) -> dict[str, float]:
    return {
        "rss_mb": proc.memory_info().rss / 2**20,
        "fds": proc.num_fds(),
        "threads": proc.num_threads(),
        "tasks": metrics.get("tasks", float("nan")),
        "cpu_s": sum(proc.cpu_times()[:2]),
    }


async def scenario(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    speech, pause = _pcm(args.pause)
    assert server.proc is not None
    proc = psutil.Process(server.proc.pid)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await asyncio.sleep(0.5)
        before = _server_stats(proc, (await http.get("/metrics")).json())
        clients = [Client(i) for i in range(args.streamers)]
        started = time.monotonic()
        stop = started + args.seconds
        tasks = [asyncio.create_task(run_client(server.ws_url, c, args, speech, pause, stop)) for c in clients]
        await asyncio.sleep(max(0.0, stop - 1.0 - time.monotonic()))
        during = _server_stats(proc, {})  # just before the clients stop
        wall = time.monotonic() - started
        metrics = (await http.get("/metrics")).json()
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        # Speakers who hung up still have their last words finished (within drain_seconds): wait for that.
        deadline = time.monotonic() + 20
        while True:
            await asyncio.sleep(1.0)
            after = _server_stats(proc, (await http.get("/metrics")).json())
            if after["tasks"] <= before["tasks"] or time.monotonic() > deadline:
                break

    spoken = sum(len(c.sent_ends) for c in clients)
    heard = sum(min(len(c.got), len(c.sent_ends)) for c in clients)
    extra = sum(max(0, len(c.got) - len(c.sent_ends)) for c in clients)
    shed = sum(c.shed for c in clients)
    delays: list[tuple[float, float]] = []  # (when, delay)
    for c in clients:
        for end, got in zip(c.sent_ends, c.got, strict=False):
            delays.append((end - started, got - end))
    disconnects = [c.closed for c in clients if c.closed]
    pings = [p for c in clients for p in c.pings]
    print(f"load before: {args.load_before}, after: {os.getloadavg()[0]:.2f} (1-min average)")
    print(f"streamers {args.streamers}, {args.seconds:.0f} s, rooms of {args.room_size}, {args.frame_ms} ms frames")
    print(f"disconnects: {len(disconnects)} {sorted(set(disconnects))[:5]}")
    lost = spoken - heard - shed
    print(f"utterances spoken {spoken}, transcribed {heard}, shed with a notice {shed}, lost without a word {lost}"
          f" (extra cuts {extra})")  # fmt: skip
    d = [x for _, x in delays]
    print(f"delay speech end → transcript (client clock) ms: p50 {_pct(d, 50) * 1000:.0f} p95 {_pct(d, 95) * 1000:.0f}"
          f" max {max(d, default=float('nan')) * 1000:.0f}")  # fmt: skip
    for k in range(3):
        part = [x for w, x in delays if k * args.seconds / 3 <= w < (k + 1) * args.seconds / 3]
        print(f"  third {k + 1}: n {len(part)} p50 {_pct(part, 50) * 1000:.0f} p95 {_pct(part, 95) * 1000:.0f}")
    print(f"ping round trip ms: p50 {_pct(pings, 50) * 1000:.0f} p95 {_pct(pings, 95) * 1000:.0f} (n {len(pings)})")
    print(
        f"server latency_ms (its own clock, from arrival): transcript p95 {metrics['latency_ms']['transcript']['p95']}"
    )
    print(f"server CPU during run: {(during['cpu_s'] - before['cpu_s']) / wall * 100:.0f} % of a core "
          f"({(during['cpu_s'] - before['cpu_s']) / wall * 100 / args.streamers:.2f} % per stream)")  # fmt: skip
    for key in ("rss_mb", "tasks", "fds", "threads"):
        mid = f"{during[key]:.0f}" if key != "tasks" else "-"
        print(f"{key}: before {before[key]:.0f}, with clients {mid}, after {after[key]:.0f}")
    print(f"this benchmark's own CPU (the clients): {time.process_time() / wall * 100:.0f} % of a core")
    print(f"shed/dropped per /metrics: {metrics.get('utterances_shed', 0)} shed, {metrics['clients_dropped']} dropped")
    ok = not disconnects and spoken == heard and not shed and _pct(d, 95) <= args.max_p95
    print(f"goals (0 disconnects, 0 lost, p95 ≤ {args.max_p95:.1f} s): {'met' if ok else 'MISSED'}")
    return {
        "ok": ok,
        "disconnects": disconnects,
        "spoken": spoken,
        "heard": heard,
        "shed": shed,
        "lost": lost,
        "p95": _pct(d, 95),
        "before": before,
        "after": after,
        "metrics": metrics,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, run the scenario, stop the server; the results, with the server log's traceback count."""
    args.load_before = f"{os.getloadavg()[0]:.2f}"
    with tempfile.TemporaryDirectory() as tmp:
        # All clients come from one address here: lift the per-address limits of the access gate.
        per_address = ["--max-connections-per-address", str(args.streamers + 10)]
        per_address += ["--max-joins-per-minute", str(args.streamers * 2 + 10)]
        # Every client plays the same clip, 0.1 s apart in a room: to one-phone-per-voice that is one voice heard by
        # several phones, and all but one copy would be merged. They stand for different people: keep every copy.
        per_address.append("--no-one-phone-per-voice")
        server = ServerProcess(Path(tmp), "--log-level", "warning", *per_address, *args.server_args).start()
        try:
            results = asyncio.run(scenario(server, args))
        finally:
            server.stop()
        log = server.log.read_text(errors="replace")
    results["tracebacks"] = log.count("Traceback")
    print(f"server log: {results['tracebacks']} tracebacks, {log.count('WARNING')} warnings")
    if results["tracebacks"]:
        print(log[-3000:])
    return results


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streamers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--room-size", type=int, default=5)
    parser.add_argument("--frame-ms", type=int, default=20)
    parser.add_argument("--pause", type=float, default=1.5, help="room tone between clips, seconds")
    parser.add_argument("--max-p95", type=float, default=0.5)
    parser.add_argument("server_args", nargs="*", help="extra server flags, after --")
    return parser.parse_args(argv)


def main() -> int:
    results = run(arguments())
    return 0 if results["ok"] and not results["tracebacks"] else 1


if __name__ == "__main__":
    sys.exit(main())
