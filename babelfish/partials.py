"""Streaming partials: the words of an utterance on screen while it is still being spoken.

While a speaker's segment is open, their `PartialStream` re-decodes the audio so far every `partial_interval_seconds`
(or twice the last decode's cost, whichever is longer) and sends `partial` messages: the speaker's transcript to the
whole room, and a translation to each listener language (MT once per distinct language, never per listener; no TTS).

Flicker: each text is split into a `stable` prefix and a tentative `tail` by local agreement — the words on which two
consecutive decodes agree are committed and never taken back, and the last word of a decode (maybe cut mid-word) is
never committed. A decode may say the committed words a little differently: what follows them is found by word edits
(`Agreement._tail_start`), not by counting. Only the stable prefix of the transcript is translated, and the
translations go through the same agreement, so a listener's text does not flicker either.

Cost: partial decodes are the engine queue's lowest priority (babelfish/inference.py): dropped at once when a final's
call waits, skipped when they waited too long, at most one in flight per speaker, and none while any speaker's audio
trails off into silence (that final is about to be cut and should find the engine free: a running decode cannot be
stopped), nor just after a transcription (its render is about to be asked for). A final always replaces the
partials: its `transcript`/`translation` carry the same utterance id, and `partial_end` closes the utterance's partials
whatever happened to it (a final, noise, a skip). Speech that another phone of the room hears better is not decoded
(babelfish/heard_better.py): at a table every phone hears every speaker, and only the nearest phone's words should
show, under its own person's name.

An engine takes part if it can translate bare text (`PartialEngine`): the cascade engine and the test engine do;
SeamlessM4T does not (a partial would cost a full speech-encoder pass and its decodes on every update).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rapidfuzz.distance import Levenshtein

from babelfish import protocol as proto
from babelfish.cluster import Cluster
from babelfish.echoes import Echoes
from babelfish.engines.base import TextResult, Transcript, Utterance
from babelfish.heard_better import kept_elsewhere
from babelfish.inference import InferenceQueue, Shed
from babelfish.languages import AUTO
from babelfish.metrics import Metrics
from babelfish.rooms import Participant, Rooms
from babelfish.segmenter import OpenSegment, Segment, Segmenter

log = logging.getLogger(__name__)


@runtime_checkable
class PartialEngine(Protocol):
    """What partials need of an engine: its usual transcription, and text-only translation (no audio routes)."""

    def transcribe(self, utterance: Utterance) -> Transcript | None: ...

    def translate_text(self, text: str, source: str, targets: Sequence[str]) -> Sequence[TextResult]:
        """`text` in each target language (TextResult.text None where a pair has no text route)."""
        ...


@dataclass(frozen=True, kw_only=True)
class PartialsConfig:
    interval: float = 0.5  # seconds between decodes of one speaker (at least; see PartialStream)
    first_after: float = 0.35  # speech before the first decode: less rarely holds a whole word
    max_wait: float = 0.3  # a partial decode not started within this is stale: a newer one will be asked for
    quiet_after: float = 0.15  # trailing silence from which no decode starts: the final is near
    cost_factor: float = 2.0  # a speaker's next decode waits at least this many times the last one's cost


ALIGN_WORDS = 6  # the committed words a hypothesis is aligned on (Agreement._tail_start)


def _norm(word: str) -> str:
    return re.sub(r"\W", "", word.lower())


class Agreement:
    """Local agreement between consecutive hypotheses of a growing text: the committed prefix only grows."""

    def __init__(self) -> None:
        self.stable: list[str] = []
        self._previous: list[str] | None = None  # the last hypothesis's words after the committed ones

    def update(self, text: str) -> tuple[str, str, bool]:
        """(stable, tail, whether stable grew) after the hypothesis `text`."""
        words = text.split()
        tail = words[self._tail_start(words) :]
        agree = 0
        if self._previous is not None:
            # Only what follows the committed words is compared: those are fixed whatever a decode says of them.
            limit = min(len(self._previous), len(tail) - 1)  # the newest last word is never committed
            while agree < limit and _norm(self._previous[agree]) == _norm(tail[agree]):
                agree += 1
            self.stable = [*self.stable, *tail[:agree]]
        self._previous = tail[agree:]
        return " ".join(self.stable), " ".join(tail[agree:]), agree > 0

    def _tail_start(self, words: list[str]) -> int:
        """Where what follows the committed words begins in a hypothesis. It may say the committed words with a word
        more, fewer or another ("Thank you a thousand" for the committed "Thanks a thousand", "je demain dois" for
        "Demain dois"): cut by position, the tail repeated a committed word ("Thanks a thousand thousand for yours")
        and agreement could commit the repeat. So the cut is where the committed words' end fits best: fewest word
        edits, at most two words from its place; on a tie, right after the committed last word, else by position. A
        word matched alone would take "de" in "du projet de loi" for the committed "de", and hide "projet"."""
        n = len(self.stable)
        if n == 0:
            return 0
        committed = [_norm(w) for w in self.stable[-ALIGN_WORDS:]]
        said = [_norm(w) for w in words]

        def misfit(j: int) -> int:  # edits from the committed words' end to the hypothesis's words ending at j
            lowest = max(0, j - len(committed) - 2)
            return min(Levenshtein.distance(committed, said[lo:j]) for lo in range(lowest, j + 1))

        def ends_apart(j: int) -> bool:  # on a tie, a cut right after the committed last word itself wins
            return j == 0 or said[j - 1] != committed[-1]

        cuts = range(max(0, n - 2), min(len(words), n + 2) + 1)
        return min(cuts, key=lambda j: (misfit(j), ends_apart(j), abs(j - n)), default=n)


@dataclass
class _Open:
    """One open segment's partial state."""

    serial: int
    started: float
    utterance_id: str | None = None
    language: str | None = None  # pinned after the first decode when the speaker's language is auto
    transcript: Agreement = field(default_factory=Agreement)
    translations: dict[str, Agreement] = field(default_factory=dict)
    sent: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (kind, lang) -> last (stable, tail)
    seq: int = 0


