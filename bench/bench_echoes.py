"""One phone per voice: false merges, misses and the latency the kept copy pays.

    python -m bench.bench_echoes [--parts 1234] [--seed 0] [--servers 1,2] [--relay-ms 2,20] [--runs 8]

1. Decisions (no server, faster than real time): each scenario makes what two phones' microphones pick up, cuts each
   stream with the real VAD (Silero, the server's segmenter settings) at simulated arrival times, and runs the real
   `Echoes` on the copies in the order and at the times the server would see them (a simulated clock, so max_wait is
   honoured exactly). Counts per scenario class:
   (a) one speech clip into two phones, the second 20-150 ms later and 6-12 dB quieter, each with its own room noise:
       should deliver once (a second delivery is a miss);
   (b) two different people (LibriVox reader, AN4 speaker, pocketsphinx's own speaker, espeak-ng voices) talking at
       the same time into two phones, each phone also hearing the other person 15 dB down: should deliver both (a
       lost one is a false merge);
   (c) the same person on two phones, one phone hearing only part: long overlap (the second phone misses the first
       10-20 %: deliver once, from the complete copy), a subset (it hears only the last 40 %: deliver once, the
       complete copy) and staggered halves (first 60 % / last 60 %: neither copy holds all of it, both are delivered
       by design: reported, not counted as a miss).
   And the wait: how long the kept copy waited for its rival (from its own cut to its verdict). A phone counts as
   speaking from its open event to its cut, and the filter may look at what it heard so far (its segment's windows
   up to its last whole ~100 ms VAD batch), as the intake lets it look at the segmenter's open segment; with
   `--no-look` it may not (the rule before: wait while another phone is mid-utterance).
   With `--servers 2` the same, with the two phones on two servers: two `Echoes` linked as the cluster links them
   (each tells the other its phones' open speech, copies with their envelopes, verdicts and outcomes), every frame
   arriving `--relay-ms` later (simulated time; bench_cluster measures the Redis hop at ~1 ms p50, ~10 ms p95 on a
   loaded machine).
2. Through the real server (TestClient, fake engine, real VAD, real time): a single-phone turn's transcript latency
   with the feature on and off, and the kept copy's latency in scenario (a).
3. Through a real cluster (redis-server, two servers with the test engine, real time): the two phones on different
   servers, a listener on the second; scenario (a) `--runs` times and (b) `--runs` times: deliveries counted.
4. (d) A table in a room (bench/room.py, no server, as part 1): 2 and then 4 people take turns, each with a phone in
   front of them that hears everyone through the room; `--runs` runs each: turns delivered once, and from the
   speaker's own phone; and each pause an early read would take (babelfish/early.py), with the phones fed in step:
   read on the speaker's own phone, and left to it by the others (babelfish/heard_better.py).
   (e) The same, but the last phone joins just before its person first talks (0.3 s, then 0.1 s): its turns kept from
   its own phone, the first and the second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babelfish.config import Settings
from babelfish.echoes import Copy, EchoConfig, Echoes, Verdict, envelopes, make_copy
from babelfish.segmenter import WINDOW, OpenSegment, Segment, Segmenter, SegmenterConfig, silero_detector
from tests.audio import read_wav
from tests.voices import RATE, voices

FRAME = 320  # 20 ms frames, as the page sends
BATCH = 5  # frames in one of the intake's VAD batches (~100 ms)
LOOK = True  # the filter may look at an open phone's speech so far (--no-look: it may not)


def espeak_clips() -> list[np.ndarray]:
    texts = [
        ("en-us+m3", "Could you tell me where the train station is, please?"),
        ("en-gb+f2", "I think we should meet again next week to finish the plan."),
        ("en-us+f4", "The weather has been lovely all morning, hasn't it?"),
        ("en-gb-scotland+m1", "Please send me the numbers before the meeting starts."),
    ]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (voice, text) in enumerate(texts):
            path = Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
            out.append(read_wav(path))
    return out


def speakers() -> dict[str, list[np.ndarray]]:
    found = voices()
    for i, clip in enumerate(espeak_clips()):
        found[f"espeak{i}"] = [clip]
    return {k: [c for c in v if len(c) > 1.2 * RATE] for k, v in found.items()}


def db(x: float) -> float:
    return float(10 ** (x / 20))


def noise(n: int, level_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Room-ish noise: pink-ish (white through a one-pole low-pass) at `level_dbfs` RMS."""
    white = rng.standard_normal(n).astype(np.float32)
    pink = np.zeros(n, np.float32)
    acc = 0.0
    for i in range(0, n, 4096):  # cheap low-pass: cumulative sum with leak, vectorised per block
        block = white[i : i + 4096]
        k = 0.97 ** np.arange(len(block))
        pink[i : i + 4096] = np.convolve(block, 0.97 ** np.arange(64))[: len(block)] + acc * k
        acc = float(pink[i + len(block) - 1])
    pink /= np.sqrt(np.mean(pink**2)) + 1e-9
    return pink * db(level_dbfs)


