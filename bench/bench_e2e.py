"""End to end through the real server and real sockets with the offline engine.

    python -m bench.bench_e2e [--repeat 2] [--data-dir data]

Starts `server_cpu.py` (default engine: cascade), connects listeners in several languages, and streams each clip at
real-time pace from a speaker connection, followed by silence (the server's VAD cuts the utterance). For every
listener it records speech end → translated text and → first audio, where "speech end" is the moment the clip's
last frame left the client, so the VAD's silence wait is included. It also prints the server's own `latency_ms`
(from its last voiced frame), the time from launch to ready, and resident memory.
Clips: the LibriVox clips of pocketsphinx-testdata (English, human) and espeak-ng clips in de/es/fr/pt.
`--server-root DIR` runs the server of another checkout, to compare two versions in the same window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import psutil
import websockets

from tests.audio import librivox_clips
from tests.engines.cascade_audio import ESPEAK_SENTENCES, espeak_clip
from tests.serverproc import ServerProcess

FRAME = 320  # 20 ms at 16 kHz


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def run_clip(url: str, speaker_lang: str, listeners: list[str], audio: np.ndarray) -> list[dict]:
    results: list[dict] = []
    conns = []
    try:
        for lang in listeners:
            ws = await websockets.connect(url, max_size=None)
            await ws.send(json.dumps({"type": "join", "name": f"l-{lang}", "language": lang, "room": "bench"}))
            await ws.recv()
            conns.append((lang, ws))
        speaker = await websockets.connect(url)
        await speaker.send(json.dumps({"type": "join", "name": "S", "language": speaker_lang, "room": "bench"}))
        await speaker.recv()
        seen: dict[str, dict] = {lang: {} for lang in listeners}
        done = asyncio.Event()
        speech_end = 0.0

        async def read(lang: str, ws) -> None:
            async for frame in ws:
                if not isinstance(frame, str):
                    continue
                m = json.loads(frame)
                if m["type"] in ("translation", "audio", "notice") and m["type"] not in seen[lang]:
                    seen[lang][m["type"]] = (time.monotonic() - speech_end, m.get("latency_ms"), m.get("text"))
                if all("audio" in s or "notice" in s for s in seen.values()):
                    done.set()

        readers = [asyncio.create_task(read(lang, ws)) for lang, ws in conns]
        data = pcm16(audio)
        t0 = time.monotonic()
        for i, off in enumerate(range(0, len(data), FRAME * 2)):
            await speaker.send(data[off : off + FRAME * 2])
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.monotonic()))
        speech_end = time.monotonic()
        for _ in range(50):  # 1 s of silence at real-time pace: the server's VAD ends the utterance
            await speaker.send(bytes(FRAME * 2))
            await asyncio.sleep(0.02)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 30)
        for r in readers:
            r.cancel()
        for lang in listeners:
            results.append({"listener": lang, **seen[lang]})
        await speaker.close()
    finally:
        for _, ws in conns:
            await ws.close()
    return results


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f}" if values else "-"


async def main_async(args: argparse.Namespace) -> None:
    # Default settings (engine auto), as `python server_cpu.py` runs; models reused from --data-dir.
    # Every clip opens its own room and connections from this one address: lift the per-address limits (issue 12),
    # which are for strangers, not for the benchmark.
    limits = ("--max-rooms-per-minute", "10000", "--max-joins-per-minute", "10000")
    limits += ("--max-connections-per-address", "1000")
    srv = ServerProcess(
        Path(args.data_dir), "--engine", "auto", "--log-level", "warning", *limits, *args.server_args,
        **({"root": args.server_root} if args.server_root else {}),
    )  # fmt: skip
    srv.start()
    port, ready_s, url = srv.port, srv.ready_seconds, srv.ws_url
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = (await http.get("/healthz")).json()
            mem_ready = (await http.get("/metrics")).json()["memory_mb"]
            print(f"engine: {health['engine']['name']} ({health['engine']['reason']})")
            print(f"launch → ready: {ready_s:.1f} s; resident memory when ready: {mem_ready:.0f} MB")
            clips: list[tuple[str, str, list[str], np.ndarray]] = [
                ("librivox", "en", ["pt", "es", "de"], audio) for _, audio, _ in librivox_clips()
            ]
            with tempfile.TemporaryDirectory() as tmp:
                for lang, sentences in ESPEAK_SENTENCES.items():
                    if lang in args.espeak:
                        clips += [("espeak", lang, ["en"], espeak_clip(s, lang, Path(tmp))) for s in sentences]
            text: dict[str, list[float]] = defaultdict(list)
            audio_t: dict[str, list[float]] = defaultdict(list)
            server_text: list[float] = []
            notices = 0
            for _ in range(args.repeat):
                for kind, lang, listeners, audio in clips:
                    for r in await run_clip(url, lang, listeners, audio):
                        if "translation" in r:
                            text[kind].append(r["translation"][0])
                            text["all"].append(r["translation"][0])
                            server_text.append(r["translation"][1] / 1000)
                        if "audio" in r:
                            audio_t[kind].append(r["audio"][0])
                            audio_t["all"].append(r["audio"][0])
                        notices += "notice" in r
                        if args.verbose:
                            print(kind, lang, r)
            metrics = (await http.get("/metrics")).json()
            assert srv.proc is not None
            server = psutil.Process(srv.proc.pid)
            helpers = server.children(recursive=True)  # apertium pipelines run as child processes
            uss = [p.memory_full_info().uss for p in [server, *helpers]]
    finally:
        srv.stop()
    print()
    print("| clips | n | text p50 ms | text p95 ms | first audio p50 ms | first audio p95 ms |")
    print("|---|---|---|---|---|---|")
    for kind in ("librivox", "espeak", "all"):
        print(
            f"| {kind} | {len(text[kind])} | {pct(text[kind], 50)} | {pct(text[kind], 95)} | "
            f"{pct(audio_t[kind], 50)} | {pct(audio_t[kind], 95)} |"
        )
    print(f"\nserver-measured speech end → text: p50 {pct(server_text, 50)} ms, p95 {pct(server_text, 95)} ms")
    print(f"untranslatable notices: {notices}; resident memory after the run: {metrics['memory_mb']:.0f} MB")
    print(f"private memory (USS), server + {len(uss) - 1} child processes: {sum(uss) / 2**20:.0f} MiB")
    print(f"/metrics latency_ms: {json.dumps(metrics['latency_ms'])}")
    print("\n| stage (/metrics stages_ms) | n | p50 ms | p95 ms |\n|---|---|---|---|")
    for stage, row in metrics.get("stages_ms", {}).items():
        print(f"| {stage} | {row['count']} | {row['p50']} | {row['p95']} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--espeak", nargs="*", default=["de", "es", "fr", "pt"])
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--server-root", type=Path, default=None, help="run the server of this checkout instead")
    p.add_argument("server_args", nargs="*", help="extra server flags after --")
    args = p.parse_args()
    args.data_dir = Path(args.data_dir).resolve()  # the server may run in another checkout (--server-root)
    args.server_root = args.server_root.resolve() if args.server_root else None
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
