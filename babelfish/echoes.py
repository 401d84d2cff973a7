"""One phone per voice: when several phones in a room hear the same speech, only the best copy goes on.

People sitting together with every phone's microphone open each send the same sentence. Without this the room
would read it two or three times and the engine would transcribe it as often. Each utterance cut by a client's
VAD is `admit`ted here before the engine sees it, and comes back with a `Verdict`:
- keep: process it (with the utterance id the verdict carries);
- heard elsewhere: another phone's copy of the same speech is kept instead; the room is told that this phone heard
  it too (`heard_by`), and this copy costs no ASR. It stands by (`Verdict.standby`) until the kept copy's `outcome`
  is known: when the kept copy was not delivered after all (shed by the engine queue, not speech, failed, its phone
  gone), the best copy standing by takes over, under the same utterance id. Nothing said is lost to this filter.

"The same speech" means, against a copy from another phone in the same room:
- overlapping time: the voiced spans (arrival times, from the segment's `speech_end` and its per-window speech
  probabilities; in a crowd, those the crowd gate let count: `Segment.timing_probs`) overlap, allowing `max_lag` for
  the phones' different network and acoustic delays, and the other copy covers at least `min_coverage` of this one's
  voiced span (a phone that heard only half of a sentence never replaces the whole of it);
- matching content: the spectral envelopes (energy in 8 bands every 10 ms) correlate at some lag within
  ±`max_lag`, at least `min_similarity`. Two people talking at the same time into two phones give unrelated
  envelopes, however much they overlap in time.
The best copy is the one with the higher speech-to-noise estimate (the phone nearest the speaker: its speech over the
phone's own background floor, so that it holds at a table in a room, where every phone hears everyone), then the
louder.

Waiting for a competing copy costs latency, so a copy waits only while another phone in the same room has speech
open (its VAD is inside an utterance that began before this copy ended) or holds an undecided better matching copy,
and never longer than `max_wait`. A phone alone in a room, or the only one hearing anything, never waits.
When people talk over each other, some other phone nearly always has speech open, mostly someone else's. So for a
phone of this server (its audio so far is here: the intake hands `speech_open` its segmenter's open segment), a
waiting copy looks at what that phone heard so far, in a worker thread, at most every `LOOK_EVERY` s after its last
round of looks ended and at most `LOOKS_PER_ROUND` phones a round (one found to hear this very speech is not looked
at again: its copy is waited for, as before): that phone no
longer holds it back when its copy, however it ends, cannot cover enough of this one to replace it (its voiced
speech began too late), or when over at least `JUDGE_SECONDS` of voiced time they share its envelopes correlate
below `min_similarity - UNLIKE_MARGIN` at every lag within ±`max_lag` (only the open audio within the copy's span
± max_lag is analysed). A shorter shared span is too little to tell another person from a delayed echo: the copy
waits as before, looking again as the open speech grows (not when the span they can ever share is too short,
as for a copy with less voiced speech than that). Phones of other servers are waited for as before (their
open audio is not relayed). Measured in docs/benchmarks.md ("One phone per voice").

Bounds: each room keeps its copies for `HORIZON` seconds, at most `MAX_COPIES` (the oldest go); a room's state goes
when its phones are quiet and its copies expired (every room is swept on any activity, at most once a second: room
names are the clients', a room nobody uses any more must not keep its copies).
A copy stands by at most `HORIZON` seconds. `kept_waits` holds the last waits of kept copies (for benches).

Across servers (cluster mode): phones of one room may sit on different servers. Each server tells the room's other
servers (an `EchoLink`, babelfish/cluster) what this filter needs of its phones, in compact frames: when a phone's
speech opens and closes; each cut copy's voiced span, quality and envelopes (float16, scaled to the copy's peak: about
1.6 KB per second of speech, computed in the VAD thread); each verdict; and each kept copy's outcome. A server keeps
the copies it hears of as remote copies beside its own, and decides its own copies exactly as above: it waits while a
remote phone is mid-utterance or holds an undecided better copy, and a remote kept copy stands in for a local one.
When a kept copy is not delivered, every server picks the same heir among the copies standing by cluster-wide (the
best one), and only the heir's server processes it. Times cross servers as wall-clock times, so the servers' clocks
must agree to well within `max_lag` (NTP does). What a lost frame costs: a lost copy, open or verdict frame lets a
rival be kept too (a duplicate, as without this filter); a lost outcome of an undelivered kept copy (or an heir
picked on a server that is gone) leaves the copies standing by for it with no word: after `HORIZON` each is processed
after all unless the room's transcript holds the utterance (babelfish/intake.py: a late duplicate, never lost
speech). A kept copy whose server dies (or Redis goes down) before its outcome came counts as not delivered: a copy
standing by here takes over.
A server tells its copies only while a phone of another server has spoken in the room lately (`shares`): servers
holding only listeners there get the phones' speech opening and closing, never envelopes. What other servers tell is
checked field by field against babelfish/cluster/inbound.py (finite, plausible times; sizes; the remote phones open
and envelopes kept per room; a copy's verdict and outcome only from the server that told the copy), and a frame that
fails is refused with a reason (`remote`), never raised.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from babelfish import protocol as proto
from babelfish.cluster.inbound import (
    ECHO_FUTURE,
    ECHO_PAST,
    MAX_ECHO_FRAMES,
    MAX_ECHO_ROOM_FRAMES,
    MAX_ID_CHARS,
    MAX_OUTCOME_CHARS,
    MAX_QUALITY,
    Ignored,
    number,
    short,
)
from babelfish.config import Settings
from babelfish.engines.base import SAMPLE_RATE
from babelfish.segmenter import WINDOW, OpenSegment, Segment

if TYPE_CHECKING:
    from babelfish.hub import Hub
    from babelfish.rooms import Participant

log = logging.getLogger(__name__)

HOP = 160  # 10 ms frames for the envelopes
FRAME = 400  # 25 ms analysis window
NFFT = 512
BAND_EDGES_HZ = (150, 300, 500, 800, 1200, 1700, 2400, 3200, 4000)  # 8 bands where phones pick up speech well
SLACK = 0.15  # seconds two phones' arrival times of the same sound may differ by, for coverage
HORIZON = 10.0  # seconds a copy (its audio) is remembered for late rivals: a phone's queue is seconds at most
MAX_COPIES = 64  # per room
SWEEP_EVERY = 1.0  # seconds between sweeps of every room (speech_open comes with every VAD batch of every phone)
BANDS = len(BAND_EDGES_HZ) - 1
REMOTE_OPEN_MAX = 130.0  # seconds a remote phone counts as mid-utterance without news (its close frame was lost)
# Seconds a room's copies are told to its other servers after a phone there last spoke (opened speech, or sent a
# copy): a room whose other servers hold only listeners costs them no copy frames.
SPOKEN_MEMORY = 1800.0
# A local phone's open speech is judged unlike a waiting copy on this much voiced time they share, at least: in
# bench_echoes' scenarios the same speech seen over 0.5 s of it correlated as low as 0.48, over 0.8 s 0.68 (never
# below 0.45 = min_similarity - UNLIKE_MARGIN); shorter, another person and a delayed echo are not told apart safely.
JUDGE_SECONDS = 0.8
UNLIKE_MARGIN = 0.1  # below min_similarity by this much, an open phone's speech is unlike the copy's
LOOK_EVERY = 0.1  # seconds between looks at an open phone's growing speech while a copy waits for it (~a VAD batch)
TIME_SLACK = 0.001  # seconds: times from another server that are equal there may differ by a clock read here
NEVER = float("inf")  # Copy.looked: no more looks at this open phone (too short ever to judge, or the same speech)
LOOKS_PER_ROUND = 3  # open phones looked at per round (16-28 ms each for a 3 s copy): a room full of phones hearing
# one voice costs each waiting copy at most this many looks every LOOK_EVERY

# What a phone of this server heard of its open speech so far (Segmenter.open_segment): callable from any thread.
Hearing = Callable[[], OpenSegment | None]


class EchoLink(Protocol):
    """How a server tells the other servers of a room about its phones' copies (babelfish/cluster)."""

    def shares(self, room: str) -> bool:
        """Whether `room` has members on other servers now."""
        ...

    def echo(self, room: str, body: dict[str, Any], payload: bytes = b"") -> None:
        """Hand a compact frame to `room`'s other servers (fire and forget, never waiting)."""


