"""Who is speaking: how well the default embedder tells real voices apart, what it costs, what it adds to latency.

    python -m bench.bench_speakers_id [--parts 123] [--engine cascade] [--repeat 5]

1. Real human speech (pocketsphinx-testdata: one LibriVox reader, one AN4 speaker, and pocketsphinx's own recordings
   by one speaker; tests/voices.py) cut into pieces of 0.5-3 s and whole clips: same-speaker and different-speaker
   cosine similarities, the EER per length (where utterances become too short to tell), and what the registry
   actually compares (an utterance against a voice averaged over that speaker's other clips) with the EER and the
   accuracy of the configured threshold.
2. Embedding time per second of audio (one worker thread, as the server runs it).
3. A two-person conversation through one client on the real server: the LibriVox reader and the second speaker take
   turns at real-time pace; labelling accuracy (each person keeps one label, the two labels differ) and what the text
   path waited for the label after the transcript was ready (server metric `speaker_wait_ms`), against the same
   conversation with recognition off (transcript latency p50 of both runs).
Timings on a shared machine are noisy: compare within one run, and note `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import websockets

from babelfish.config import Settings
from babelfish.speakers.embedder import ResemblyzerEmbedder
from tests.serverproc import ServerProcess
from tests.voices import RATE, pcm16, voices

LENGTHS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, None)  # None: whole clips


def pieces(clip: np.ndarray, seconds: float | None) -> list[np.ndarray]:
    if seconds is None:
        return [clip]
    n = int(seconds * RATE)
    return [clip[i : i + n] for i in range(0, len(clip) - n + 1, n)]


def eer(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the threshold where false accepts meet false rejects."""
    grid = np.linspace(0.0, 1.0, 2001)
    far = np.array([(diff >= t).mean() for t in grid])
    frr = np.array([(same < t).mean() for t in grid])
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2), float(grid[i])


def dist(x: np.ndarray) -> str:
    p = np.percentile(x, [5, 50, 95])
    return f"n={len(x):4d} min {x.min():.2f} p5 {p[0]:.2f} median {p[1]:.2f} p95 {p[2]:.2f} max {x.max():.2f}"


def quality(embedder: ResemblyzerEmbedder, settings: Settings) -> None:
    v = voices()
    print("== 1. real voices:", {k: f"{len(c)} clips, {sum(map(len, c)) / RATE:.1f} s" for k, c in v.items()})
    items: list[tuple[str, int, float | None, np.ndarray]] = []
    for who, clips in v.items():
        for ci, clip in enumerate(clips):
            for seconds in LENGTHS:
                for piece in pieces(clip, seconds):
                    with contextlib.suppress(ValueError):  # a silent piece
                        items.append((who, ci, seconds, embedder.embed(piece)))
    print("pairs of pieces of the same length (pieces of one clip never paired):")
    for seconds in LENGTHS:
        same, diff = [], []
        chosen = [it for it in items if it[2] == seconds]
        for (w1, c1, _, e1), (w2, c2, _, e2) in itertools.combinations(chosen, 2):
            if w1 == w2 and c1 == c2:
                continue
            (same if w1 == w2 else diff).append(float(e1 @ e2))
        s, d = np.array(same), np.array(diff)
        rate, at = eer(s, d)
        label = "whole" if seconds is None else f"{seconds:.1f} s"
        print(f"  {label:>6}: EER {rate * 100:5.1f} % at {at:.3f} | same {dist(s)} | different {dist(d)}")
    # What the registry compares: an utterance (>= min seconds) against a voice averaged over the speaker's
    # other clips.
    same, diff = [], []
    long_enough = [it for it in items if it[2] is None or it[2] >= settings.speaker_min_seconds]
    for who, ci, _, e in long_enough:
        for other in v:
            refs = [x[3] for x in items if x[0] == other and x[2] is None and not (other == who and x[1] == ci)]
            centre = np.mean(refs, axis=0)
            centre /= np.linalg.norm(centre)
            (same if other == who else diff).append(float(e @ centre))
    s, d = np.array(same), np.array(diff)
    rate, at = eer(s, d)
    t = settings.speaker_threshold
    accuracy = ((s >= t).sum() + (d < t).sum()) / (len(s) + len(d))
    print(f"utterance >= {settings.speaker_min_seconds} s against a known voice: EER {rate * 100:.1f} % at {at:.3f}")
    print(f"  same      {dist(s)}\n  different {dist(d)}")
    print(f"  threshold {t}: accuracy {accuracy * 100:.1f} %, false rejects {(s < t).mean() * 100:.1f} %, "
          f"false accepts {(d >= t).mean() * 100:.1f} %")  # fmt: skip