@dataclass(frozen=True)
class _Decoded:
    language: str
    stable: str
    tail: str
    translations: dict[str, tuple[str, str]]  # language -> (stable, tail)
    seconds: float  # audio covered
    cost: float  # engine seconds


class Partials:
    """The server's partials service: shared state (engine, queue, rooms) and one `PartialStream` per speaker."""

    def __init__(
        self,
        engine: PartialEngine,
        queue: InferenceQueue,
        rooms: Rooms,
        metrics: Metrics,
        cluster: Cluster,
        new_id: Callable[[], str],
        config: PartialsConfig,
        label: Callable[[Participant], proto.Speaker] = Participant.speaker,
        echoes: Echoes | None = None,
    ) -> None:
        self.engine, self.queue, self.rooms, self.metrics, self.cluster = engine, queue, rooms, metrics, cluster
        self.new_id, self.config = new_id, config
        self.label = label  # who a partial says is speaking: the client's last recognised voice (speakers service)
        self.echoes = echoes  # one phone per voice: speech another phone hears better is not decoded here
        # Speakers whose open segment trails into silence: their final is about to be cut, and any partial decode
        # started now would hold the engine it needs (a running decode cannot be stopped).
        # Marks older than a second are ignored: a client that stopped sending audio mid-segment blocks nobody.
        self.ending: dict[str, float] = {}

    def final_imminent(self, now: float) -> bool:
        return any(now - since < 1.0 for since in self.ending.values())

    def stream(self, who: Participant, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]) -> PartialStream:
        return PartialStream(self, who, spawn)


