"""Cut one client's audio stream into utterances with Silero VAD.

A `Segmenter` belongs to one client and is fed from one worker thread at a time. It resamples the
client's PCM16 to 16 kHz (soxr, streaming), asks Silero for a speech probability per 32 ms window,
and emits an utterance when speech is followed by enough silence, when the maximum length is reached,
or when the client says the utterance ended. Bursts shorter than `min_speech_ms` are dropped as noise,
so silence and noise never reach the engine. In a crowd that never stops, a window is voice only when it is also
louder than the phone's background (babelfish/background.py), or turns would not end. Two things follow from that:
a segment the crowd opened before the gate knew the room (a phone's first turn) is judged again when the gate turns
on (`_rejudge`), and the crowd's own peaks that kept a turn open after the speaker stopped are left out of it
(`_finish`): Whisper makes words of a crowd. Where the speaker's words begin and end in a segment is searched for in
babelfish/voice_span.py. Each segment also carries the probabilities as the gate let them count (`heard_probs`),
which place its speech in time; the engine gets Silero's own. With early reads on (babelfish/early.py), a segment
cut at a pause says up to which sample its words are read (`read_until`): the pause past its first `early_read_ms` is
read as zero, so a read started that far into the pause reads exactly what the cut will (`read_ahead`).

Silero v6.2 runs as ONNX, the graph that takes a sequence of windows with one LSTM state. VAD cost scales with
streams, so it is kept small (docs/benchmarks.md, "VAD per stream"): windows quieter than
`energy_gate_dbfs` count as silence without running the model, and all the windows a batch of frames completes go
through the model in one call (Silero's ONNX graph runs a sequence of windows with one LSTM state, exactly as one
call per window would). A stream that falls behind therefore catches up in fewer, larger calls.
"""

from __future__ import annotations

import importlib.util
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import soxr

from babelfish.background import BackgroundGate, level_db
from babelfish.config import Settings
from babelfish.engines.base import SAMPLE_RATE
from babelfish.voice_span import onset, voice_end

WINDOW = 512  # Silero's fixed window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window Silero v5+ sees before each window
CutReason = Literal["silence", "max_length", "end_utterance"]
# In a crowd, a segment that begins this soon after one that stood out over the crowd goes on from it (a quieter
# clause of someone reading on), and a lower bar applies to it (babelfish/background.py, `stands_out`).
FOLLOWS_WITHIN_MS = 1000


class SpeechDetector(Protocol):
    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Speech probability of each of n consecutive windows: float32 (n, WINDOW) in, (n,) out."""
        ...

    def reset(self) -> None: ...


class SileroVad:
    """Silero VAD v6.2 as ONNX (the `silero-vad` package's sequence graph): one session, loaded once, shared by
    every stream. onnxruntime's `run` is thread-safe and releases the GIL, so the VAD threads run streams in parallel.
    """

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        # One thread per call: parallelism comes from the VAD pool running several streams at once.
        opts.inter_op_num_threads = opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        path = path or model_path()
        self._session = onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def stream(self) -> SileroStream:
        return SileroStream(self._session)


class SileroStream:
    """One stream's Silero state (LSTM h/c and the last samples seen) over the shared session."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        if not len(windows):
            return np.zeros(0, np.float32)
        before = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT:]])
        rows = np.concatenate([before, windows], axis=1).astype(np.float32, copy=False)
        probs, self._h, self._c = self._session.run(None, {"input": rows, "h": self._h, "c": self._c})
        self._context = windows[-1, -CONTEXT:].copy()
        return np.asarray(probs, np.float32).reshape(-1)


def model_path() -> Path:
    """The sequence graph shipped in the `silero-vad` wheel, found without importing that package (it imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the silero-vad package is missing: pip install -r requirements_server.txt")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad_16k_sequence.onnx"


def silero_detector() -> SpeechDetector:
    """A detector over a freshly loaded model: for tests and tools; the server loads `SileroVad` once."""
    return SileroVad().stream()


@dataclass(frozen=True)
class Segment:
    audio: np.ndarray  # float32 mono 16 kHz
    speech_end: float  # arrival time (time.monotonic) of the last voiced audio
    cut: CutReason
    # Silero's speech probability for each WINDOW of `audio`, in order (a last partial window has none): the engine
    # weighs how confidently this was speech.
    speech_probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    cut_at: float = field(default_factory=time.monotonic)  # when it was cut: endpointing ends here (/metrics)
    serial: int = 0  # which of this stream's segments (OpenSegment.serial while it was still open)
    crowd: bool = False  # cut while the phone heard a crowd (the crowd gate on, babelfish/background.py)
    # The same probabilities, 0 where the crowd gate said a window was the crowd's (None: none was, outside a crowd).
    # Where the phone's own speaker was voiced: placing the speech in time (turns, echoes) goes by these.
    heard_probs: np.ndarray | None = None
    # Cut at a pause with early reads on: from this sample on, the audio is the silence after the part an early read
    # took (`Segmenter.read_ahead`); the engine reads its words as if it were zero (Utterance.read_until).
    read_until: int | None = None
    # The phone's background level (dBFS: its floor, babelfish/background.py) when this was cut; None while unknown.
    floor_db: float | None = None

    @property
    def timing_probs(self) -> np.ndarray:
        """The probabilities that place this speech in time: `heard_probs`, or Silero's own outside a crowd."""
        return self.speech_probs if self.heard_probs is None else self.heard_probs