def place(total: int, clip: np.ndarray, at: float, gain_db: float) -> np.ndarray:
    out = np.zeros(total, np.float32)
    i = int(at * RATE)
    n = min(len(clip), total - i)
    out[i : i + n] = clip[:n] * db(gain_db)
    return out


@dataclass
class Cut:
    phone: str
    segment: Segment
    at: float  # simulated time the VAD cut it
    net: float = 0.0  # the phone's network delay: its frame k arrives at (k+1)·20 ms + net


def hearing(c: Cut, clock: Clock, vad_threshold: float) -> Callable[[], OpenSegment | None]:
    """What the intake lets the filter read of `c`'s phone while it speaks: the segment's windows up to the last
    whole VAD batch that arrived by now (the segmenter's open segment, as Segmenter.open_segment gives it)."""
    seg, step = c.segment, WINDOW / RATE
    probs = seg.speech_probs
    opened = np.flatnonzero(probs >= vad_threshold)
    pre = int(opened[0]) if len(opened) else 0  # the preroll before the window that opened it
    voiced = np.flatnonzero(probs >= max(0.05, vad_threshold - 0.15))
    t0 = seg.speech_end - ((int(voiced[-1]) if len(voiced) else 0) + 1) * step  # as make_copy places it

    def heard() -> OpenSegment | None:
        batch_end = c.net + np.floor((clock.now - c.net) / (BATCH * FRAME / RATE) + 1e-9) * BATCH * FRAME / RATE
        n = min(len(probs), int((batch_end - t0) / step + 1e-9))  # window j arrived at t0 + (j + 1)·step
        if n <= pre:
            return None
        return OpenSegment(seg.serial, seg.audio[: n * WINDOW], probs[:n], t0 + (pre + 1) * step, (n - pre) * step)

    return heard


