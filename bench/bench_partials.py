"""Streaming partials on the offline engine, through the real server and real sockets.

    python -m bench.bench_partials [--speakers 1 2 3 4] [--rounds 2] [--data-dir data]

For each count of simultaneous speakers, once with partials on and once off (`--no-partials`), a fresh server
(default engine: cascade) gets that many speakers, each in its own room with one Portuguese listener, each streaming
the LibriVox clips one after another at real-time pace (1 s of silence after each, so the VAD cuts the turn).
Printed per run:

- first partial: speech start → the listener's first `partial` (speech start = the clip's first voiced frame leaving
  the client, from Silero on the clip), and the server's own `elapsed_ms` for it;
- update interval: time between consecutive transcript partials of one utterance, at the listener;
- final: last frame of the clip sent → the final `transcript` at the listener (the VAD's silence wait included);
- CPU: the server's CPU seconds (process and children: apertium) per second of speech per speaker.

The host's load average is printed with every run: the machine may be shared.

    python -m bench.bench_partials --decode-cost

times one partial decode in-process instead (the cascade engine's transcribe on the first 1, 2, … s of a LibriVox
clip, plus the stable prefix's translation into Portuguese): what a partial update costs the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import websockets

from babelfish.config import Settings
from babelfish.segmenter import Segmenter, SegmenterConfig, silero_detector
from tests.audio import librivox_clips
from tests.serverproc import ServerProcess

FRAME = 320  # 20 ms at 16 kHz


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def speech_onset(audio: np.ndarray) -> float:
    """Seconds into the clip where the server's VAD first hears speech (same settings, same model)."""
    seg = Segmenter(silero_detector(), SegmenterConfig.from_settings(Settings()))
    data = pcm16(audio)
    for i, off in enumerate(range(0, len(data), FRAME * 2)):
        seg.feed(data[off : off + FRAME * 2], i * 0.02)
        if seg.open_serial is not None:
            return (i + 1) * 0.02
    return 0.0