@dataclass(frozen=True)
class OpenSegment:
    """The segment still being spoken, as far as it has arrived (for streaming partials, babelfish/partials.py)."""

    serial: int  # counts this stream's segments from 1; the Segment it becomes carries the same number
    audio: np.ndarray  # float32 16 kHz, preroll included
    speech_probs: np.ndarray
    started: float  # arrival time of its first voiced window
    speech_seconds: float  # audio from its first voiced window on (the preroll before it not counted)
    heard_probs: np.ndarray | None = None  # as Segment.heard_probs
    floor_db: float | None = None  # as Segment.floor_db

    @property
    def timing_probs(self) -> np.ndarray:
        """As Segment.timing_probs."""
        return self.speech_probs if self.heard_probs is None else self.heard_probs


@dataclass(frozen=True)
class ReadAhead:
    """An open segment as the cut at its pause will read it, should no speech come before (`Segmenter.read_ahead`)."""

    serial: int  # the segment's (OpenSegment.serial)
    audio: np.ndarray  # as long as the cut's audio will be: what arrived up to `read_until`, then zeros
    speech_probs: np.ndarray  # Silero's, 0 for the windows not yet heard
    read_until: int  # as Segment.read_until
    speech_end: float  # as Segment.speech_end: arrival of its last voiced window
    floor_db: float | None = None  # as Segment.floor_db


@dataclass(frozen=True, kw_only=True)
class SegmenterConfig:
    threshold: float
    silence_ms: int
    min_speech_ms: int
    preroll_ms: int
    max_seconds: float
    energy_gate_dbfs: float = -55.0  # quieter windows are silence without asking the model
    crowd_margin_db: float = 8.0  # in a crowd, voice is this far over the background (0: off); background.py
    # Silence at the end of a pause-cut segment its words are read from; the rest is read as zero, so that a read
    # started this far into the pause (babelfish/early.py) reads what the cut will. 0 (or not under `silence_ms`): all.
    early_read_ms: int = 0

    @classmethod
    def from_settings(cls, s: Settings) -> SegmenterConfig:
        return cls(
            threshold=s.vad_threshold,
            silence_ms=s.vad_silence_ms,
            min_speech_ms=s.vad_min_speech_ms,
            preroll_ms=s.vad_preroll_ms,
            max_seconds=s.max_utterance_seconds,
            energy_gate_dbfs=s.vad_energy_gate_dbfs,
            crowd_margin_db=s.vad_crowd_margin_db,
            early_read_ms=s.early_read_ms,
        )


@dataclass(frozen=True)
class _Window:
    """One WINDOW of audio as the segmenter judged it."""

    audio: np.ndarray
    prob: float  # Silero's speech probability
    heard: float  # the same, or 0 where the crowd gate said the crowd
    level: float  # dBFS
    arrived: float  # arrival time of the frame that completed it


@dataclass(frozen=True)
class _Opened:
    """The segment being spoken, as one reference another thread can read whole (see `Segmenter.open_segment`): its
    list of windows is the segmenter's own, which only grows, a whole window at a time, until the segment is cut or
    judged again (then a new list is made)."""

    serial: int
    started: float
    preroll_windows: int
    windows: list[_Window]


def _windows(ms: float) -> int:
    return max(1, round(ms * SAMPLE_RATE / 1000 / WINDOW))


def early_windows(early_read_ms: int, silence_ms: int) -> int:
    """Windows of a pause after which an early read starts (babelfish/early.py); 0: none (off, or not within the
    pause that cuts)."""
    kept = _windows(early_read_ms) if early_read_ms > 0 else 0
    return kept if kept < _windows(silence_ms) else 0