def cut(stream: np.ndarray, phone: str, net_delay: float, cfg: SegmenterConfig) -> list[Cut]:
    """The server's VAD over one phone's stream; frame k arrives at (k+1)·20 ms + net_delay (simulated clock)."""
    seg = Segmenter(silero_detector(), cfg)
    pcm = (np.clip(stream, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes()
    out: list[Cut] = []
    batch: list[tuple[bytes, float]] = []
    for k, i in enumerate(range(0, len(pcm), FRAME * 2)):
        arrival = (k + 1) * FRAME / RATE + net_delay
        batch.append((pcm[i : i + FRAME * 2], arrival))
        if len(batch) == BATCH:  # the intake's ~100 ms VAD batches
            out += [Cut(phone, s, arrival, net_delay) for s in seg.feed_many(batch)]
            batch = []
    if batch:
        out += [Cut(phone, s, batch[-1][1], net_delay) for s in seg.feed_many(batch)]
    end = seg.end_utterance(len(stream) / RATE + net_delay)
    if end is not None:
        out.append(Cut(phone, end, len(stream) / RATE + net_delay, net_delay))
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SimLink:
    """A server's EchoLink in simulated time: each frame reaches the other server's Echoes `latency` s later."""

    def __init__(self, clock: Clock, latency: float, wire: list[tuple[float, int, Callable[[], None]]]) -> None:
        self.clock, self.latency, self.wire = clock, latency, wire
        self.peer: Echoes | None = None
        self.bytes = 0

    def shares(self, room: str) -> bool:
        return True

    def echo(self, room: str, body: dict[str, Any], payload: bytes = b"") -> None:
        assert self.peer is not None
        self.bytes += len(json.dumps(body)) + len(payload)
        peer = self.peer
        due = self.clock.now + self.latency
        origin = f"server-{id(self):x}"
        heapq.heappush(self.wire, (due, next(_order), lambda: peer.remote(room, origin, body, payload)))


_order = itertools.count()


async def decide(
    cuts: list[Cut], config: EchoConfig, servers: int = 1, latency: float = 0.0, sent: list[int] | None = None
) -> list[tuple[Cut, Verdict]]:
    """The real Echoes on these cuts, in simulated time: each copy is registered at its cut and admitted at once;
    each phone counts as speaking from its first voiced window to its cut (what the intake reports).
    servers=2: phone A on one server, every other phone on a second, linked (SimLink); `sent` gets the bytes relayed."""
    clock = Clock()
    ids = itertools.count(1)
    wire: list[tuple[float, int, Callable[[], None]]] = []
    links = [SimLink(clock, latency, wire) for _ in range(servers)]
    nodes = [
        Echoes(config, lambda: f"u{next(ids)}", clock, link=link if servers > 1 else None, wall=clock) for link in links
    ]
    if servers > 1:
        links[0].peer, links[1].peer = nodes[1], nodes[0]

    def node(phone: str) -> Echoes:
        return nodes[0] if phone == "A" or servers == 1 else nodes[1]

    def deliver() -> None:
        while wire and wire[0][0] <= clock.now + 1e-9:
            heapq.heappop(wire)[2]()

    def until_due(limit: float) -> float:
        """Simulated seconds to the next step: at most `limit`, never past the next frame's arrival."""
        return max(0.0, min(limit, wire[0][0] - clock.now)) if wire else limit

    events: list[tuple[float, int, str, Cut]] = []
    for c in cuts:
        start = c.segment.speech_end - (len(c.segment.audio) / RATE)  # roughly when its speech opened
        events.append((max(0.0, start + 0.25), 0, "open", c))
        events.append((c.at, 1, "cut", c))
    events.sort(key=lambda e: (e[0], e[1]))
    tasks: list[tuple[Cut, asyncio.Task[Verdict]]] = []
    real_start = time.monotonic()
    for at, _, kind, c in events:
        # Let time pass: waiting copies wake at their deadlines (asyncio.timeout runs on the real loop clock, so the
        # simulated clock is moved in real time too, scaled 1:1 but only across gaps where someone waits).
        while clock.now < at:
            step = until_due(min(at - clock.now, 0.02))
            pending = [t for _, t in tasks if not t.done()]
            if pending:
                await asyncio.sleep(step)
            clock.now += step
            deliver()
            await asyncio.sleep(0)
        deliver()
        echoes = node(c.phone)
        if kind == "open":
            echoes.speech_open("r", c.phone, at, hearing(c, clock, config.vad_threshold) if LOOK else None)
        else:
            # Across servers a copy is told with its envelopes (computed in the VAD thread when the room shares), then
            # its phone closes.
            echoes.register("r", c.phone, c.segment, envelopes(c.segment.audio) if echoes.shares("r") else None)
            echoes.speech_open("r", c.phone, None)
            tasks.append((c, asyncio.create_task(echoes.admit("r", c.phone, c.segment))))
            await asyncio.sleep(0)
    while any(not t.done() for _, t in tasks) or wire:
        step = until_due(0.02)
        await asyncio.sleep(step)
        clock.now += step
        deliver()
        await asyncio.sleep(0)
    del real_start
    if sent is not None:
        sent.append(sum(link.bytes for link in links))
    return [(c, t.result()) for c, t in tasks]


def delivered(results: list[tuple[Cut, Verdict]]) -> list[tuple[Cut, Verdict]]:
    return [(c, v) for c, v in results if v.keep]


def part1(seed: int, servers: int = 1, latency: float = 0.0) -> None:
    rng = np.random.default_rng(seed)
    layout = "one server" if servers == 1 else f"two servers, frames {latency * 1000:.0f} ms late"
    print(f"--- phones A and B on {layout}")
    sent: list[int] = []
    speech = 0.0
    s = Settings()
    vad = SegmenterConfig.from_settings(s)
    config = EchoConfig.from_settings(s)
    people = speakers()
    clips = [(name, c) for name, cs in people.items() for c in cs]
    print(
        f"{len(clips)} clips from {len(people)} voices; settings: wait {config.max_wait * 1000:.0f} ms, "
        f"similarity ≥ {config.min_similarity}, coverage ≥ {config.min_coverage}"
    )
    waits: list[float] = []

    # (a) one clip, two phones
    runs = merged = extra = near = 0
    for (_name, clip), delay_ms, gain in itertools.product(clips, (20, 60, 150), (-6, -12)):
        total = len(clip) + int(2.0 * RATE)
        a = place(total, clip, 0.5, 0) + noise(total, -50, rng)
        b = place(total, clip, 0.5 + delay_ms / 1000, gain) + noise(total, -50, rng)
        net = rng.uniform(0.02, 0.08, 2)
        cuts = cut(a, "A", net[0], vad) + cut(b, "B", net[1], vad)
        out = asyncio.run(decide(cuts, config, servers, latency, sent))
        kept = delivered(out)
        runs += 1
        a_cuts = sum(c.phone == "A" for c in cuts)
        speech += 2 * len(clip) / RATE
        merged += len(kept) == a_cuts
        extra += max(0, len(kept) - a_cuts)
        near += len(kept) == a_cuts and all(c.phone == "A" for c, _ in kept)
        waits += [v.waited for _, v in kept]
    print(
        f"(a) same clip, two phones (20/60/150 ms, -6/-12 dB, noise -50 dBFS): {runs} runs, delivered once "
        f"{merged}/{runs} (of those, the near phone's copy {near}), extra copies delivered (misses) {extra}"
    )
    if servers > 1:
        print(f"    relayed between the servers: {sum(sent) / speech:.0f} bytes per second of speech per phone")
        longest = max((c for _, c in clips), key=len)
        began = time.perf_counter()
        for _ in range(20):
            envelopes(longest)
        cost = (time.perf_counter() - began) / 20 / (len(longest) / RATE)
        print(f"    envelopes of a copy (VAD thread): {cost * 1000:.1f} ms per second of speech")

    waits_a, waits = waits, []
    waits_b: list[float] = []
    # (b) two people at once: which person each copy is (the louder of the two in its span, known from the mix)
    runs = lost = doubled = 0
    pairs = [(x, y) for x, y in itertools.combinations(clips, 2) if x[0] != y[0]]
    rng.shuffle(pairs)
    for (_n1, c1), (_n2, c2) in pairs[:60]:
        offset = rng.uniform(0, 1.0)
        total = max(len(c1), len(c2)) + int(2.5 * RATE)
        p1, p2 = place(total, c1, 0.5, 0), place(total, c2, 0.5 + offset, 0)
        mixes = {"A": (p1, p2 * db(-15)), "B": (p1 * db(-15), p2)}
        net = dict(zip("AB", rng.uniform(0.02, 0.08, 2), strict=True))
        cuts = []
        for phone, (x, y) in mixes.items():
            cuts += cut(x + y + noise(total, -50, rng), phone, net[phone], vad)
        out = asyncio.run(decide(cuts, config, servers, latency))
        runs += 1
        heard = {1: 0, 2: 0}
        for c, v in out:
            if not v.keep:
                continue
            x, y = mixes[c.phone]
            end = int((c.segment.speech_end - net[c.phone]) * RATE)
            lo = max(0, end - len(c.segment.audio))
            person = 1 if np.sum(x[lo:end] ** 2) >= np.sum(y[lo:end] ** 2) else 2
            heard[person] += 1
        lost += sum(n == 0 for n in heard.values())
        doubled += sum(n > 1 for n in heard.values())
        waits_b.extend(v.waited for _, v in delivered(out))
    print(
        f"(b) two people at once on two phones (each phone hears the other person 15 dB down): {runs} runs, "
        f"{2 * runs} people: lost (false merge) {lost}, delivered twice {doubled}"
    )

    # (c) same person, partial hearing on the second phone
    for label, lo in (
        ("long overlap (B misses the first 10-20 %)", None),
        ("subset (B hears the last 40 %)", 0.6),
        ("staggered (A first 60 %, B last 60 %)", 0.4),
    ):
        runs = once = twice = complete = 0
        for _name, clip in clips:
            total = len(clip) + int(2.0 * RATE)
            n = len(clip)
            if lo is None:
                start = rng.uniform(0.1, 0.2)
                a_part, b_part = clip, clip * (np.arange(n) >= start * n)
            elif label.startswith("subset"):
                a_part, b_part = clip, clip * (np.arange(n) >= lo * n)
            else:
                a_part, b_part = clip * (np.arange(n) < 0.6 * n), clip * (np.arange(n) >= lo * n)
            a = place(total, a_part, 0.5, 0) + noise(total, -50, rng)
            b = place(total, b_part, 0.55, -3) + noise(total, -50, rng)
            cuts = cut(a, "A", 0.03, vad) + cut(b, "B", 0.05, vad)
            out = asyncio.run(decide(cuts, config, servers, latency))
            runs += 1
            k = len(delivered(out))
            waits.extend(v.waited for _, v in delivered(out))
            once += k == 1
            twice += k >= 2
            complete += k == 1 and delivered(out)[0][0].phone == "A"
        print(f"(c) {label}: {runs} runs, delivered once {once} (A's copy {complete}), twice or more {twice}")
    for label, w in (("(a)", waits_a), ("(b)", waits_b), ("(c)", waits)):
        if w:
            print(
                f"{label} kept copies' wait for a rival: median {statistics.median(w) * 1000:.0f} ms, "
                f"p95 {np.percentile(w, 95) * 1000:.0f} ms, max {max(w) * 1000:.0f} ms; "
                f"under 50 ms {sum(x < 0.05 for x in w)} of {len(w)}, "
                f"at the cap {sum(x >= config.max_wait - 0.01 for x in w)}"
            )


@dataclass
class TableTurn:
    phone: str  # the speaker's own phone
    start: float  # on the room's timeline (s)
    by: list[str]  # the phones its delivered copies came from


def table_tracks(
    turns: list[tuple[str, np.ndarray]], phones: list[str], rng: np.random.Generator
) -> tuple[list[tuple[str, float, float]], dict[str, np.ndarray]]:
    """`turns` (phone, clip) taken in order at a table in a room (bench/room.py), each 0.7 s after the last one's end
    (bench_fidelity's gap): each turn's (phone, start, end) on the room's timeline, and what each phone hears: every
    speaker through the room, over its own room noise (-50 dBFS)."""
    from bench.room import at_table

    spans: list[tuple[str, float, float]] = []
    t = 0.5
    for phone, clip in turns:
        spans.append((phone, t, t + len(clip) / RATE))
        t += len(clip) / RATE + 0.7
    total = int((t + 1.5) * RATE)
    dry = {phone: np.zeros(total, np.float32) for phone in phones}
    for (phone, clip), (_, at, _) in zip(turns, spans, strict=True):
        dry[phone] += place(total, clip, at, 0)
    heard = at_table(dry, RATE, noise_dbfs=None)  # each phone's own noise below
    return spans, {ph: heard[ph] + noise(total, -50, rng) for ph in phones}


def at_the_table(
    turns: list[tuple[str, np.ndarray]],
    net: dict[str, float],
    rng: np.random.Generator,
    vad: SegmenterConfig,
    config: EchoConfig,
) -> tuple[list[TableTurn], int]:
    """`turns` at a table (`table_tracks`), each phone's frames arriving `net[phone]` s late; the real VAD cuts each
    phone's stream and the real Echoes decides. Returns each turn with the phones its delivered copies came from, and
    how many delivered copies spanned two turns."""
    spans, heard = table_tracks(turns, list(net), rng)
    return delivered_at_table(spans, heard, net, vad, config)


def delivered_at_table(
    spans: list[tuple[str, float, float]],
    heard: dict[str, np.ndarray],
    net: dict[str, float],
    vad: SegmenterConfig,
    config: EchoConfig,
) -> tuple[list[TableTurn], int]:
    """`at_the_table` on tracks `table_tracks` made."""
    cuts = [c for ph in net for c in cut(heard[ph], ph, net[ph], vad)]
    got: list[TableTurn] = [TableTurn(phone, a, []) for phone, a, _ in spans]
    spanning = 0
    for c, _ in delivered(asyncio.run(asyncio.wait_for(decide(cuts, config), 60))):
        end = c.segment.speech_end - net[c.phone]
        lo = end - len(c.segment.audio) / RATE
        inside = [i for i, (_, a, b) in enumerate(spans) if min(b, end) - max(a, lo) > 0.1 * (b - a)]
        spanning += len(inside) > 1
        for i in inside:
            got[i].by.append(c.phone)
    return got, spanning


@dataclass
class Pause:
    phone: str
    at: float  # where its speech ended, on the room's timeline (the phone's network delay taken off)
    kept_by: str | None  # the phone `heard_better` named (None: this phone reads the pause early)


def early_pauses(tracks: dict[str, np.ndarray], net: dict[str, float], vad: SegmenterConfig,
                 config: EchoConfig) -> list[Pause]:  # fmt: skip
    """Every phone's track through the real VAD, the phones fed in step (the intake's ~100 ms batches, frame k of a
    phone arriving at (k+1)·20 ms + net[phone]); at each pause an early read would take (babelfish/early.py), whether
    another phone hears it better (babelfish/heard_better.py), against the copies cut so far and the other phones'
    open speech. No verdicts are run here, so every copy counts as undecided (kept copies, which replace a pause
    whatever their rank, are left to the server bench)."""
    from babelfish.heard_better import weigh

    segs = {p: Segmenter(silero_detector(), vad) for p in tracks}
    pcm = {p: (np.clip(a, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes() for p, a in tracks.items()}
    copies: list[Copy] = []
    out: list[Pause] = []
    last: dict[str, tuple[int, int] | None] = dict.fromkeys(tracks)
    step = BATCH * FRAME * 2
    for i in range(0, max(map(len, pcm.values())), step):
        for p, seg in segs.items():
            batch = [(pcm[p][j : j + FRAME * 2], (j // (FRAME * 2) + 1) * FRAME / RATE + net[p])
                     for j in range(i, min(i + step, len(pcm[p])), FRAME * 2)]  # fmt: skip
            copies += [make_copy(p, s, config.vad_threshold) for s in seg.feed_many(batch)] if batch else []
        for p, seg in segs.items():
            ahead = seg.read_ahead()
            if ahead is None or (ahead.serial, ahead.read_until) == last[p]:
                continue
            last[p] = (ahead.serial, ahead.read_until)
            hearing = [(q, s.open_segment) for q, s in segs.items() if q != p and s.speaking]
            named = weigh(p, ahead, [(c, False) for c in copies if c.client_id != p], hearing, config)
            out.append(Pause(p, ahead.speech_end - net[p], named))
    return out


def table_round(
    rng: np.random.Generator, people: dict[str, list[np.ndarray]], n_phones: int
) -> tuple[list[str], list[tuple[str, np.ndarray]], dict[str, float]]:
    """One run's table: `n_phones` people drawn from `people` (phones A, B, ...), each taking a turn in order, twice
    round (a clip of theirs each time), and each phone's network delay."""
    names = sorted(people)
    who = [names[i] for i in rng.choice(len(names), n_phones, replace=False)]
    phones = [chr(ord("A") + i) for i in range(n_phones)]
    taken = [
        (phone, people[name][int(rng.integers(len(people[name])))])
        for phone, name in list(zip(phones, who, strict=True)) * 2
    ]
    return phones, taken, dict(zip(phones, rng.uniform(0.02, 0.08, n_phones), strict=True))


def part4(seed: int, runs: int) -> None:
    """A table in a room (bench/room.py): people around it take turns, each with a phone in front of them, and every
    phone hears every speaker through the room (the others 1-1.4 m away, reverberation time 0.4 s), over its own room
    noise (-50 dBFS). Each turn should be delivered once, from its speaker's own phone: the nearest, and the one whose
    language the speaker chose (another phone's copy is decoded in that phone's language)."""
    rng = np.random.default_rng(seed)
    s = Settings()
    vad = SegmenterConfig.from_settings(s)
    config = EchoConfig.from_settings(s)
    people = speakers()
    for n_phones in (2, 4):
        turns = once = own = lost = twice = spanning = 0
        reads: dict[str, int] = dict.fromkeys(("own read", "own not", "other not", "other read", "outside"), 0)
        for _ in range(runs):
            phones, taken, net = table_round(rng, people, n_phones)
            spans, heard = table_tracks(taken, phones, rng)
            got, spans_two = delivered_at_table(spans, heard, net, vad, config)
            spanning += spans_two
            for pause in early_pauses(heard, net, vad, config):
                speaker = next((ph for ph, a, b in spans if a - 0.1 <= pause.at <= b + 0.5), None)
                if speaker is None:
                    reads["outside"] += 1
                else:
                    side = "own" if pause.phone == speaker else "other"
                    reads[f"{side} {'read' if pause.kept_by is None else 'not'}"] += 1
            for turn in got:
                turns += 1
                once += len(turn.by) == 1
                own += turn.by == [turn.phone]
                lost += not turn.by
                twice += len(turn.by) > 1
        print(
            f"(d) {n_phones} people at a table, {n_phones} phones each hearing all (room, RT60 0.4 s): {turns} turns: "
            f"delivered once {once} (from the speaker's own phone {own}), lost {lost}, twice or more {twice}; "
            f"copies spanning two people's turns {spanning}"
        )
        print(
            f"    early reads of the pauses: on the speaker's own phone read {reads['own read']}, not read "
            f"{reads['own not']}; on the other phones not read {reads['other not']}, read {reads['other read']}; "
            f"pauses outside every turn {reads['outside']}"
        )


def part4_join(seed: int, runs: int) -> None:
    """(e) As (d), but the last phone joins `lead` s before its person first talks (nothing before: not connected),
    while the others have listened all along: its floor comes from what little it heard (babelfish/background.py,
    `known_floor`). Its turns should still be kept from its own phone."""
    rng = np.random.default_rng(seed + 1)
    s = Settings()
    vad = SegmenterConfig.from_settings(s)
    config = EchoConfig.from_settings(s)
    people = speakers()
    for lead in (0.3, 0.1):
        for n_phones in (2, 4):
            first_own = later_own = others_own = others = 0
            for _ in range(runs):
                phones, taken, net = table_round(rng, people, n_phones)
                spans, heard = table_tracks(taken, phones, rng)
                late = phones[-1]
                joined = min(a for ph, a, _ in spans if ph == late) - lead
                heard[late][: max(0, int(joined * RATE))] = 0.0
                got, _ = delivered_at_table(spans, heard, net, vad, config)
                for k, turn in enumerate(got):
                    kept = turn.by == [turn.phone]
                    if turn.phone != late:
                        others, others_own = others + 1, others_own + kept
                    elif k < n_phones:
                        first_own += kept
                    else:
                        later_own += kept
            print(
                f"(e) {n_phones} people at a table, the last phone joining {lead} s before its person first talks: "
                f"its first turn kept from its own phone {first_own}/{runs}, its second {later_own}/{runs}; the "
                f"others' turns {others_own}/{others}"
            )


def part2(turns: int) -> None:
    """Real app, fake engine, real VAD, real time: transcript latency_ms of the delivered copies."""
    from babelfish.app import create_app
    from babelfish.engines.fake import FakeEngine
    from tests.audio import SPEECH_CLIP
    from tests.test_echoes import _next, _play, join, stream
    from tests.wsclient import BoundedClient

    clip = read_wav(SPEECH_CLIP)
    period = len(clip) / RATE + 1.5

    def run(enabled: bool, second: str) -> tuple[list[int], int, int, list[float]]:
        """`turns` turns from the near phone; the second phone hears nothing ("none"), only room noise ("quiet"),
        or the same speech 80 ms later and 9 dB down ("echo"). Returns latencies, transcripts, heard_by."""
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), engine="test", one_phone_per_voice=enabled, log_level="warning")
            with BoundedClient(create_app(settings, engine=FakeEngine())) as c:
                wss = [c.websocket_connect("/ws/client") for _ in range(3 if second != "none" else 2)]
                for ws in wss:
                    ws.__enter__()
                try:
                    listener, near = wss[0], wss[1]
                    join(listener, "L", "de")
                    near_id = join(near, "Near", "en")["client_id"]
                    parts = [(clip, 0.3 + k * period, 0) for k in range(turns)]
                    seconds = 0.3 + turns * period + 0.5
                    phones = [(near, stream(parts, seconds, seed=1))]
                    if second != "none":
                        join(wss[2], "Far", "en")
                        far = [(x, at + 0.08, -9) for x, at, _ in parts] if second == "echo" else []
                        phones.append((wss[2], stream(far, seconds, seed=2)))
                    _play(phones)
                    got = []
                    while sum(m["type"] == "transcript" for m in got) < turns:  # each receive bounded (20 s)
                        got.append(_next(listener))
                    time.sleep(1.5)
                    listener.send_text('{"type": "ping", "id": "end"}')
                    while (m := _next(listener))["type"] != "pong":
                        got.append(m)
                finally:
                    for ws in reversed(wss):
                        ws.__exit__(None, None, None)
                waits = list(c.app.state.hub.echoes.kept_waits)  # type: ignore[attr-defined]
        ts = [m for m in got if m["type"] == "transcript"]
        heard = sum(m["type"] == "heard_by" for m in got)
        return [m["latency_ms"] for m in ts if m["client_id"] == near_id or enabled], len(ts), heard, waits

    print(f"load: {os.getloadavg()[0]:.1f}; {turns} turns of a {len(clip) / RATE:.1f} s clip per run")
    for second in ("none", "quiet", "echo"):
        for enabled in (False, True):
            lat, n, heard, waits = run(enabled, second)
            waited = f", kept copies waited (ms) {sorted(round(w * 1000) for w in waits)}" if enabled else ""
            print(
                f"  second phone {second:5s} one-phone {'on ' if enabled else 'off'}: transcripts {n}, heard_by "
                f"{heard}, latency_ms median {statistics.median(lat) if lat else float('nan'):.0f} "
                f"(all: {sorted(lat)}){waited}"
            )


async def part3(runs: int) -> None:
    """A real cluster: redis-server, two servers with the test engine; phone Near on server A, phone Far and a German
    listener on server B, each run in a room of its own. Counts what the listener got."""
    from tests.audio import SPEECH_CLIP
    from tests.test_cluster import Peer, eventually, healthz_until, play, roster_is, start_cluster
    from tests.test_echoes import stream

    clip, other = read_wav(SPEECH_CLIP), voices()["dhd"][0]
    print(f"--- a real cluster (redis-server, 2 servers, test engine); load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        servers = start_cluster(Path(tmp))
        cluster = next(servers)
        try:
            for srv in (cluster.a, cluster.b):
                await healthz_until(srv, "up")
            for scenario in ("same", "two"):
                counts: list[int] = []
                heard: list[int] = []
                latencies: list[int] = []
                lost = 0
                for k in range(runs):
                    room = f"{scenario}{k}"
                    near = await Peer.join(cluster.a.ws_url, "Near", "en", room=room)
                    far = await Peer.join(cluster.b.ws_url, "Far", "en", room=room)
                    listener = await Peer.join(cluster.b.ws_url, "L", "de", room=room)
                    for peer in (near, far, listener):
                        await roster_is(peer, {"Near", "Far", "L"})
                    if scenario == "same":  # (a): 20/80/150 ms later, 6/12 dB down on the far phone
                        delay, gain = (0.02, 0.08, 0.15)[k % 3], (-6, -12)[k % 2]
                        a = stream([(clip, 0.3, 0)], 4.5, seed=2 * k)
                        b = stream([(clip, 0.3 + delay, gain)], 4.5, seed=2 * k + 1)
                    else:  # (b): two people at once, each phone hearing the other 15 dB down
                        at = float(np.random.default_rng(k).uniform(0, 1.0))
                        a = stream([(clip, 0.3, 0), (other, 0.3 + at, -15)], 5.0, seed=2 * k)
                        b = stream([(other, 0.3 + at, 0), (clip, 0.3, -15)], 5.0, seed=2 * k + 1)
                    await play([(near, a), (far, b)])
                    expected = 1 if scenario == "same" else 2

                    def transcripts(peer: Peer = listener) -> list[dict[str, Any]]:
                        return [m for m in peer.messages if m["type"] == "transcript"]

                    def enough(n: int = expected) -> bool:
                        return len(transcripts()) >= n

                    with contextlib.suppress(AssertionError):  # none or too few: counted below
                        await eventually(enough, 20, "transcripts")
                    await asyncio.sleep(2.0)  # any duplicate comes about as fast as the kept copy
                    got = transcripts()
                    heard.append(sum(m["type"] == "heard_by" for m in listener.messages))
                    counts.append(len(got))
                    latencies += [m["latency_ms"] for m in got]
                    if scenario == "two":
                        lost += sum(not any(m["client_id"] == p.welcome["client_id"] for m in got) for p in (near, far))
                    for peer in (near, far, listener):
                        await peer.close()
                if scenario == "same":
                    print(
                        f"(a) same clip, phones on two servers: {runs} runs, delivered once {counts.count(1)}/{runs}, "
                        f"extra copies delivered (misses) {sum(max(0, n - 1) for n in counts)}, "
                        f"transcript latency_ms median {statistics.median(latencies):.0f}; transcripts per run "
                        f"{counts}, heard_by per run {heard}"
                    )
                else:
                    print(
                        f"(b) two people at once, phones on two servers: {runs} runs, {2 * runs} people: lost (false "
                        f"merge) {lost}, transcripts per run {counts}, heard_by per run {heard}"
                    )
        finally:
            servers.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="12")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--servers", default="1,2", help="part 1 layouts: phones on one server, on two servers")
    parser.add_argument("--relay-ms", default="2,20", help="part 1, two servers: how late frames arrive")
    parser.add_argument("--runs", type=int, default=8, help="parts 3 and 4: runs of each scenario")
    parser.add_argument("--no-look", action="store_true", help="part 1: the filter may not look at open speech")
    args = parser.parse_args()
    global LOOK
    LOOK = not args.no_look
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print("load:", os.getloadavg())
    if "1" in args.parts:
        for servers in sorted({int(x) for x in args.servers.split(",")}):
            for ms in [0.0] if servers == 1 else [float(x) for x in args.relay_ms.split(",")]:
                part1(args.seed, servers, ms / 1000)
    if "2" in args.parts:
        part2(args.turns)
    if "3" in args.parts:
        asyncio.run(part3(args.runs))
    if "4" in args.parts:
        part4(args.seed, args.runs)
        part4_join(args.seed, args.runs)


if __name__ == "__main__":
    main()