def speed(embedder: ResemblyzerEmbedder, repeat: int) -> None:
    clip = np.concatenate(voices()["librivox"])
    print("== 2. embedding time (one thread of the server's speaker worker)")
    for seconds in (1.5, 3.0, 7.0, 15.0):
        audio = clip[: int(seconds * RATE)]
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            embedder.embed(audio)
            times.append(time.perf_counter() - started)
        ms = statistics.median(times) * 1000
        print(f"  {seconds:4.1f} s of speech: median {ms:6.1f} ms = {ms / seconds:5.1f} ms per second of audio")


async def conversation(url: str, turns: list[tuple[str, np.ndarray]]) -> list[tuple[str, dict]]:
    ws = await websockets.connect(url, max_size=None)
    await ws.send(json.dumps({"type": "join", "name": "Table phone", "language": "en", "audio": False}))
    assert json.loads(await ws.recv())["type"] == "welcome"
    got: list[tuple[str, dict]] = []
    current = [""]

    async def read() -> None:
        async for raw in ws:
            if isinstance(raw, str) and (m := json.loads(raw))["type"] == "transcript":
                got.append((current[0], m))

    reader = asyncio.create_task(read())
    try:
        for who, clip in turns:
            current[0] = who
            pcm = pcm16(clip) + bytes(2 * RATE)  # the turn, then 1 s of silence: the server's VAD ends it
            for i in range(0, len(pcm), 640):  # 20 ms frames at real-time pace
                await ws.send(pcm[i : i + 640])
                await asyncio.sleep(0.02)
        await asyncio.sleep(8)  # the last turn's transcript
    finally:
        reader.cancel()
        await ws.close()
    return got


def server_run(engine: str, recognition: str, turns: list[tuple[str, np.ndarray]]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(Path(tmp) / "data", "--engine", engine, "--speaker-embedder", recognition,
                            "--log-level", "warning").start(timeout=300)  # fmt: skip
        try:
            got = asyncio.run(conversation(srv.ws_url, turns))
            metrics = httpx.get(srv.url + "metrics", timeout=10).json()
        finally:
            srv.stop()
    labels: dict[str, list[str]] = {}
    for who, m in got:
        labels.setdefault(who, []).append(m["speaker"]["id"])
    majority = {who: max(set(ids), key=ids.count) for who, ids in labels.items()}
    correct = sum(ids.count(majority[who]) for who, ids in labels.items())
    distinct = len(set(majority.values())) == len(majority)
    return {
        "transcripts": len(got),
        "labelled_right": correct if distinct else 0,
        "labels": {who: sorted(set(ids)) for who, ids in labels.items()},
        "transcript_p50_ms": statistics.median(m["latency_ms"] for _, m in got) if got else None,
        "speaker_wait_ms": metrics.get("speaker_wait_ms"),
        "ready_s": round(srv.ready_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="123", help="which parts to run, e.g. 12 or 3")
    parser.add_argument("--engine", default="cascade", help="server engine for part 3 (test: no ASR time)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("load:", os.getloadavg())
    settings = Settings()
    if "1" in args.parts or "2" in args.parts:
        embedder = ResemblyzerEmbedder()
        if "1" in args.parts:
            quality(embedder, settings)
        if "2" in args.parts:
            speed(embedder, args.repeat)
    if "3" not in args.parts:
        return
    v = voices()
    reader, other = v["librivox"], v["dhd"]
    turns = [t for pair in itertools.zip_longest(reader, other) for t in pair if t is not None]
    named = [("reader" if any(t is c for c in reader) else "other", t) for t in turns]
    print(f"== 3. two people, one client, {len(named)} turns at real-time pace, engine {args.engine}")
    for recognition in ("off", "resemblyzer"):
        result = server_run(args.engine, recognition, named)
        print(f"  recognition {recognition}: {json.dumps(result)}")
        print("  load:", os.getloadavg())


if __name__ == "__main__":
    main()