@dataclass(frozen=True, kw_only=True)
class EchoConfig:
    enabled: bool = True
    max_wait: float = 0.6  # seconds a copy may wait for a competing copy
    max_lag: float = 0.4  # seconds of delay between two phones' copies that is searched
    min_similarity: float = 0.55  # envelope correlation that counts as the same speech
    min_coverage: float = 0.8  # of a copy's voiced span the kept copy must cover to replace it
    vad_threshold: float = 0.5
    max_remote_open: int = 500  # phones of other servers mid-utterance at once in one room (more: a buggy peer)

    @classmethod
    def from_settings(cls, s: Settings) -> EchoConfig:
        return cls(
            enabled=s.one_phone_per_voice,
            max_wait=s.one_phone_wait_ms / 1000,
            min_similarity=s.one_phone_similarity,
            vad_threshold=s.vad_threshold,
            max_remote_open=s.max_clients_per_room,
        )


# --- what a copy sounds like -------------------------------------------------------------------------------------


def _band_matrix() -> np.ndarray:
    freqs = np.fft.rfftfreq(NFFT, 1 / SAMPLE_RATE)
    edges = BAND_EDGES_HZ
    return np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in itertools.pairwise(edges)]).astype(np.float32)


_BANDS = _band_matrix()
_HANN = np.hanning(FRAME).astype(np.float32)


def envelopes(audio: np.ndarray) -> np.ndarray:
    """(frames, 8) band energies every 10 ms of 16 kHz audio."""
    if len(audio) < FRAME:
        audio = np.pad(audio, (0, FRAME - len(audio)))
    n = 1 + (len(audio) - FRAME) // HOP
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    spectrum = np.abs(np.fft.rfft(audio[idx] * _HANN, NFFT)) ** 2
    # Energy, not log energy: a phone that also hears a second person 15 dB down must still look like the first
    # person (in log terms that crosstalk weighs nearly as much as the talker; measured in docs/benchmarks.md).
    return (spectrum @ _BANDS.T).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray, offset: int, max_lag: int) -> float:
    """Best correlation of envelopes `a` and `b` where b's frame `j` is heard at a's frame `j + offset` (± max_lag).

    Only the frames both copies have at a lag count; per band, each side is normalised over them (a phone's
    gain and its microphone's colour do not matter). Fewer than 30 common frames (0.3 s): 0.
    """
    best = 0.0
    for lag in range(offset - max_lag, offset + max_lag + 1):
        lo, hi = max(0, lag), min(len(a), len(b) + lag)
        if hi - lo < 30:
            continue
        x, y = a[lo:hi], b[lo - lag : hi - lag]
        x = x - x.mean(axis=0)
        y = y - y.mean(axis=0)
        den = np.sqrt((x * x).sum(axis=0) * (y * y).sum(axis=0))
        ok = den > 1e-6
        if not ok.any():
            continue
        r = float(((x * y).sum(axis=0)[ok] / den[ok]).mean())
        best = max(best, r)
    return best


