"""A speaker's turn: the pieces the segmenter cut at breath pauses, and the moment the turn is over.

Hands-free, the segmenter cuts an utterance after `vad_silence_ms` of silence (300 ms by default), so a sentence
with a breath in it arrives as several pieces, each transcribed alone and without the others' context. A *turn* is
the consecutive pieces of one participant whose pauses are short. When a turn ends, the pipeline re-transcribes the
turn's joined audio (babelfish/revisions.py) and sends a corrected text: always for a turn of two or more pieces,
and for a one-piece turn when `min_pieces` is 1 (`revision_single_pieces`).

The rule (docs/benchmarks.md, "Turns and revisions", has the measurements behind the numbers):
- a piece continues the open turn when its speech starts at most `gap` seconds after the previous piece's speech
  ended, and the turn's audio with it stays within `max_seconds` (Whisper decodes 30 s at once; a longer turn is
  revised in parts);
- a turn ends `gap` seconds after its last speech, unless the speaker is talking again by then (the intake's
  probe: speech in progress that started within the gap, or pieces already cut and waiting) — then it waits for
  that piece, bounded by `max_seconds`;
- a turn ends at once when a piece does not continue it (a piece recognised as another voice on the same phone never
  does), when someone else in the room speaks after its last piece
  (the floor changed hands: a revision merging pieces from both sides of their words would reorder the conversation),
  or when the speaker leaves.

Only the event loop touches a tracker. A tracker owns one timer per speaker with an open turn, cancelled in `close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from babelfish.engines.base import SAMPLE_RATE, Context
from babelfish.protocol import Speaker

log = logging.getLogger(__name__)

WINDOW = 512  # the segmenter's window in samples
WINDOW_SECONDS = WINDOW / SAMPLE_RATE  # the segmenter's window (32 ms): one speech probability each
VOICED = 0.35  # a window at least this probable is speech (the segmenter's off-threshold at its default 0.5)
RATE_VOICED = 0.5  # voiced, for a speech rate: the threshold the engine's rates use (nonspeech.py)
RECHECK = 0.2  # seconds between looks while the speaker is talking again
SLACK = 0.15  # the intake hands frames to the VAD in batches of ~100 ms: speech may be seen this much late

# What the intake says about speech not yet handed to the pipeline: when it started (time.monotonic), 0.0 when pieces
# are already cut and waiting (they came right after), or None when the speaker is silent.
Probe = Callable[[], float | None]


@dataclass(frozen=True)
class Piece:
    """One transcribed segment of a turn."""

    utterance_id: str
    audio: np.ndarray  # float32 mono 16 kHz, as the segmenter cut it (pre-roll and trailing silence included)
    speech_probs: np.ndarray | None
    text: str
    language: str
    speech_end: float  # time.monotonic of the last voiced audio
    speaker: Speaker  # the voice its transcript was labelled with
    context: Context | None = None  # what the speaker said before it (babelfish/recent.py): a turn's revision uses it
    heard_probs: np.ndarray | None = None  # Segment.heard_probs: where its speech lies in a crowd

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def speech_start(self) -> float:
        """When the piece's speech began (time.monotonic), from its voiced windows; the audio's start without them."""
        return self.speech_end - voiced_span(self.timing_probs, self.seconds)

    @property
    def timing_probs(self) -> np.ndarray | None:
        """The probabilities that place it in time (Segment.timing_probs)."""
        return self.speech_probs if self.heard_probs is None else self.heard_probs


def voiced_span(probs: np.ndarray | None, seconds: float) -> float:
    """Seconds from the first voiced window to the end of the last one; `seconds` when the probabilities are missing."""
    if probs is None or not len(probs):
        return seconds
    voiced = np.flatnonzero(probs >= VOICED)
    if not len(voiced):
        return seconds
    return float(voiced[-1] - voiced[0] + 1) * WINDOW_SECONDS


@dataclass
class Turn:
    speaker_id: str
    room: str = ""
    pieces: list[Piece] = field(default_factory=list)
    owner: object = None  # what the pipeline needs to answer (the Participant); opaque here

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.pieces)

    @property
    def ids(self) -> list[str]:
        return [p.utterance_id for p in self.pieces]

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.pieces)

    @property
    def speech_end(self) -> float:
        return self.pieces[-1].speech_end

    def audio(self) -> np.ndarray:
        return np.concatenate([p.audio for p in self.pieces])

    def voiced_seconds(self) -> float | None:
        """How much of the turn the segmenter heard as speech (windows at RATE_VOICED or more); None without its
        probabilities."""
        probs = self.speech_probs()
        return None if probs is None else float(np.count_nonzero(probs >= RATE_VOICED)) * WINDOW_SECONDS

    def speech_probs(self) -> np.ndarray | None:
        """The pieces' probabilities joined, when each piece has exactly one per full window (else None)."""
        joined = []
        for p in self.pieces:
            if p.speech_probs is None or len(p.speech_probs) != len(p.audio) // WINDOW or len(p.audio) % WINDOW:
                return None
            joined.append(p.speech_probs)
        return np.concatenate(joined)