class PartialStream:
    """One speaker's partials. Lives on the event loop; its decode runs in the engine queue, one at a time."""

    def __init__(
        self, service: Partials, who: Participant, spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]
    ) -> None:
        self._s, self._who, self._spawn = service, who, spawn
        self._open: _Open | None = None
        self._ids: dict[int, str] = {}  # serial -> utterance id, for segments cut after partials were sent
        self._busy = False  # a decode of this speaker is queued or running
        # An `auto` speaker's language as the last decode found it: later partials skip language id (the final still
        # does its own, so a change of language shows in the final).
        self._language: str | None = None
        self._next_at = 0.0

    # --- from the intake ------------------------------------------------------------------------------------------

    def decode_due(self, now: float) -> bool:
        """Whether a decode may start after the next VAD step: then that step also takes a snapshot of the open
        segment (`snapshot`, in the VAD thread)."""
        return not self._busy and now >= self._next_at and not self._s.final_imminent(now)

    def snapshot(self, segmenter: Segmenter) -> OpenSegment | None:
        """In the VAD thread, right after a step: the open segment to decode, or None. Its audio is one concatenation
        of the whole segment so far (seconds of it), kept off the event loop."""
        cfg = self._s.config
        if segmenter.open_serial is None or segmenter.trailing_silence >= cfg.quiet_after:
            return None  # nothing open, or its final is near (after_batch will not decode)
        seg = segmenter.open_segment()
        return seg if seg is not None and seg.speech_seconds >= cfg.first_after else None

    def after_batch(self, segmenter: Segmenter, cut: Sequence[Segment], opened: OpenSegment | None = None) -> None:
        """After a VAD step (segmenter idle): close what was cut or dropped, then decode `opened` (the step's
        `snapshot`, None when none was taken) if a decode is still due."""
        serial = segmenter.open_serial
        cfg = self._s.config
        if serial is not None and segmenter.trailing_silence >= cfg.quiet_after:
            self._s.ending[self._who.id] = time.monotonic()
        else:
            self._s.ending.pop(self._who.id, None)
        current = self._open
        if current is not None and current.serial != serial:
            self._open = None
            if current.utterance_id is not None:
                if any(seg.serial == current.serial for seg in cut):
                    self._ids[current.serial] = current.utterance_id  # the pipeline will finish it
                else:
                    self._end(current.utterance_id)  # dropped as noise: nothing will follow
        started = segmenter.open_started
        if self._open is not None and self._open.serial == serial and started not in (None, self._open.started):
            # The crowd gate judged the segment again (babelfish/segmenter.py, `_rejudge`): it begins with the
            # speaker's words now, and what was decoded of the crowd before them is no part of them. The same line
            # goes on afresh; a decode of the old audio still running is not shown.
            old = self._open
            self._open = _Open(old.serial, started, old.utterance_id, seq=old.seq)
        if opened is None or opened.serial != serial or not self.decode_due(time.monotonic()):
            return  # a final about to be cut goes first
        if self._open is None:
            self._open = _Open(opened.serial, opened.started)
        self._busy = True
        self._spawn(self._decode(self._open, opened))

    def utterance_id(self, segment: Segment) -> str | None:
        """The id its partials carried (the pipeline gives the final the same), or None when none was sent.

        Asked for by the intake when the segment is processed, or dropped from a full queue: that can happen in the
        VAD step that cut it, before `after_batch` has seen it cut."""
        current = self._open
        if current is not None and current.serial == segment.serial:
            self._open = None  # cut: no partial of it is sent any more
            return current.utterance_id
        return self._ids.pop(segment.serial, None)

    def close(self) -> None:
        """The speaker's intake ends."""
        self._s.ending.pop(self._who.id, None)

    def finished(self, utterance_id: str | None) -> None:
        """The pipeline is done with this utterance (or it was dropped): close its partials on every page."""
        if utterance_id is not None:
            self._end(utterance_id)

    # --- decoding -------------------------------------------------------------------------------------------------

    async def _decode(self, state: _Open, seg: OpenSegment) -> None:
        s = self._s
        began = time.monotonic()
        try:
            room = s.rooms.get(self._who.room_name)
            if room is None:
                return
            language = state.language or self._language or (None if self._who.language == AUTO else self._who.language)
            candidates = tuple(sorted(room.languages() - {AUTO}))
            heard = {p.language for p in room.listeners(self._who)} | {r.language for r in room.remote.values()}
            listeners = sorted(heard)
            if await self._elsewhere(state, seg):
                return
            utterance = Utterance(seg.audio, language, candidates, seg.speech_probs, voice=0)
            try:
                decoded = await s.queue.partial(
                    _run, s.engine, state, utterance, listeners, owner=self._who.id, max_wait=s.config.max_wait
                )
            except Shed:
                return
            if decoded is not None:
                s.metrics.partial_decode(decoded.cost)
            if decoded is None or self._open is not state:  # no words yet, or the segment was cut meanwhile
                return
            state.language = self._language = decoded.language
            self._send(state, decoded)
        except Exception:
            log.exception("partial decode for %s failed", self._who.id)
        finally:
            cost = time.monotonic() - began
            self._busy = False
            self._next_at = began + max(s.config.interval, s.config.cost_factor * cost)

    async def _elsewhere(self, state: _Open, seg: OpenSegment) -> bool:
        """Whether another phone of the room hears this speech better (babelfish/heard_better.py): at a table every
        phone hears every speaker, and one phone per voice will keep the nearest phone's copy. Then this phone shows
        no words of it, which would name its own person as the speaker: what it showed already is closed, and should
        it be judged the better copy again later, its words go on under a new id."""
        echoes = self._s.echoes
        if echoes is None:
            return False
        if await kept_elsewhere(echoes, self._who.room_name, self._who.id, seg) is None:
            return False
        self._s.metrics.partial_shed("elsewhere")
        if state.utterance_id is not None and self._open is state:
            self._end(state.utterance_id)
            # Afresh under a new id should this phone be judged the better one again: the page closed that card.
            state.utterance_id = None
            state.sent.clear()
            state.transcript, state.translations = Agreement(), {}
        return True

    def _send(self, state: _Open, decoded: _Decoded) -> None:
        s = self._s
        room = s.rooms.get(self._who.room_name)
        if room is None:
            return
        if state.utterance_id is None:
            state.utterance_id = s.new_id()
        elapsed = round((time.monotonic() - state.started) * 1000)
        texts = [("transcript", decoded.language, decoded.stable, decoded.tail)]
        texts += [("translation", lang, st, tl) for lang, (st, tl) in decoded.translations.items()]
        for kind, lang, stable, tail in texts:
            if not (stable or tail) or state.sent.get((kind, lang)) == (stable, tail):
                continue
            state.sent[(kind, lang)] = (stable, tail)
            state.seq += 1
            message = proto.Partial(
                utterance_id=state.utterance_id,
                speaker=s.label(self._who),
                client_id=self._who.id,
                kind=kind,  # type: ignore[arg-type]
                language=lang,
                source_language=decoded.language,
                stable=stable,
                tail=tail,
                seq=state.seq,
                audio_seconds=round(decoded.seconds, 2),
                elapsed_ms=elapsed,
            )
            # Other servers: the same text, low priority (a newer partial of this slot replaces one still waiting).
            slot = (state.utterance_id, kind, lang)
            if kind == "transcript":
                room.broadcast(message)
                s.cluster.relay_partial(room, slot, message.encode(), None)
            else:
                audience = [p for p in room.listeners(self._who) if p.language == lang]
                room.broadcast(message, audience)
                s.cluster.relay_partial(room, slot, message.encode(), lang)

    def _end(self, utterance_id: str) -> None:
        room = self._s.rooms.get(self._who.room_name)
        if room is not None:
            message = proto.PartialEnd(utterance_id=utterance_id)
            room.broadcast(message)
            self._s.cluster.relay(room, message.encode(), None)