def quality(segment: Segment, vad_threshold: float) -> tuple[float, float]:
    """(speech-to-noise estimate in dB, capped at 60, whole dB; speech level in dBFS): higher is the better copy.
    The noise is the phone's floor, mostly what it hears while nobody near it speaks (`Segment.floor_db`), once the
    phone knows it (after 1 s of sound); before, the segment's own windows that Silero calls silence."""
    # Not the segment's own pauses once the floor is known: at a table in a room they hold the room's echo of the
    # speech itself, and the far phone's held less of it often enough to win (5 of 32 turns kept from the wrong phone,
    # bench_echoes part 4). Against the floor the nearer phone's copy is the louder one, whatever each phone's gain.
    probs = segment.speech_probs
    n = min(len(probs), len(segment.audio) // WINDOW)
    if not n:
        level = 10 * np.log10(float(np.mean(np.square(segment.audio))) + 1e-12)
        return 0.0, level
    energy = np.mean(np.square(segment.audio[: n * WINDOW].reshape(n, WINDOW), dtype=np.float64), axis=1)
    # Silero's, for every phone alike: by the crowd gate's, a phone whose gate is off hears no noise at all, and would
    # outrank the nearer phone whose gate is on.
    voiced = probs[:n] >= vad_threshold
    speech_db = 10 * np.log10(float(energy[voiced].mean() if voiced.any() else energy.mean()) + 1e-12)
    if segment.floor_db is not None:
        noise_db = segment.floor_db
    else:
        noise_db = 10 * np.log10(float(energy[~voiced].mean()) + 1e-12) if (~voiced).any() else -100.0
    # Capped where a quiet room's floor would otherwise leave the copies' order to each phone's gain (level, next).
    return min(60.0, round(speech_db - noise_db)), speech_db


# --- copies and verdicts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    keep: bool
    utterance_id: str  # kept: this copy's new id; heard elsewhere: the kept copy's id
    kept_client: str | None = None  # heard elsewhere: the phone whose copy was kept
    waited: float = 0.0  # seconds spent waiting for competing copies
    # kept: what became of it ("ok": its transcript went out; else "shed", "none", "error"), set by the pipeline
    outcome: asyncio.Future[str] | None = field(default=None, compare=False)
    # heard elsewhere: resolves to a keep verdict when this copy must take over from the kept one, else to None
    standby: asyncio.Future[Verdict | None] | None = field(default=None, compare=False)


@dataclass(eq=False)
class Copy:
    client_id: str
    segment: Segment | None  # None: a copy cut on another server (remote), known by its features
    start: float  # voiced span, arrival times (time.monotonic)
    end: float
    score: tuple[float, float]
    verdict: Verdict | None = None
    features: np.ndarray | None = None
    t0: float = 0.0  # arrival time of the segment's first sample
    matches: dict[int, float] = field(default_factory=dict)  # id(other copy) → envelope similarity
    outcome: asyncio.Future[str] | None = None  # kept: its Verdict.outcome
    standby: list[Copy] = field(default_factory=list)  # kept: copies heard elsewhere that wait for its outcome
    turn: asyncio.Future[Verdict | None] | None = None  # heard elsewhere: its Verdict.standby
    # Waiting: open phones (id, since) whose speech so far is unlike this copy's, and when each was last looked at.
    unlike: set[tuple[str, float]] = field(default_factory=set)
    looked: dict[tuple[str, float], float] = field(default_factory=dict)
    key: str = ""  # names it to the other servers of a cluster
    remote: bool = False  # cut on another server: only that server decides it
    origin: str = ""  # remote: the server that told it (only its verdict and outcome frames settle it)
    told: bool = False  # local, and told to the other servers (its verdict and outcome follow it there)

    @property
    def rank(self) -> tuple[float, float, float]:
        return (*self.score, -self.end)  # ties: the copy that ended first

    def prepare(self) -> None:
        if self.features is None and self.segment is not None:
            self.features = envelopes(self.segment.audio)


def make_copy(client_id: str, segment: Segment, vad_threshold: float) -> Copy:
    """A copy placed on the arrival timeline: windows are 32 ms apart, the last voiced one arrived at speech_end."""
    probs = segment.timing_probs
    step = WINDOW / SAMPLE_RATE
    voiced = np.flatnonzero(probs >= max(0.05, vad_threshold - 0.15))
    if len(voiced):
        first, last = int(voiced[0]), int(voiced[-1])
    else:
        first, last = 0, max(0, len(segment.audio) // WINDOW - 1)
    t0 = segment.speech_end - (last + 1) * step
    return Copy(
        client_id,
        segment,
        t0 + first * step,
        segment.speech_end,
        quality(segment, vad_threshold),
        t0=t0,
    )


def covers(k: Copy, x: Copy, slack: float = SLACK) -> float:
    """How much of x's voiced span k's voiced span covers (0..1), allowing `slack` seconds of timing difference."""
    overlap = min(x.end, k.end + slack) - max(x.start, k.start - slack)
    return max(0.0, overlap) / max(x.end - x.start, 1e-3)


def same_speech(x: Copy, k: Copy, cfg: EchoConfig) -> bool:
    """Whether `k` heard the speech `x` heard: overlapping in time and with matching envelopes."""
    if covers(k, x, cfg.max_lag) <= 0:
        return False
    key = id(k)
    if key not in x.matches:
        x.prepare()
        k.prepare()
        assert x.features is not None and k.features is not None
        offset = round((k.t0 - x.t0) * SAMPLE_RATE / HOP)  # k's frame j is heard at x's frame j + offset
        x.matches[key] = similarity(x.features, k.features, offset, round(cfg.max_lag * SAMPLE_RATE / HOP))
    return x.matches[key] >= cfg.min_similarity


def better(c: Copy, x: Copy) -> bool:
    """Between two copies of the same speech: the more complete one, else the cleaner one, else the louder one."""
    more = covers(c, x) - covers(x, c)
    if abs(more) > 0.1:
        return more > 0
    return c.rank > x.rank


@dataclass
class _Room:
    copies: deque[Copy] = field(default_factory=lambda: deque(maxlen=MAX_COPIES))
    open: dict[str, float] = field(default_factory=dict)  # client id → when its open speech began
    remote: set[str] = field(default_factory=set)  # clients of other servers in `open`
    hearing: dict[str, Hearing] = field(default_factory=dict)  # local clients in `open`: their open speech so far
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class Echoes:
    """The rooms' recent copies and which phones are mid-utterance; decides each copy's verdict."""

    def __init__(
        self,
        config: EchoConfig,
        new_id: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
        link: EchoLink | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._new_id = new_id
        self._clock = clock
        self._wall = wall  # times told to other servers are wall-clock times (monotonic clocks are per machine)
        self.link = link  # the other servers of a cluster; None: a server on its own
        self._rooms: dict[str, _Room] = {}
        self._spoken: dict[str, float] = {}  # room -> when a phone of another server last spoke there (our clock)
        self._swept = -float("inf")
        self._serial = itertools.count(1)
        self.kept_waits: deque[float] = deque(maxlen=1000)  # seconds each kept copy waited for its verdict

    # --- the other servers of a cluster ---------------------------------------------------------------------------

    def shares(self, room: str) -> bool:
        """Whether this room's copies are told to other servers (then `register` wants the copy's envelopes): while a
        phone on another server has spoken in the room lately (SPOKEN_MEMORY). Where the other servers hold only
        listeners, no copy there can be a rival: they hear of our phones' speech opening and closing (a few bytes,
        which is how they know to tell us theirs), never of the copies."""
        if not (self.config.enabled and self.link is not None and self.link.shares(room)):
            return False
        spoke = self._spoken.get(room)
        return spoke is not None and self._clock() - spoke < SPOKEN_MEMORY

    def _tell(self, room: str, body: dict[str, Any], payload: bytes = b"") -> None:
        if self.link is not None and self.link.shares(room):
            self.link.echo(room, body, payload)

    def _to_wall(self, t: float) -> float:
        return round(t - self._clock() + self._wall(), 4)

    def _from_wall(self, t: float) -> float:
        return t - self._wall() + self._clock()

    def _tell_verdict(self, room: str, copy: Copy) -> None:
        v = copy.verdict
        if v is not None and copy.told:
            self._tell(room, {"op": "verdict", "k": copy.key, "keep": v.keep, "u": v.utterance_id})

    def remote(self, room: str, origin: str, body: dict[str, Any], payload: bytes = b"") -> Ignored | None:
        """A frame from another server's `EchoLink` (`origin`: that server) about its phones in `room`: None once
        taken, else why it was ignored (the cluster node counts and logs that). Every field is checked against the
        bounds of babelfish/cluster/inbound.py before anything here changes: a peer may be older, newer or buggy."""
        if not self.config.enabled:
            return None
        op = body.get("op")
        if op == "open":
            return self._remote_open(room, body)
        if op == "copy":
            return self._remote_copy(room, origin, body, payload)
        if op in ("verdict", "outcome"):
            key = body.get("k")
            if not short(key):
                return Ignored("echo", f"{op}: no copy key")
            if op == "verdict":
                keep, uid = body.get("keep"), body.get("u")
                if not isinstance(keep, bool) or not isinstance(uid, str) or len(uid) > MAX_ID_CHARS:
                    return Ignored("echo", "verdict: keep is not true or false, or no utterance id")
            elif not short(body.get("r"), MAX_OUTCOME_CHARS):
                return Ignored("echo", "outcome: no result")
            state = self._rooms.get(room)
            named = [c for c in state.copies if c.remote and c.key == key] if state is not None else []
            found = next((c for c in named if c.origin == origin), None)
            if found is None and named:
                # Only the server that cut a copy settles it: another's `outcome shed` would make a copy standing by
                # here take over from one that was delivered (said twice).
                return Ignored("echo_foreign", f"{op}: a copy another server told")
            if state is None or found is None:
                return None  # its copy frame never came (or expired): nothing here waits on it
            self._remote_news(room, found, body)
            state.notify()
            return None
        if op == "gone":
            return Ignored("echo", "gone is this server's own word about a dead server, never a peer's")
        return Ignored("echo", f"unknown op {str(op)[:40]!r}")

    def _remote_open(self, room: str, body: dict[str, Any]) -> Ignored | None:
        client, since = body.get("c"), body.get("since")
        if not short(client):
            return Ignored("echo", "open: no phone id")
        self._sweep()
        if since is None:
            state = self._rooms.get(room)
            if state is not None and client in state.remote:
                state.open.pop(client, None)
                state.remote.discard(client)
                state.notify()
            return None
        began = self._from_peer(since)
        if began is None:
            return Ignored("echo", "open: since is not a time within ECHO_PAST/ECHO_FUTURE of ours")
        state = self._rooms.setdefault(room, _Room())
        if client in state.open and client not in state.remote:
            return Ignored("echo_foreign", "open: a phone of this server")
        if client not in state.remote and len(state.remote) >= self.config.max_remote_open:
            return Ignored("echo_limit", f"open: {len(state.remote)} phones of other servers are open already")
        state.open.setdefault(client, began)
        state.remote.add(client)
        self._spoken[room] = self._clock()
        state.notify()
        return None

    def _remote_copy(self, room: str, origin: str, body: dict[str, Any], payload: bytes) -> Ignored | None:
        key, client, q = body.get("k"), body.get("c"), body.get("q")
        if not (short(key) and short(client)):
            return Ignored("echo", "copy: no key or phone id")
        t0, start, end = (self._from_peer(body.get(f)) for f in ("t0", "s", "e"))
        if t0 is None or start is None or end is None:
            return Ignored("echo", "copy: a time that is not a number within ECHO_PAST/ECHO_FUTURE of ours")
        # Each time crosses two clocks one call at a time: equal times (a copy voiced from its first window) may come
        # out a few hundred nanoseconds apart in either order.
        if not t0 - TIME_SLACK <= start <= end + TIME_SLACK:
            return Ignored("echo", "copy: its times are out of order")
        score = [number(x) for x in q] if isinstance(q, list) and len(q) == 2 else [None]
        if not all(x is not None and abs(x) <= MAX_QUALITY for x in score):
            return Ignored("echo", "copy: quality is not two finite numbers")
        if len(payload) % (2 * BANDS) or not 0 < len(payload) <= MAX_ECHO_FRAMES * 2 * BANDS:
            return Ignored("echo", f"copy: envelopes of {len(payload)} bytes")
        features = np.frombuffer(payload, "<f2").astype(np.float32)
        if not (np.isfinite(features).all() and features.min() >= 0 and features.max() <= 1):
            return Ignored("echo", "copy: envelopes not within 0..1 (they are scaled to their peak)")
        self._sweep()
        state = self._rooms.setdefault(room, _Room())
        if any(c.remote and c.key == key and c.origin == origin for c in state.copies):
            return Ignored("echo", "copy: a key told before")  # (another server's key cannot shadow it)
        snr, level = score
        assert snr is not None and level is not None
        copy = Copy(client, None, start, end, (snr, level), features=features.reshape(-1, BANDS), t0=t0, key=key,
                    remote=True, origin=origin)  # fmt: skip
        self._prune(state, self._clock())
        state.copies.append(copy)
        # Bounded: the remote copies' envelopes in one room (the oldest remote copies go first).
        kept = sum(len(c.features) for c in state.copies if c.remote and c.features is not None)
        while kept > MAX_ECHO_ROOM_FRAMES:
            oldest = next(c for c in state.copies if c.remote)
            state.copies.remove(oldest)
            kept -= len(oldest.features) if oldest.features is not None else 0
        self._spoken[room] = self._clock()
        state.notify()
        return None

    def unreachable(self, room: str, client: str) -> None:
        """From our own cluster node: `client`'s server is dead or out of reach, so its kept copies' outcomes will
        never come (they count as not delivered: a copy standing by here takes over)."""
        state = self._rooms.get(room)
        if not self.config.enabled or state is None:
            return
        if client in state.remote:
            state.open.pop(client, None)
            state.remote.discard(client)
        for c in list(state.copies):
            if c.remote and c.client_id == client and c.outcome is not None and not c.outcome.done():
                c.outcome.set_result("gone")
        state.notify()

    def _from_peer(self, t: object) -> float | None:
        """A wall-clock time told by another server, on our clock; None unless a finite number near our now."""
        x, now = number(t), self._wall()
        if x is None or not now - ECHO_PAST <= x <= now + ECHO_FUTURE:
            return None
        return self._from_wall(x)

    def _remote_news(self, room: str, copy: Copy, body: dict[str, Any]) -> None:
        """A remote copy's verdict or outcome (checked)."""
        if body["op"] == "verdict":
            keep, uid = body["keep"], body["u"]
            copy.verdict = Verdict(keep, uid)
            if keep and uid and copy.outcome is None:
                # Copies standing by here for it hear its outcome through this future (as for a local kept copy).
                outcome = copy.outcome = asyncio.get_running_loop().create_future()
                outcome.add_done_callback(lambda done: self._delivered_or_not(copy, done, room))
        elif copy.outcome is not None and not copy.outcome.done():
            copy.outcome.set_result(body["r"])

    def speech_open(self, room: str, client_id: str, since: float | None, hearing: Hearing | None = None) -> None:
        """A client's VAD is inside an utterance since `since` (None: it is not). `hearing`: what it heard of that
        utterance so far (a local phone's segmenter), so that a copy waiting for it can tell a different person."""
        if not self.config.enabled:
            return
        state = self._rooms.get(room)
        if since is None:
            if state is not None:
                state.hearing.pop(client_id, None)
            if state is not None and state.open.pop(client_id, None) is not None:
                state.notify()
                self._tell(room, {"op": "open", "c": client_id, "since": None})
            self._sweep()
            return
        self._sweep()
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        if client_id not in state.open:
            state.open[client_id] = since
            if hearing is not None:
                state.hearing[client_id] = hearing
            state.notify()
            self._tell(room, {"op": "open", "c": client_id, "since": self._to_wall(since)})

    def rivals(self, room: str, client_id: str) -> tuple[list[tuple[Copy, bool]], list[tuple[str, Hearing]]]:
        """What an early read or a partial asks whether another phone hears its speech better
        (babelfish/heard_better.py), as it stands now: the room's copies from other phones but those heard elsewhere
        or not delivered, each with whether it was kept; and the other phones of this server mid-utterance, with what
        each heard so far. Empty when the filter is off."""
        state = self._rooms.get(room) if self.config.enabled else None
        if state is None:
            return [], []
        copies = [(c, c.verdict is not None) for c in state.copies
                  if c.client_id != client_id and (c.verdict is None or stands(c))]  # fmt: skip
        return copies, [(who, hearing) for who, hearing in state.hearing.items() if who != client_id]

    def register(self, room: str, client_id: str, segment: Segment, features: np.ndarray | None = None) -> None:
        """A client's VAD cut `segment`: rivals see it from now on, while it waits in the client's queue.
        `features`: its `envelopes`, computed in the VAD thread when the room `shares` (told to the other servers)."""
        if not self.config.enabled:
            return
        self._sweep()
        state = self._rooms.setdefault(room, _Room())
        copy = make_copy(client_id, segment, self.config.vad_threshold)
        copy.key = f"{client_id}:{next(self._serial)}"
        copy.features = features
        state.copies.append(copy)
        state.notify()
        if features is not None and len(features):
            body = {
                "op": "copy", "k": copy.key, "c": client_id, "s": self._to_wall(copy.start),
                "e": self._to_wall(copy.end), "t0": self._to_wall(copy.t0), "q": list(copy.score),
            }  # fmt: skip
            peak = float(features.max()) or 1.0
            self._tell(room, body, (features[:MAX_ECHO_FRAMES] / peak).astype("<f2").tobytes())
            copy.told = True
        elif client_id not in state.open:
            # Cut within one VAD batch, so never told open: the other servers still learn that a phone here speaks
            # (and so tell us their copies from now on).
            self._tell(room, {"op": "open", "c": client_id, "since": self._to_wall(copy.start)})
            self._tell(room, {"op": "open", "c": client_id, "since": None})

    async def admit(self, room: str, client_id: str, segment: Segment, utterance_id: str | None = None) -> Verdict:
        """The verdict on a copy about to be processed (registered at its cut, or now). `utterance_id`: the id this
        copy already carries (its streaming partials, babelfish/partials.py); kept, it keeps it."""
        if not self.config.enabled:
            return Verdict(True, utterance_id or self._new_id())
        began = self._clock()
        state = self._rooms.setdefault(room, _Room())
        copy = next((c for c in state.copies if c.segment is segment), None)
        if copy is None:
            copy = make_copy(client_id, segment, self.config.vad_threshold)
            copy.key = f"{client_id}:{next(self._serial)}"
            self._prune(state, began)
            state.copies.append(copy)
        deadline = began + self.config.max_wait
        try:
            while True:
                rivals = [c for c in state.copies if c.client_id != client_id and _near(c, copy, self.config)]
                unmatched = [c for c in rivals if id(c) not in copy.matches and _candidate(c, copy, self.config)]
                looks = self._looks(state, copy, self._clock()) if self._clock() < deadline else []
                if unmatched or looks:  # the envelopes and their correlations, off the event loop
                    await asyncio.to_thread(_match_all, copy, unmatched, self.config, looks)
                    done = self._clock()
                    for who, since, _ in looks:  # the next look LOOK_EVERY after this round, not after its start
                        if copy.looked.get((who, since)) != NEVER:
                            copy.looked[(who, since)] = done
                    continue  # copies cut meanwhile are rivals too (what was compared is cached)
                now = self._clock()
                verdict = self._decide(state, copy, rivals, final=now >= deadline, utterance_id=utterance_id)
                if verdict is not None:
                    verdict = replace(verdict, waited=now - began)
                    if verdict.keep:
                        verdict = replace(verdict, outcome=self._kept(copy, room))
                        self.kept_waits.append(verdict.waited)
                    copy.verdict = verdict
                    self._tell_verdict(room, copy)
                    return verdict
                changed = state.changed
                wake = deadline
                if any(who in state.hearing and copy.looked.get((who, since)) != NEVER
                       for who, since in self._holding(state, copy)):  # fmt: skip
                    wake = min(wake, now + LOOK_EVERY)  # its open speech grows: look again
                try:
                    async with asyncio.timeout(max(0.0, wake - now)):
                        await changed.wait()
                except TimeoutError:
                    pass
        finally:
            if copy.verdict is None:  # cancelled: never leave a rival waiting for it
                copy.verdict = Verdict(True, "")
                self._tell_verdict(room, copy)
            state.notify()
            self._sweep()

    def _decide(
        self, state: _Room, copy: Copy, rivals: list[Copy], final: bool, utterance_id: str | None = None
    ) -> Verdict | None:
        cfg = self.config
        # Only a copy that covers most of this one may replace it: a phone that heard half a sentence never stands
        # in for the whole of it.
        same = [c for c in rivals if covers(c, copy) >= cfg.min_coverage and same_speech(copy, c, cfg)]
        kept = [c for c in same if stands(c)]
        if kept:
            best = max(kept, key=lambda c: c.rank)
            assert best.verdict is not None
            if best.outcome is not None and not best.outcome.done():
                # Its audio stays until the kept copy is delivered: it takes over if that one is not.
                copy.turn = asyncio.get_running_loop().create_future()
                best.standby.append(copy)
            return Verdict(False, best.verdict.utterance_id, best.client_id, standby=copy.turn)
        if not final:
            if any(c.verdict is None and better(c, copy) for c in same):
                return None  # a better copy is being decided: it will be kept, and this one heard elsewhere
            if self._holding(state, copy):
                return None  # another phone is mid-utterance over this one: its copy may be the better one
        return Verdict(True, utterance_id or self._new_id())

    def _holding(self, state: _Room, copy: Copy) -> list[tuple[str, float]]:
        """The phones mid-utterance over `copy` (since before it ended, no copy of theirs overlapping it yet), but
        for those whose speech so far was judged unlike it: their copies may be the better one of the same speech."""
        return [
            (who, since) for who, since in state.open.items()
            if who != copy.client_id and since < copy.end and (who, since) not in copy.unlike
            and not _has_copy(state, who, copy)
        ]  # fmt: skip

    def _looks(self, state: _Room, copy: Copy, now: float) -> list[tuple[str, float, Hearing]]:
        """The local phones holding `copy` back whose open speech is due a look (at most every LOOK_EVERY s after the
        last round ended), at most LOOKS_PER_ROUND of them, the longest unlooked first: a round stays short, so the
        copy decides between rounds and never overruns its deadline by more than one short round."""
        due = []
        for key in self._holding(state, copy):
            hearing = state.hearing.get(key[0])
            last = copy.looked.get(key, -float("inf"))
            if hearing is not None and now - last >= LOOK_EVERY:
                due.append((last, key, hearing))
        due.sort(key=lambda d: d[0])
        for _, key, _ in due[:LOOKS_PER_ROUND]:
            copy.looked[key] = now
        return [(*key, hearing) for _, key, hearing in due[:LOOKS_PER_ROUND]]

    def _kept(self, copy: Copy, room: str) -> asyncio.Future[str]:
        """A kept copy's outcome, for the pipeline to resolve; the copies standing by for it wait on it (and the other
        servers' copies, told the outcome)."""
        copy.outcome = asyncio.get_running_loop().create_future()
        copy.outcome.add_done_callback(lambda outcome: self._delivered_or_not(copy, outcome, room))
        return copy.outcome

    def _delivered_or_not(self, copy: Copy, outcome: asyncio.Future[str], room: str) -> None:
        """The kept copy's outcome is known: the copies standing by are released, or the best takes over."""
        waiting = [c for c in copy.standby if c.turn is not None and not c.turn.done()]  # cancelled: gone
        copy.standby = []
        result = "none" if outcome.cancelled() else outcome.result()
        if copy.told:
            self._tell(room, {"op": "outcome", "k": copy.key, "r": result})
        if result == "ok" or not waiting or copy.verdict is None:
            for c in waiting:
                assert c.turn is not None
                c.turn.set_result(None)
            return
        # Copies standing by on other servers for the same utterance: the heir is the best one cluster-wide, and only
        # its own server hands it on (ours then stand by for that one in turn).
        uid = copy.verdict.utterance_id
        state = self._rooms.get(room)
        elsewhere = [
            c for c in (state.copies if state is not None else ())
            if c.remote and c.verdict is not None and not c.verdict.keep and c.verdict.utterance_id == uid
        ]  # fmt: skip
        heir = max(waiting + elsewhere, key=lambda c: c.rank)
        if heir.remote:
            heir.standby.extend(waiting)
            return
        heir.standby = [c for c in waiting if c is not heir]
        verdict = Verdict(True, copy.verdict.utterance_id, outcome=self._kept(heir, room))
        heir.verdict = verdict
        self._tell_verdict(room, heir)
        assert heir.turn is not None
        heir.turn.set_result(verdict)
        log.info(
            "utterance %s from %s not delivered (%s): %s's copy takes over",
            verdict.utterance_id, copy.client_id, result, heir.client_id,
        )  # fmt: skip

    def _prune(self, state: _Room, now: float) -> None:
        while state.copies and state.copies[0].end < now - HORIZON:
            state.copies.popleft()

    def _sweep(self) -> None:
        """Expired copies go from every room, and the state of rooms left with none and nobody speaking."""
        now = self._clock()
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        self._spoken = {room: t for room, t in self._spoken.items() if now - t < SPOKEN_MEMORY}
        for room, state in list(self._rooms.items()):
            self._prune(state, now)
            for client in [c for c in state.remote if now - state.open.get(c, now) > REMOTE_OPEN_MAX]:
                del state.open[client]
                state.remote.discard(client)
            if not state.open and not state.copies:
                del self._rooms[room]

    def rooms(self) -> Iterable[str]:
        return self._rooms.keys()


def heard_elsewhere(hub: Hub, who: Participant, verdict: Verdict) -> None:
    """Tell the room (and the cluster's other servers) that `who`'s phone heard the kept utterance too. Counted in
    /metrics by the caller: a copy standing by may still take over and be counted as processed instead."""
    room = hub.rooms.get(who.room_name)
    if room is None:
        return
    message = proto.HeardBy(utterance_id=verdict.utterance_id, client_id=who.id, name=who.name)
    room.broadcast(message)
    hub.cluster.relay(room, message.encode(), None)
    log.debug("%s heard %s too (kept from %s)", who.id, verdict.utterance_id, verdict.kept_client)


def _candidate(c: Copy, copy: Copy, cfg: EchoConfig) -> bool:
    """Whether `c` could replace `copy` (covers enough of it) and so needs its envelopes compared."""
    return covers(c, copy) >= cfg.min_coverage and covers(c, copy, cfg.max_lag) > 0


def _match_all(
    copy: Copy, rivals: list[Copy], cfg: EchoConfig, looks: Iterable[tuple[str, float, Hearing]] = ()
) -> None:
    """In a worker thread: envelopes and correlations of `copy` against each rival (cached in copy.matches), and
    against what each open phone in `looks` heard so far (those unlike it go into copy.unlike)."""
    for c in rivals:
        same_speech(copy, c, cfg)
    for who, since, hearing in looks:
        heard = hearing()
        if heard is None:
            continue  # it was just cut: its copy comes
        shared, sim, most = judge(copy, heard, cfg)
        if shared >= JUDGE_SECONDS and sim < cfg.min_similarity - UNLIKE_MARGIN:
            copy.unlike.add((who, since))  # clearly not this copy's speech: its copy never replaces this one
        elif most < JUDGE_SECONDS or (shared >= JUDGE_SECONDS and sim >= cfg.min_similarity):
            # Too short to judge however it grows, or it hears this very speech: either way the copy waits for that
            # phone's copy as before, and looking again would only cost CPU.
            copy.looked[(who, since)] = NEVER


def judge(copy: Copy, heard: OpenSegment, cfg: EchoConfig) -> tuple[float, float, float]:
    """What a phone's open speech so far says of `copy`: (voiced seconds the two share, envelope similarity over
    them, the most voiced seconds they can ever share); (inf, 0.0, inf) when its copy, however it ends, cannot cover
    enough of `copy` to replace it (it began too late).

    The open speech is placed on the arrival timeline as `make_copy` places a copy (its first voiced window arrived
    at `heard.started`, after its preroll), and only the part of it within `copy`'s frames ± max_lag is compared."""
    step = WINDOW / SAMPLE_RATE
    probs = heard.timing_probs
    voiced = np.flatnonzero(probs >= max(0.05, cfg.vad_threshold - 0.15))
    if not len(voiced):
        return 0.0, 0.0, copy.end - copy.start
    t0 = open_t0(heard)
    start, end = t0 + voiced[0] * step, t0 + (voiced[-1] + 1) * step
    # Open speech is placed from its first voiced window's arrival, a copy from its last: allow max_lag for a phone
    # whose audio arrived late at its start (a network stall), as the correlation allows it.
    if covers(Copy("", None, start - cfg.max_lag, float("inf"), (0.0, 0.0)), copy) < cfg.min_coverage:
        return float("inf"), 0.0, float("inf")
    most = copy.end - max(copy.start, start)
    shared = min(copy.end, end) - max(copy.start, start)
    if shared <= 0:
        return 0.0, 0.0, most
    copy.prepare()
    assert copy.features is not None
    lag = round(cfg.max_lag * SAMPLE_RATE / HOP)
    # Whole frames (HOP apart) of the open audio from max_lag before the copy's first sample to max_lag after its last.
    first = max(0, int((copy.t0 - t0) * SAMPLE_RATE / HOP) - lag)
    last = first + len(copy.features) + 2 * lag + FRAME // HOP
    features = envelopes(heard.audio[first * HOP : last * HOP])
    offset = round((t0 - copy.t0) * SAMPLE_RATE / HOP) + first  # the open frame j is heard at the copy's j + offset
    return shared, similarity(copy.features, features, offset, lag), most


def open_t0(heard: OpenSegment) -> float:
    """The arrival time of an open segment's first sample: its first voiced window arrived at `heard.started`, after
    the preroll (as `make_copy` places a copy's by its last voiced window)."""
    step = WINDOW / SAMPLE_RATE
    return heard.started - (len(heard.timing_probs) - round(heard.speech_seconds / step) + 1) * step


def stands(c: Copy) -> bool:
    """A kept copy that was delivered or still may be."""
    v, outcome = c.verdict, c.outcome
    if v is None or not v.keep or not v.utterance_id:
        return False
    return outcome is None or not outcome.done() or (not outcome.cancelled() and outcome.result() == "ok")


def _near(c: Copy, copy: Copy, cfg: EchoConfig) -> bool:
    return c.start - cfg.max_lag < copy.end and copy.start < c.end + cfg.max_lag


def _has_copy(state: _Room, who: str, copy: Copy) -> bool:
    """Whether `who` already sent a copy overlapping `copy` (its open speech is then a later utterance)."""
    return any(c.client_id == who and c.end > copy.start and c is not copy for c in state.copies)
