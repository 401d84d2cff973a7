"""Cut one client's audio stream into utterances with Silero VAD.

A `Segmenter` belongs to one client and is fed from one worker thread at a time. It resamples the
client's PCM16 to 16 kHz (soxr, streaming), asks Silero for a speech probability per 32 ms window,
and emits an utterance when speech is followed by enough silence, when the maximum length is reached,
or when the client says the utterance ended. Bursts shorter than `min_speech_ms` are dropped as noise,
so silence and noise never reach the engine. In a crowd that never stops, a window is voice only when it is also
louder than the phone's background (babelfish/background.py), or turns would not end.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import soxr

from babelfish.background import BackgroundGate
from babelfish.config import Settings
from babelfish.engines.base import SAMPLE_RATE

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


@dataclass(frozen=True)
class OpenSegment:
    """The segment still being spoken, as far as it has arrived (for streaming partials, babelfish/partials.py)."""

    serial: int  # counts this stream's segments from 1; the Segment it becomes carries the same number
    audio: np.ndarray  # float32 16 kHz, preroll included
    speech_probs: np.ndarray
    started: float  # arrival time of its first voiced window
    speech_seconds: float  # audio from its first voiced window on (the preroll before it not counted)


@dataclass(frozen=True, kw_only=True)
class SegmenterConfig:
    threshold: float
    silence_ms: int
    min_speech_ms: int
    preroll_ms: int
    max_seconds: float
    energy_gate_dbfs: float = -55.0  # quieter windows are silence without asking the model
    crowd_margin_db: float = 8.0  # in a crowd, voice is this far over the background (0: off); background.py

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
        )


@dataclass(frozen=True)
class _Opened:
    """The segment being spoken, as one reference another thread can read whole (see `Segmenter.open_segment`): its
    lists are the segmenter's own, which only grow until the segment is cut (then new lists are made)."""

    serial: int
    started: float
    preroll_windows: int
    windows: list[np.ndarray]
    probs: list[float]


def _windows(ms: float) -> int:
    return max(1, round(ms * SAMPLE_RATE / 1000 / WINDOW))


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
        self._preroll: deque[tuple[np.ndarray, float, float]] = deque(
            maxlen=_windows(config.preroll_ms) if config.preroll_ms else 1
        )
        self._speech: list[np.ndarray] = []
        self._probs: list[float] = []  # one per full window in _speech
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
        self._opened: _Opened | None = None  # the segment being spoken, for readers on other threads
        self._max_windows = int(config.max_seconds * SAMPLE_RATE / WINDOW)
        self._gate = 10 ** (config.energy_gate_dbfs / 20)  # RMS, full scale = 1
        self._background = BackgroundGate(
            config.crowd_margin_db, window_seconds=WINDOW / SAMPLE_RATE, voiced=self._off_threshold
        )

    @property
    def in_crowd(self) -> bool:
        """Whether this phone hears a crowd that never stops now (babelfish/background.py). Free to ask."""
        return self._background.crowd

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
        for i in range(n):
            prob = float(probs[i])
            # Outside a crowd, Silero's probability decides; in one, a window under the margin is not voice. The
            # segment keeps Silero's own probabilities (the engine's non-speech rules are measured on them).
            admitted = self._background.admit(float(rms[i]), prob, bool(self._speech))  # also adds it to the history
            heard = prob if admitted else 0.0
            seg = self._window(windows[i], prob, heard, self._background.over_db, float(arrived[i]))
            if seg is not None:
                out.append(seg)
        return out

    @property
    def trailing_silence(self) -> float:
        """Seconds of non-speech at the end of the segment being spoken (0 between segments). Free to ask."""
        return self._silent_run * WINDOW / SAMPLE_RATE if self._speech else 0.0

    def open_segment(self) -> OpenSegment | None:
        """The segment being spoken as far as it has been fed, if any: one concatenation, so call it only when it is
        needed. Any thread may call it, also while another feeds (one phone per voice looks at a phone's open speech
        from a worker thread, babelfish/echoes.py): it reads one reference to the open segment, and of its growing
        lists only the windows that already have their probability."""
        opened = self._opened
        if opened is None:
            return None
        n = min(len(opened.windows), len(opened.probs))  # a window is appended just before its probability
        return OpenSegment(
            opened.serial,
            np.concatenate(opened.windows[:n]),
            np.asarray(opened.probs[:n], np.float32),
            opened.started,
            (n - opened.preroll_windows) * WINDOW / SAMPLE_RATE,
        )

    @property
    def open_serial(self) -> int | None:
        """The serial of the segment being spoken; None between segments. Free to ask."""
        return self._serial if self._speech else None

    def end_utterance(self, now: float) -> Segment | None:
        """The client ended the utterance (push-to-talk release): emit what was said, if anything."""
        if self._speech and len(self._pending):
            self._speech.append(self._pending)
        self._pending = np.zeros(0, dtype=np.float32)
        return self._finish("end_utterance")

    def _window(self, window: np.ndarray, prob: float, heard: float, over: float, now: float) -> Segment | None:
        """`prob`: Silero's probability (kept with the audio); `heard`: the same, or 0 where the crowd gate says no;
        `over`: the window's level over the background (dB)."""
        self._fed += 1
        if not self._speech:
            if heard >= self._cfg.threshold:
                self._began = self._fed - 1 - len(self._preroll)
                self._speech = [*(w for w, _, _ in self._preroll), window]
                self._probs = [*(p for _, p, _ in self._preroll), prob]
                self._peak = max([over, *(o for _, _, o in self._preroll)])
                self._preroll.clear()
                self._voiced, self._silent_run, self._last_voiced_at = 1, 0, now
                self.speech_started = now
                self._serial += 1
                self._opened = _Opened(self._serial, now, len(self._speech) - 1, self._speech, self._probs)
            elif self._cfg.preroll_ms:
                self._preroll.append((window, prob, over))
            return None
        self._speech.append(window)
        self._probs.append(prob)
        self._peak = max(self._peak, over)
        if heard >= self._off_threshold:
            self._voiced += 1
            self._silent_run = 0
            self._last_voiced_at = now
        else:
            self._silent_run += 1
        if self._silent_run >= _windows(self._cfg.silence_ms):
            return self._finish("silence")
        if len(self._speech) >= self._max_windows:
            return self._finish("max_length")
        return None

    def _finish(self, cut: CutReason) -> Segment | None:
        self._opened = None
        speech, probs, voiced, last = self._speech, self._probs, self._voiced, self._last_voiced_at
        self._speech, self._probs, self._voiced, self._silent_run = [], [], 0, 0
        self.speech_started = None
        if cut != "max_length":
            self._vad.reset()  # a fresh state per utterance keeps one noisy stretch from leaking into the next
        if not speech or voiced * WINDOW * 1000 < self._cfg.min_speech_ms * SAMPLE_RATE:
            return None
        if not self.in_crowd or self._background.stands_out(self._peak):
            self._stood_out_until = self._fed
        elif self._began - self._stood_out_until > _windows(FOLLOWS_WITHIN_MS) or not self._background.stands_out(
            self._peak, going_on=True
        ):
            return None  # the crowd's own: nothing in it was as loud as the phone's speaker
        return Segment(
            np.concatenate(speech), last, cut, np.asarray(probs, np.float32), serial=self._serial,
            crowd=self.in_crowd,
        )  # fmt: skip