@dataclass
class _Open:
    turn: Turn
    timer: asyncio.TimerHandle | None = None
    waited_since: float | None = None  # when the turn's end was first put off because the speaker talks again


class TurnTracker:
    """Groups each speaker's pieces into turns; calls `on_end(turn)` for every ended turn of `min_pieces` or more."""

    def __init__(self, gap: float, max_seconds: float, on_end: Callable[[Turn], None], min_pieces: int = 2) -> None:
        self.gap = gap
        self.max_seconds = max_seconds
        self.min_pieces = min_pieces
        self._on_end = on_end
        self._open: dict[str, _Open] = {}
        self._probes: dict[str, Probe] = {}
        self._in_flight: dict[str, set[str]] = {}  # utterance ids the pipeline is transcribing, per speaker

    # --- hooks: the intake and the pipeline -----------------------------------------------------------------------

    def watch(self, speaker_id: str, probe: Probe) -> None:
        """The intake of `speaker_id` says, when asked, whether more speech is on its way."""
        self._probes[speaker_id] = probe

    def expect(self, speaker_id: str, utterance_id: str) -> None:
        """A segment of `speaker_id` entered the pipeline: the open turn waits for it."""
        self._in_flight.setdefault(speaker_id, set()).add(utterance_id)

    def settled(self, speaker_id: str, utterance_id: str) -> None:
        """That segment is done with (added as a piece, not speech, shed or failed). Safe to call twice."""
        ids = self._in_flight.get(speaker_id)
        if ids is not None:
            ids.discard(utterance_id)
            if not ids:
                del self._in_flight[speaker_id]

    def add(self, speaker_id: str, piece: Piece, owner: object = None, room: str = "") -> None:
        """A transcribed piece: it continues the speaker's open turn or starts a new one, and ends the turns of
        others in `room` that it followed."""
        self.settled(speaker_id, piece.utterance_id)
        for other in [sid for sid, s in self._open.items() if sid != speaker_id and s.turn.room == room]:
            if piece.speech_start > self._open[other].turn.speech_end:
                self._end(other)
        state = self._open.get(speaker_id)
        if state is not None and not self._continues(state.turn, piece):
            self._end(speaker_id)
            state = None
        if state is None:
            state = self._open[speaker_id] = _Open(Turn(speaker_id, room, owner=owner))
        state.turn.pieces.append(piece)
        state.turn.owner = owner
        state.waited_since = None
        self._schedule(speaker_id, piece.speech_end + self.gap + SLACK)

    def leave(self, speaker_id: str) -> None:
        """The speaker is gone (everything they said was processed): their turn ends now."""
        self._probes.pop(speaker_id, None)
        self._in_flight.pop(speaker_id, None)
        self._end(speaker_id)

    def close(self) -> None:
        """Shutting down: forget every open turn without revising it."""
        for state in self._open.values():
            if state.timer is not None:
                state.timer.cancel()
        self._open.clear()
        self._probes.clear()

    def talking(self) -> bool:
        """Whether anyone is speaking now or has speech on its way to the engine: the engine is about to be needed."""
        return bool(self._in_flight) or any(probe() is not None for probe in self._probes.values())

    def open_turn(self, speaker_id: str) -> Turn | None:
        state = self._open.get(speaker_id)
        return state.turn if state else None

    # --- the rule ----------------------------------------------------------------------------------------------------

    def _continues(self, turn: Turn, piece: Piece) -> bool:
        if piece.speaker.id != turn.pieces[-1].speaker.id:
            return False  # another voice on the same phone: their own turn (a revision credits one voice)
        pause = piece.speech_start - turn.speech_end
        return pause <= self.gap + SLACK and turn.seconds + piece.seconds <= self.max_seconds

    def _schedule(self, speaker_id: str, when: float) -> None:
        state = self._open[speaker_id]
        if state.timer is not None:
            state.timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - loop.time())  # loop.time() is time.monotonic() in asyncio's default loop
        state.timer = loop.call_later(delay, self._check, speaker_id)

    def _check(self, speaker_id: str) -> None:
        state = self._open.get(speaker_id)
        if state is None:
            return
        state.timer = None
        turn, now = state.turn, asyncio.get_running_loop().time()
        if self._more_coming(speaker_id, turn):
            if state.waited_since is None:
                state.waited_since = now
            if now - state.waited_since < self.max_seconds:
                self._schedule(speaker_id, now + RECHECK)
                return
            log.debug("turn of %s: still talking after %.0f s; ending it", speaker_id, self.max_seconds)
        self._end(speaker_id)

    def _more_coming(self, speaker_id: str, turn: Turn) -> bool:
        if self._in_flight.get(speaker_id):
            return True
        probe = self._probes.get(speaker_id)
        since = probe() if probe is not None else None
        return since is not None and since - turn.speech_end <= self.gap + SLACK

    def _end(self, speaker_id: str) -> None:
        state = self._open.pop(speaker_id, None)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
        if len(state.turn.pieces) >= self.min_pieces:
            try:
                self._on_end(state.turn)
            except Exception:  # a revision is a bonus: never let it break the pipeline that calls add/leave
                log.exception("ending the turn of %s failed", speaker_id)
