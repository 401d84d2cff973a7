"""Many people talking at once in one room, offline engine: speech end → text over time, and shedding.

    python -m bench.bench_speakers [--speakers 6] [--seconds 120] [--data-dir data] [-- server flags]

Runs the real server (engine auto → cascade) in a subprocess. K participants join one room, each in its own language
(en speaks the LibriVox clips; de/es/fr/pt/it speak espeak-ng sentences), and each talks on its own: a clip at
real-time pace, then 0.5–2.5 s of silence (seeded), until the time is up. Everyone listens to everyone, so each
utterance is transcribed and translated into the other K-1 languages (text and speech).

Delays are on the client's clock, from the moment a clip's last frame left its speaker: to the speaker's own
transcript, to each translation at each listener, and to each listener's speech (`audio`). They are printed per
third of the run: a backlog shows as a p95 that grows. Utterances the server skipped by its shedding policy (a
`dropped_utterance` notice with reason `server_busy`) are counted, as are clips that got neither a transcript nor a
notice (lost); and, per translation a listener got, whether its speech came, was skipped with a `speech_skipped`
notice, or neither (text first: babelfish/inference.py).

`--server-root DIR` runs the server of another checkout (e.g. `git archive` of an older commit) with this client,
to compare two versions in the same window.

Also printed: the translation pipelines started and evicted (/metrics `mt_pipelines`: churn) and the private memory
(USS) of the server's child processes (nearly all apertium pipelines), sampled every 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import websockets

from bench.realtime import reading, send_paced
from tests.audio import librivox_clips
from tests.engines.cascade_audio import ESPEAK_SENTENCES, espeak_clip
from tests.serverproc import ServerProcess

LANGS = ("en", "es", "fr", "pt", "de", "it")
FRAME = 320  # 20 ms at 16 kHz


@dataclass
class Speaker:
    index: int
    lang: str
    clips: list[bytes]
    ends: list[float] = field(default_factory=list)  # client clock: last frame of each clip left
    transcripts: list[tuple[float, str]] = field(default_factory=list)  # (arrival, utterance_id), own
    shed: list[float] = field(default_factory=list)
    translations: list[tuple[float, str]] = field(default_factory=list)  # heard from others
    audio: list[tuple[float, str]] = field(default_factory=list)  # speech heard from others (first chunk each)
    speech_skipped: list[tuple[float, str]] = field(default_factory=list)
    my_id: str = ""
    closed: str | None = None


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f}" if values else "-"


async def talk(url: str, s: Speaker, stop: float, ready: asyncio.Barrier) -> None:
    rng = random.Random(s.index)
    silence = bytes(FRAME * 2)
    try:
        async with websockets.connect(url, max_size=None, ping_interval=None, open_timeout=60) as ws:
            await ws.send(json.dumps({"type": "join", "name": f"p{s.index}", "language": s.lang, "room": "talk"}))
            s.my_id = json.loads(await ws.recv())["client_id"]

            def on_message(msg: dict[str, Any], now: float) -> None:
                if msg["type"] == "transcript" and msg.get("client_id") == s.my_id:  # `speaker` is the recognised voice
                    s.transcripts.append((now, msg["utterance_id"]))
                elif msg["type"] == "translation":
                    s.translations.append((now, msg["utterance_id"]))
                elif msg["type"] == "audio":
                    if all(u != msg["utterance_id"] for _, u in s.audio):  # a streaming voice sends several
                        s.audio.append((now, msg["utterance_id"]))
                elif msg["type"] == "notice" and msg.get("code") == "speech_skipped":
                    s.speech_skipped.append((now, msg["utterance_id"]))
                elif msg["type"] == "notice" and msg.get("reason") == "server_busy":
                    s.shed.append(now)

            async with reading(ws, on_message):
                await ready.wait()
                t = time.monotonic() + rng.uniform(0, 2)
                k = 0
                while t < stop:
                    clip = s.clips[k % len(s.clips)]
                    k += 1
                    pause = bytes(int(rng.uniform(0.5, 2.5) * 16000) * 2)
                    t = await send_paced(ws, clip, t, FRAME * 2, 0.02)
                    s.ends.append(time.monotonic())
                    t = await send_paced(ws, pause, t, FRAME * 2, 0.02)
                for _ in range(int(10 / 0.02)):  # silence while the last answers come in
                    await ws.send(silence)
                    await asyncio.sleep(0.02)
    except websockets.ConnectionClosed as exc:
        s.closed = f"{exc.rcvd.code if exc.rcvd else 'none'} {exc.rcvd.reason if exc.rcvd else ''}"


async def _children_mib(server: ServerProcess, samples: list[float]) -> None:
    """USS of the server's child processes (MiB) every 10 s."""
    assert server.proc is not None
    root = psutil.Process(server.proc.pid)
    while True:
        await asyncio.sleep(10)
        samples.append(await asyncio.to_thread(_uss_mib, root))