def _run(engine: PartialEngine, state: _Open, utterance: Utterance, listeners: Sequence[str]) -> _Decoded | None:
    """In an inference worker: decode the audio so far, agree, translate the stable prefix where it grew."""
    began = time.monotonic()
    transcript = engine.transcribe(utterance)
    if transcript is None:
        return None
    stable, tail, grew = state.transcript.update(transcript.text)
    translations: dict[str, tuple[str, str]] = {}
    targets = [t for t in listeners if t not in (transcript.language, AUTO)]
    if grew and targets:
        for result in engine.translate_text(stable, transcript.language, targets):
            if result.text:
                agreement = state.translations.setdefault(result.language, Agreement())
                translations[result.language] = agreement.update(result.text)[:2]
    # Nothing is sent for a language whose stable prefix did not grow: its last partial still holds.
    return _Decoded(transcript.language, stable, tail, translations, utterance.seconds, time.monotonic() - began)


def make_partials(
    enabled: bool,
    interval: float,
    engine: object,
    queue: InferenceQueue,
    rooms: Rooms,
    metrics: Metrics,
    cluster: Cluster,
    new_id: Callable[[], str],
    label: Callable[[Participant], proto.Speaker] = Participant.speaker,
    echoes: Echoes | None = None,
) -> Partials | None:
    """The service, or None (logged) when partials are turned off or the engine cannot do them cheaply."""
    if not enabled:
        log.info("streaming partials: off (--no-partials)")
        return None
    if not isinstance(engine, PartialEngine):
        log.info("streaming partials: off, the %s engine has no cheap text-only path", type(engine).__name__)
        return None
    log.info("streaming partials: on, every %.2f s per speaker at most", interval)
    return Partials(engine, queue, rooms, metrics, cluster, new_id, PartialsConfig(interval=interval), label, echoes)