class Segmenter:
    def __init__(self, detector: SpeechDetector, config: SegmenterConfig, input_rate: int = SAMPLE_RATE) -> None:
        self._vad = detector
        self._cfg = config
        # Hysteresis: once talking, a slightly lower probability still counts as speech.
        self._off_threshold = max(0.05, config.threshold - 0.15)
        self._resampler = (
            soxr.ResampleStream(input_rate, SAMPLE_RATE, 1, dtype="float32") if input_rate != SAMPLE_RATE else None
        )
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet a full window
        self._preroll: deque[_Window] = deque(maxlen=_windows(config.preroll_ms) if config.preroll_ms else 1)
        # The utterance being spoken, window by window: a segment opened before the gate knew the room is judged again
        # when it turns on (`_rejudge`), and in a crowd its end is found again when it is cut (`voice_end`).
        self._speech: list[_Window] = []
        self._voiced = 0  # voiced windows in the current utterance
        self._peak = 0.0  # the current utterance's loudest window over the background (dB; meant for crowds)
        self._fed = 0  # windows fed so far
        self._began = 0  # window count where the current utterance begins (its pre-roll included)
        self._stood_out_until = -(10**9)  # window count where the last segment that stood out ended
        self._silent_run = 0  # consecutive unvoiced windows
        self._last_voiced_at = 0.0
        # Arrival of the speech in progress (None between utterances): babelfish/turns.py asks whether a turn goes on.
        self.speech_started: float | None = None
        self._serial = 0  # segments opened so far
        self._opened_in_crowd = False  # the open segment began with the crowd gate on (`_rejudge` leaves it be)
        self._opened: _Opened | None = None  # the segment being spoken, for readers on other threads
        self._max_windows = int(config.max_seconds * SAMPLE_RATE / WINDOW)
        # The pause's windows a cut's words are read from (the rest as zero), so an early read reads what it will.
        self._kept = early_windows(config.early_read_ms, config.silence_ms)
        self._gate = 10 ** (config.energy_gate_dbfs / 20)  # RMS, full scale = 1
        self._background = BackgroundGate(
            config.crowd_margin_db, window_seconds=WINDOW / SAMPLE_RATE, voiced=self._off_threshold
        )

    @property
    def in_crowd(self) -> bool:
        """Whether this phone hears a crowd that never stops now (babelfish/background.py). Free to ask."""
        return self._background.crowd

    @property
    def hears_crowd(self) -> bool:
        """Whether this phone hears a voiced background (a café, a television), whether or not its gate is on. Free to
        ask."""
        return self._background.voiced_background

    @property
    def speaking(self) -> bool:
        """Inside an utterance (speech seen, not yet cut)."""
        return bool(self._speech)

    def feed(self, pcm16: bytes, now: float) -> list[Segment]:
        """Add PCM16 LE mono at the input rate, arrived at `now`; return the utterances it completes."""
        return self.feed_many([(pcm16, now)])

    def feed_many(self, chunks: Sequence[tuple[bytes, float]]) -> list[Segment]:
        """Add several frames, each with its arrival time, in one pass: one model call for all their windows."""
        parts, ends, times = [self._pending], [], []
        total = len(self._pending)
        for pcm16, now in chunks:
            samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
            if self._resampler is not None:
                samples = self._resampler.resample_chunk(samples)
            parts.append(samples)
            total += len(samples)
            ends.append(total)
            times.append(now)
        buf = np.concatenate(parts) if len(parts) > 1 else self._pending
        n = len(buf) // WINDOW
        self._pending = buf[n * WINDOW :].copy()
        if not n:
            return []
        windows = buf[: n * WINDOW].reshape(n, WINDOW)
        # A window arrived with the frame that completed it.
        arrived = np.asarray(times)[np.searchsorted(np.asarray(ends), (np.arange(n) + 1) * WINDOW)]
        probs = np.zeros(n, np.float32)
        rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))
        loud = rms >= self._gate
        if loud.any():
            probs[loud] = self._vad.probabilities(windows[loud])
        out: list[Segment] = []
        levels = level_db(rms)
        for i in range(n):
            prob, level = float(probs[i]), float(levels[i])
            crowd_before = self._background.crowd
            self._background.add(level, prob)
            if self._background.crowd and not crowd_before:
                replayed = self._rejudge()
                if replayed is not None:
                    out.append(replayed)
            # Outside a crowd, Silero's probability decides; in one, a window under the margin is not voice. The
            # segment keeps Silero's own probabilities too (the engine's non-speech rules are measured on them).
            heard = prob if self._background.allows(level, bool(self._speech)) else 0.0
            seg = self._window(_Window(windows[i], prob, heard, level, float(arrived[i])), self._fed)
            self._fed += 1
            if seg is not None:
                out.append(seg)
        return out

    def _rejudge(self) -> Segment | None:
        """The crowd gate just turned on. A segment open since before (the crowd opened it, or kept it going, before
        the gate knew the room: most often a phone's first turn, or the first after a long silence) goes through the
        gate again: the speaker's words begin at their onset (babelfish/voice_span.py), and the crowd before them is
        dropped (all of it if none are theirs). If the words have ended, the segment is cut now rather than at the next
        pause in the crowd, which may never come. It is not split where the speaker paused: a quieter speaker's words
        in between would then be dropped as the crowd's, where without the replay they were kept. It goes on under the
        same serial (partials and echoes follow it). With no segment open, the pre-roll is judged again: it places the
        next one's start."""
        gate = self._background
        if not self._speech or self._opened_in_crowd:
            self._preroll = deque(
                (replace(w, heard=w.prob if gate.allows(w.level, False) else 0.0) for w in self._preroll),
                maxlen=self._preroll.maxlen,
            )
            return None
        windows, at = self._speech, self._began
        first = onset([w.prob for w in windows], [w.level for w in windows], gate, self._cfg.threshold,
                      _windows(FOLLOWS_WITHIN_MS))  # fmt: skip
        self._opened, self._speech = None, []
        self._voiced = self._silent_run = 0
        self._preroll.clear()
        self._serial -= 1  # the same segment goes on, if it does: opening it again counts it again
        for k, w in enumerate(windows):
            voice = first is not None and k >= first and gate.allows(w.level, True)
            cut = self._window(replace(w, heard=w.prob if voice else 0.0), at + k, replay=True)
            assert cut is None  # a replay cuts only below, and never at the cap (the segment was shorter)
        if not self._speech:  # the crowd's alone: dropped, and its serial is not used again
            self._serial += 1
            self.speech_started = None
            return None
        return self._finish("silence") if self._silent_run >= _windows(self._cfg.silence_ms) else None

    @property
    def trailing_silence(self) -> float:
        """Seconds of non-speech at the end of the segment being spoken (0 between segments). Free to ask."""
        return self._silent_run * WINDOW / SAMPLE_RATE if self._speech else 0.0

    def open_segment(self) -> OpenSegment | None:
        """The segment being spoken as far as it has been fed, if any: one concatenation, so call it only when it is
        needed. Any thread may call it, also while another feeds (one phone per voice looks at a phone's open speech
        from a worker thread, babelfish/echoes.py): it reads one reference to the open segment, and copies its growing
        list of windows once."""
        opened = self._opened
        if opened is None:
            return None
        windows = opened.windows[:]  # another thread may append meanwhile: one copy of what is there
        return OpenSegment(
            opened.serial,
            np.concatenate([w.audio for w in windows]),
            np.asarray([w.prob for w in windows], np.float32),
            opened.started,
            (len(windows) - opened.preroll_windows) * WINDOW / SAMPLE_RATE,
            np.asarray([w.heard for w in windows], np.float32),
            self._background.known_floor,
        )

    def read_ahead_point(self) -> tuple[int, int] | None:
        """(serial, read_until) of `read_ahead`, without building it: free to ask. The feeding thread only."""
        windows, silent = self._speech, self._silent_run
        if not self._kept or not windows or silent < self._kept or self.in_crowd:
            return None
        if self._voiced * WINDOW * 1000 < self._cfg.min_speech_ms * SAMPLE_RATE:
            return None  # a burst the cut will drop as noise (no window of the pause adds to it)
        if len(windows) - silent + _windows(self._cfg.silence_ms) > self._max_windows:
            return None  # the cap cuts it first, and reads all of it
        return self._serial, (len(windows) - silent + self._kept) * WINDOW

    def read_ahead(self) -> ReadAhead | None:
        """The open segment as its cut will read it if no speech comes before the pause ends it, once the pause has
        lasted `early_read_ms` (None before, between segments, in a crowd, or with early reads off). The feeding
        thread only (it reads the segmenter's own state)."""
        point = self.read_ahead_point()
        if point is None:
            return None
        serial, read_until = point
        heard = self._speech[: read_until // WINDOW]
        rest = _windows(self._cfg.silence_ms) - self._kept
        audio = np.concatenate([*(w.audio for w in heard), np.zeros(rest * WINDOW, np.float32)])
        probs = np.asarray([*(w.prob for w in heard), *[0.0] * rest], np.float32)
        return ReadAhead(serial, audio, probs, read_until, self._last_voiced_at, self._background.known_floor)

    @property
    def open_serial(self) -> int | None:
        """The serial of the segment being spoken; None between segments. Free to ask."""
        return self._serial if self._speech else None

    @property
    def open_started(self) -> float | None:
        """Arrival of the open segment's first voiced window (OpenSegment.started); None between segments. It moves
        when the crowd gate judges the segment again (`_rejudge`). Free to ask."""
        opened = self._opened
        return opened.started if opened is not None else None

    def end_utterance(self, now: float) -> Segment | None:
        """The client ended the utterance (push-to-talk release): emit what was said, if anything."""
        partial, self._pending = self._pending, np.zeros(0, dtype=np.float32)
        return self._finish("end_utterance", partial)

    def _window(self, w: _Window, at: int, replay: bool = False) -> Segment | None:
        """One window; `at`: its index in the stream; `replay`: judged again (`_rejudge`, which cuts)."""
        if not self._speech:
            if w.heard >= self._cfg.threshold:
                self._began = at - len(self._preroll)
                self._speech = [*self._preroll, w]
                self._preroll.clear()
                self._peak = self._background.over(max(b.level for b in self._speech))
                self._opened_in_crowd = self._background.crowd
                self._voiced, self._silent_run, self._last_voiced_at = 1, 0, w.arrived
                self.speech_started = w.arrived
                self._serial += 1
                self._opened = _Opened(self._serial, w.arrived, len(self._speech) - 1, self._speech)
            elif self._cfg.preroll_ms:
                self._preroll.append(w)
            return None
        self._speech.append(w)
        self._peak = max(self._peak, self._background.over(w.level))
        if w.heard >= self._off_threshold:
            self._voiced += 1
            self._silent_run = 0
            self._last_voiced_at = w.arrived
        else:
            self._silent_run += 1
        if self._silent_run >= _windows(self._cfg.silence_ms) and not replay:
            return self._finish("silence")
        if len(self._speech) >= self._max_windows:
            return self._finish("max_length")
        return None

    def _finish(self, cut: CutReason, partial: np.ndarray | None = None) -> Segment | None:
        """Close the open segment (`partial`: samples short of a window that end it, from end_utterance). In a crowd,
        one cut at a pause ends where its speaker's voice did (`voice_end`): its audio up to the silence that would
        have ended it then, the crowd's peaks after the voice not counted as voice (they place it in time), and its
        speech end there."""
        self._opened = None
        ended = (
            voice_end(
                np.asarray([w.heard for w in self._speech]), np.asarray([w.level for w in self._speech]),
                self._background.bar(False), self._off_threshold, _windows(self._cfg.silence_ms),
            )
            if self.in_crowd and cut == "silence"
            else None
        )  # fmt: skip
        windows, voiced, peak, last = self._speech, self._voiced, self._peak, self._last_voiced_at
        # The cut's words are read up to where an early read of this pause stopped, by the same rule
        # (`read_ahead_point`: none in a crowd, where the gate may end the segment elsewhere, `voice_end`).
        point = self.read_ahead_point() if cut == "silence" and ended is None else None
        read_until = point[1] if point is not None else None
        heard = [w.heard for w in windows]
        if ended is not None:
            n = ended + 1 + _windows(self._cfg.silence_ms)
            voiced -= sum(h >= self._off_threshold for h in heard[ended + 1 :])
            windows, heard = windows[:n], [*heard[: ended + 1], *[0.0] * (n - ended - 1)]
            peak, last = self._background.over(max(w.level for w in windows[: ended + 1])), windows[ended].arrived
        audio = [w.audio for w in windows] + ([partial] if partial is not None and len(partial) and windows else [])
        probs, end = [w.prob for w in windows], self._began + len(windows)
        self._speech = []
        self._voiced = self._silent_run = 0
        self.speech_started = None
        if cut != "max_length":
            self._vad.reset()  # a fresh state per utterance keeps one noisy stretch from leaking into the next
        if not windows or voiced * WINDOW * 1000 < self._cfg.min_speech_ms * SAMPLE_RATE:
            return None
        if not self.in_crowd or self._background.stands_out(peak):
            self._stood_out_until = end  # where its audio ends: what follows within a second goes on from it
        elif self._began - self._stood_out_until > _windows(FOLLOWS_WITHIN_MS) or not self._background.stands_out(
            peak, going_on=True
        ):
            return None  # the crowd's own: nothing in it was as loud as the phone's speaker
        return Segment(
            np.concatenate(audio), last, cut, np.asarray(probs, np.float32), serial=self._serial,
            crowd=self.in_crowd, heard_probs=None if heard == probs else np.asarray(heard, np.float32),
            read_until=read_until, floor_db=self._background.known_floor,
        )  # fmt: skip