def _uss_mib(root: psutil.Process) -> float:
    total = 0
    for p in root.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += p.memory_full_info().uss
    return total / 2**20


def _clips(lang: str, folder: Path) -> list[bytes]:
    if lang == "en":
        audio = [a for _, a, _ in librivox_clips()]
    else:
        audio = [espeak_clip(text, lang, folder) for text in ESPEAK_SENTENCES[lang]]
    return [(np.clip(a, -1, 1) * 32767).astype("<i2").tobytes() for a in audio]


async def scenario(server: ServerProcess, args: argparse.Namespace, folder: Path) -> None:
    speakers = [Speaker(i, LANGS[i % len(LANGS)], _clips(LANGS[i % len(LANGS)], folder)) for i in range(args.speakers)]
    ready = asyncio.Barrier(args.speakers)
    started = time.monotonic()
    stop = started + args.seconds
    samples: list[float] = []
    sampler = asyncio.create_task(_children_mib(server, samples))
    try:
        await asyncio.gather(*(talk(server.ws_url, s, stop, ready) for s in speakers))
    finally:
        sampler.cancel()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        metrics = (await http.get("/metrics")).json()

    utterance_end: dict[str, float] = {}  # utterance id → its clip's end: the last clip end before the transcript
    transcript_delays: list[tuple[float, float]] = []
    for s in speakers:
        for arrival, uid in s.transcripts:
            end = max((e for e in s.ends if e <= arrival), default=None)
            if end is not None and end not in utterance_end.values():
                utterance_end[uid] = end
                transcript_delays.append((end - started, arrival - end))
    translation_delays = [
        (utterance_end[u] - started, t - utterance_end[u])
        for s in speakers
        for t, u in s.translations
        if u in utterance_end
    ]
    audio_delays = [
        (utterance_end[u] - started, t - utterance_end[u]) for s in speakers for t, u in s.audio if u in utterance_end
    ]
    spoken = sum(len(s.ends) for s in speakers)
    answered = sum(len(s.transcripts) for s in speakers)
    shed = sum(len(s.shed) for s in speakers)
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average); {args.speakers} speakers, {args.seconds:.0f} s")
    print(f"disconnects: {[s.closed for s in speakers if s.closed]}")
    print(f"clips spoken {spoken}; transcribed {answered}; shed by policy (speaker told) {shed}; "
          f"neither {spoken - answered - shed} (negative: the VAD cut some clips in two)")  # fmt: skip
    translated = sum(len(s.translations) for s in speakers)
    heard = sum(len(s.audio) for s in speakers)
    skipped = sum(len(s.speech_skipped) for s in speakers)
    print(f"speech per translation received: {translated} translations; speech came {heard}, skipped with a notice "
          f"{skipped}, neither {translated - heard - skipped}")  # fmt: skip
    rows = (("transcript", transcript_delays), ("translation", translation_delays), ("speech", audio_delays))
    for name, delays in rows:
        all_ = [d for _, d in delays]
        print(f"speech end → {name} ms: n {len(all_)} p50 {_pct(all_, 50)} p95 {_pct(all_, 95)}")
        for k in range(3):
            part = [d for w, d in delays if k * args.seconds / 3 <= w < (k + 1) * args.seconds / 3]
            print(f"  third {k + 1}: n {len(part)} p50 {_pct(part, 50)} p95 {_pct(part, 95)}")
    events = metrics.get("mt_pipelines", {})
    minutes = (time.monotonic() - started) / 60
    median = np.median(samples) if samples else 0.0
    print(f"translation pipelines: {events} ({events.get('start', 0) / minutes:.1f} starts/min); children "
          f"(apertium) USS MiB median {median:.0f}, max {max(samples, default=0):.0f}")  # fmt: skip
    print(f"/metrics: utterances_shed {metrics.get('utterances_shed')}, latency_ms {metrics['latency_ms']}")
    print(f"/metrics: speech {metrics.get('speech')}, revisions {metrics.get('revisions')}")
    print(f"/metrics: stages_ms {metrics.get('stages_ms')}, speaker_wait_ms {metrics.get('speaker_wait_ms')}")
    print(f"/metrics: partials {metrics.get('partials')}, cpu_percent {metrics.get('cpu_percent')}")
    print(f"/metrics: first_passes {metrics.get('first_passes')}, decoder_loops {metrics.get('decoder_loops')}")
    print(f"/metrics: early_reads {metrics.get('early_reads')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--server-root", type=Path, default=None, help="run the server of this checkout instead")
    parser.add_argument("server_args", nargs="*", help="extra server flags, after --")
    args = parser.parse_args()
    server = ServerProcess(
        Path(args.data_dir).resolve(), "--engine", "auto", "--log-level", "warning", *args.server_args,
        **({"root": args.server_root.resolve()} if args.server_root else {}),
    )  # fmt: skip
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(scenario(server, args, Path(tmp)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