async def speaker_run(url: str, room: str, clips: list[tuple[np.ndarray, float]], out: dict[str, list[float]]) -> None:
    listener = await websockets.connect(url, max_size=None)
    await listener.send(json.dumps({"type": "join", "name": "L", "language": "pt", "room": room, "audio": False}))
    await listener.recv()
    speaker = await websockets.connect(url, max_size=None)
    await speaker.send(json.dumps({"type": "join", "name": "S", "language": "en", "room": room, "audio": False}))
    await speaker.recv()
    marks: dict[str, float] = {}  # "start" (speech start) and "end" (last frame sent) of the clip being spoken
    finals = asyncio.Queue[None]()
    last_partial: dict[str, float] = {}

    async def read() -> None:
        async for frame in listener:
            if not isinstance(frame, str):
                continue
            m, now = json.loads(frame), time.monotonic()
            if m["type"] == "partial" and m["kind"] == "transcript":
                uid = m["utterance_id"]
                if uid not in last_partial and "start" in marks:
                    out["first"].append(now - marks["start"])
                    out["first_server"].append(m["elapsed_ms"] / 1000)
                elif uid in last_partial:
                    out["interval"].append(now - last_partial[uid])
                last_partial[uid] = now
            elif m["type"] == "transcript":
                if "end" in marks:
                    out["final"].append(now - marks["end"])
                    out["final_server"].append(m["latency_ms"] / 1000)
                finals.put_nowait(None)

    reader = asyncio.create_task(read())
    try:
        for audio, onset in clips:
            marks.clear()
            data = pcm16(audio)
            t0 = time.monotonic()
            for i, off in enumerate(range(0, len(data), FRAME * 2)):
                await speaker.send(data[off : off + FRAME * 2])
                if "start" not in marks and (i + 1) * 0.02 >= onset:
                    marks["start"] = time.monotonic()
                await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.monotonic()))
            marks["end"] = time.monotonic()
            t1 = time.monotonic()
            for i in range(50):  # 1 s of silence: the server's VAD ends the turn
                await speaker.send(bytes(FRAME * 2))
                await asyncio.sleep(max(0.0, t1 + (i + 1) * 0.02 - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finals.get(), 20)
            out["speech"].append(len(audio) / 16000)
    finally:
        reader.cancel()
        await speaker.close()
        await listener.close()


def cpu_seconds(pid: int) -> float:
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def ms(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f}" if values else "-"


async def one_run(args: argparse.Namespace, speakers: int, partials: bool, clips: list) -> str:
    limits = ("--max-rooms-per-minute", "10000", "--max-joins-per-minute", "10000")
    flags = ["--engine", "auto", "--log-level", "warning", *limits, "--speaker-embedder", "off"]
    if not partials:
        flags.append("--no-partials")
    srv = ServerProcess(Path(args.data_dir), *flags).start()
    assert srv.proc is not None
    try:
        out: dict[str, list[float]] = {k: [] for k in ("first", "first_server", "interval", "final", "final_server")}
        out["speech"] = []
        before = cpu_seconds(srv.proc.pid)
        await asyncio.gather(*(speaker_run(srv.ws_url, f"bench{n}", clips * args.rounds, out) for n in range(speakers)))
        cpu = cpu_seconds(srv.proc.pid) - before
        async with httpx.AsyncClient(base_url=srv.url) as http:
            metrics = (await http.get("/metrics")).json()
        p = metrics["partials"]
        partial_note = f"{p['decodes']} decodes (p50 {p['decode_ms']['p50']} ms), shed {p['shed']}"
        partial_note += f"; finals shed {metrics['utterances_shed']}"
    finally:
        srv.stop()
    speech = sum(out["speech"])
    load = os.getloadavg()[0]
    return (
        f"| {speakers} | {'on' if partials else 'off'} | {ms(out['first'], 50)} / {ms(out['first'], 95)} "
        f"({ms(out['first_server'], 50)}) | {ms(out['interval'], 50)} / {ms(out['interval'], 95)} | "
        f"{ms(out['final'], 50)} / {ms(out['final'], 95)} ({ms(out['final_server'], 50)}) | "
        f"{cpu / speech:.2f} | {len(out['final'])} | {load:.1f} | {partial_note} |"
    )


async def main_async(args: argparse.Namespace) -> None:
    clips = [(audio, speech_onset(audio)) for _, audio, _ in librivox_clips()]
    print(f"{len(clips)} LibriVox clips, {sum(len(a) for a, _ in clips) / 16000:.1f} s, × {args.rounds} per speaker")
    print(
        "| speakers | partials | first partial p50 / p95 ms (server) | update interval p50 / p95 ms | "
        "final p50 / p95 ms (server) | server CPU s per speech s | finals | load 1 min | partial decodes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.speakers:
        for partials in (True, False):
            print(await one_run(args, n, partials, clips), flush=True)


def decode_cost(args: argparse.Namespace) -> None:
    from babelfish.engines.base import Utterance
    from babelfish.engines.cascade.engine import CascadeEngine

    engine = CascadeEngine.load(Settings(data_dir=Path(args.data_dir)))
    _, audio, _ = max(librivox_clips(), key=lambda c: len(c[1]))
    engine.transcribe(Utterance(audio[:16000], "en"))  # warm-up
    print(f"load 1 min {os.getloadavg()[0]:.1f}")
    print("| audio s | transcribe p50 ms | + translate (pt) p50 ms | words |\n|---|---|---|---|")
    for seconds in range(1, int(len(audio) / 16000) + 1):
        asr, mt, words = [], [], 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            tr = engine.transcribe(Utterance(audio[: seconds * 16000], "en"))
            t1 = time.perf_counter()
            if tr is not None:
                engine.translate_text(tr.text, "en", ["pt"])
                words = len(tr.text.split())
            asr.append(t1 - t0)
            mt.append(time.perf_counter() - t1)
        print(f"| {seconds} | {ms(asr, 50)} | {ms(mt, 50)} | {words} |")
    print(f"load 1 min {os.getloadavg()[0]:.1f}")
    engine.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--speakers", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--decode-cost", action="store_true", help="time one partial decode in-process instead")
    p.add_argument("--repeat", type=int, default=5, help="--decode-cost: decodes per length")
    args = p.parse_args()
    if args.decode_cost:
        decode_cost(args)
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
