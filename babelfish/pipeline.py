"""From a segmented utterance to results in every listener's language.

The engine runs in the dedicated inference executor, through the `InferenceQueue` all speakers share (priority,
bound and shedding policy: babelfish/inference.py). Its `render` generator is consumed inside that worker thread;
each result is handed back to the event loop as it appears and delivered at once. The engine is asked once per
distinct target language, never once per listener.

Text first: `process` renders the texts only (transcript, then translations), and hands the speech of those
translations to a speech job of the pipeline's own (`speak`), for the languages someone listens to: `process` is
over when the texts are out, so the speaker's next utterance, and everyone else's, never waits for this one's
speech. A speech job the queue skips tells the listeners who wanted to hear it (`speech_skipped`); `/metrics` counts
every speech job's outcome. Speech jobs finish even if the speaker leaves; a drain waits for them (within its limit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from babelfish import protocol as proto
from babelfish.cluster import Cluster, LocalOnly
from babelfish.engines.base import Engine, RenderResult, SpeechResult, TextResult, Transcript, Utterance
from babelfish.inference import InferenceQueue, Owed, Shed
from babelfish.languages import AUTO, untranslatable
from babelfish.metrics import Metrics
from babelfish.recent import RecentSpeech, voice_of
from babelfish.revisions import Reviser
from babelfish.rooms import Participant, Rooms
from babelfish.segmenter import Segment
from babelfish.speakers.service import Speakers
from babelfish.tasks import TaskSet
from babelfish.transcripts import Entry, TranscriptArchive
from babelfish.turns import Piece, TurnTracker, voiced_span

log = logging.getLogger(__name__)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a task's outcome as seen: an abandoned embedding's error or cancellation is not worth a warning."""
    if not task.cancelled():
        task.exception()


def _resolve(outcome: asyncio.Future[str] | None, result: str) -> None:
    if outcome is not None and not outcome.done():
        outcome.set_result(result)


def _ms(since: float) -> int:
    return round((time.monotonic() - since) * 1000)


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        queue: InferenceQueue,
        rooms: Rooms,
        metrics: Metrics,
        cluster: Cluster | None = None,
        speakers: Speakers | None = None,
        archive: TranscriptArchive | None = None,  # transcripts on disk too (retention on)
        turns: tuple[float, float] | None = None,  # revisions on: (turn gap, turn max seconds), babelfish/turns.py
        single_pieces: bool = False,  # one-piece turns are revised too, in idle time (babelfish/revisions.py)
        context: bool = True,  # revisions decode a turn after what its voice said before (babelfish/recent.py)
    ) -> None:
        self._engine = engine
        self._archive = archive
        # Listeners on other servers count as listeners: their languages are rendered here and relayed.
        self._cluster = cluster or LocalOnly()
        self._speakers = speakers or Speakers(None, None, queue.executor, 0.0)
        self._queue = queue
        self._rooms = rooms
        self._metrics = metrics
        self._ids = itertools.count(1)
        # Ids stay unique across restarts (and servers): clients keep cards by id through a reconnect.
        self._boot = secrets.token_hex(3)
        # What each speaker said last: a turn's revision decodes it as their words' continuation (babelfish/recent.py).
        self.recent = RecentSpeech()
        # Turns cut at breath pauses are re-decoded whole when they end (babelfish/revisions.py).
        self._reviser = Reviser(
            engine, queue, rooms, metrics, self._cluster, archive, self.finished, lambda: self.turns.talking(),
            self.recent,
        )  # fmt: skip
        self._unfinished: dict[str, asyncio.Event] = {}  # utterance id -> set once its process() is over
        self._speaking = TaskSet()  # speech jobs (text first: the module docstring)
        # Languages the engine has a voice for: no speech job (and no "too busy" notice) for one it could never speak.
        self._speakable = frozenset(s.code for s in engine.languages() if s.speech_out)
        self._contexts = turns is not None and context
        gap, longest = turns or (0.0, 0.0)
        on_end = self._reviser.turn_ended if turns else lambda turn: None
        self.turns = TurnTracker(gap, longest, on_end, 1 if single_pieces else 2)

    def leave(self, who: Participant) -> None:
        """`who` is gone (everything they said was processed): their turn ends (and is revised) now; once their room
        is gone too, what its voices said is forgotten. A phone's own voices are not forgotten as it leaves: its last
        revisions, still to run, read the text listeners hold from them (babelfish/recent.py `refresh`)."""
        self.turns.leave(who.id)
        if self._rooms.get(who.room_name) is None:
            self.recent.forget_room(who.room_name)

    def stop_revising(self) -> None:
        """The server drains: no more revisions (babelfish/revisions.py)."""
        self._reviser.stop()

    async def finished(self, ids: Sequence[str]) -> None:
        """Returns once each of `ids` is done with: rendered, recorded and archived, or given up."""
        for uid in ids:
            done = self._unfinished.get(uid)
            if done is not None:
                await done.wait()

    async def close(self) -> None:
        """Shutting down: open turns are not revised, revisions under way and speech not yet made are given up."""
        self.turns.close()
        await self._reviser.close()
        await self._speaking.cancel_all()

    async def spoken(self, limit: float) -> int:
        """Wait up to `limit` seconds for every speech job (those started meanwhile too); how many are left."""
        return await self._speaking.wait(limit)

    def new_id(self) -> str:
        return f"u{self._boot}-{next(self._ids)}"

    def first_pass(
        self, who: Participant, audio: np.ndarray, speech_probs: np.ndarray, read_until: int | None = None
    ) -> Utterance:
        """What `who`'s utterance asks of the engine to read it (an early read asks the same, babelfish/early.py):
        their language, or the room's as hints."""
        room = self._rooms.get(who.room_name)
        candidates = tuple(sorted(room.languages() - {AUTO})) if room else ()
        language = None if who.language == AUTO else who.language
        return Utterance(audio, language, candidates, speech_probs, read_until=read_until)

    async def process(
        self,
        who: Participant,
        segment: Segment,
        utterance_id: str | None = None,
        outcome: asyncio.Future[str] | None = None,
    ) -> None:
        """`outcome` (one phone per voice, babelfish/echoes.py) is resolved "ok" once the transcript went out, else
        "shed", "error" or "none" (not speech, speaker gone, cancelled): other phones' copies wait on it."""
        utterance_id = utterance_id or self.new_id()
        self.turns.expect(who.id, utterance_id)  # the speaker's open turn waits for this one
        owed = self._queue.owe_render()  # no revision nor partial between its transcription and its render
        done = self._unfinished[utterance_id] = asyncio.Event()
        try:
            await self._process(who, segment, utterance_id, owed, outcome)
        except Shed as exc:
            _resolve(outcome, "shed")
            self._metrics.utterance_done("shed")
            ago = time.monotonic() - segment.speech_end
            log.info(
                "utterance %s from %s skipped (%s; speech ended %.1f s ago)", utterance_id, who.id, exc.reason, ago
            )
            who.send(proto.Notice.server_busy())
        except Exception:
            # One bad utterance must not end the session or touch other clients.
            log.exception("utterance %s from %s failed", utterance_id, who.id)
            _resolve(outcome, "error")
            self._metrics.utterance_done("error")
            who.send(
                proto.Error(
                    code="internal_error", message="this utterance could not be processed", utterance_id=utterance_id
                )
            )
        finally:
            _resolve(outcome, "none")
            owed.release()  # given up (no speech, speaker left, error): owed no more
            self.turns.settled(who.id, utterance_id)
            done.set()  # its turn's revision may be delivered now
            if self._unfinished.get(utterance_id) is done:
                del self._unfinished[utterance_id]

    async def _process(
        self,
        who: Participant,
        segment: Segment,
        utterance_id: str,
        owed: Owed,
        outcome: asyncio.Future[str] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        if segment.crowd:
            self._metrics.utterance_in_crowd()
        room = self._rooms.get(who.room_name)
        asked = dataclasses.replace(
            self.first_pass(who, segment.audio, segment.speech_probs, segment.read_until),
            voice=room.voice_of(who.id) if room else 0,
        )
        # The speaker's voice is embedded in its own worker while ASR runs, so it costs the text path nothing but
        # the wait for whichever finishes last (ASR, by far).
        embedding = asyncio.ensure_future(self._speakers.embed(segment.audio))

        # Careful (the cascade: a beam search) only if the engine is not behind as it starts: a backlog cannot
        # afford the extra engine time (babelfish/inference.py). The same Utterance object is rendered later (an engine
        # may cache its encoding per utterance).
        def transcribe(behind: bool) -> tuple[Utterance, Transcript | None, float, float]:  # in the worker, timed there
            began = time.monotonic()
            told = dataclasses.replace(asked, careful=not behind)
            return told, self._engine.transcribe(told), began, time.monotonic()

        try:
            utterance, transcript, began, ended = await self._queue.transcribe(
                transcribe, owner=who.id, owed=owed, tell_behind=True
            )
            self._metrics.stage("endpointing", segment.cut_at - segment.speech_end)
            self._metrics.stage("queue", began - segment.cut_at)  # the shared engine queue, then a free worker
            self._metrics.stage("asr", ended - began)
            room = self._rooms.get(who.room_name)
            if transcript is None or room is None:
                self._metrics.utterance_done("no_speech" if transcript is None else "speaker_left")
                return
            heard = time.monotonic()
            speaker = await self._speakers.identify(who, await embedding)
            self._metrics.speaker_wait(time.monotonic() - heard)
        finally:
            embedding.cancel()  # no-op when done; otherwise nobody wants it any more
            embedding.add_done_callback(_retrieve)
        room = self._rooms.get(who.room_name)
        if room is None:
            self._metrics.utterance_done("speaker_left")
            return
        if transcript.repaired:
            self._metrics.decoder_loop()
        self._metrics.first_pass("beam" if transcript.beam else "greedy" if utterance.careful else "greedy_busy")
        if transcript.early:
            self._metrics.early_read("used")
        latency = _ms(segment.speech_end)
        self._metrics.observe("transcript", latency / 1000)
        end = time.time() - (time.monotonic() - segment.speech_end)  # wall clock, for the room's transcript
        start = end - utterance.seconds
        entry = room.transcript.add(
            Entry(utterance_id, speaker.id, speaker.name, start, end, transcript.language, transcript.text)
        )
        message = proto.Transcript(
            utterance_id=utterance_id,
            speaker=speaker,
            client_id=who.id,
            text=transcript.text,
            language=transcript.language,
            audio_seconds=round(utterance.seconds, 2),
            latency_ms=latency,
        )
        room.broadcast(message)
        self._cluster.relay(room, message.encode(), None)
        _resolve(outcome, "ok")
        context = None
        if self._contexts:  # what this voice said before it, for its turn's revision (babelfish/recent.py)
            whose, said, end = voice_of(who, speaker.id), transcript.language, segment.speech_end
            start = end - voiced_span(segment.timing_probs, utterance.seconds)
            context = self.recent.context(whose, said, end, before=start)
            self.recent.add(whose, utterance_id, segment.audio, transcript.text, said, end, start)
        piece = Piece(utterance_id, segment.audio, segment.speech_probs, transcript.text, transcript.language,
                      segment.speech_end, speaker, context, heard_probs=segment.heard_probs)  # fmt: skip
        self.turns.add(who.id, piece, who, who.room_name)
        targets = room.target_languages(who, transcript.language)
        owed.release()  # the render is asked for now, in this same step (nothing awaited in between)
        if targets:
            deliver = _Delivery(
                self._rooms,
                self._metrics,
                self._cluster,
                who,
                transcript,
                utterance_id,
                speaker,
                segment.speech_end,
                entry,
            )

            texts: list[TextResult] = []  # filled in the worker; read once the render is over

            # Runs in the worker thread (the generator is lazy). It finishes even if the speaker leaves meanwhile:
            # the room should still get what was said ("bye" before closing the app).
            # Each result's own compute time is the time the generator took to yield it (mt in /metrics).
            def consume() -> None:
                began = time.monotonic()
                for result in self._engine.render(utterance, transcript, targets, False):
                    ready = time.monotonic()
                    if isinstance(result, TextResult):
                        texts.append(result)
                    loop.call_soon_threadsafe(deliver, result, ready - began, ready)
                    began = time.monotonic()

            await self._queue.render(consume, owner=who.id)
            # Speech only where someone listening takes audio in that language (looked up now: who is still here).
            listened = [
                t for t in texts if t.text and t.language in self._speakable and room.wants_speech(who, [t.language])
            ]
            if listened:
                self._speaking.spawn(self._speak(who, utterance, listened, deliver))
        self._cluster.record(room, entry)  # every server's copy of the room transcript, translations included
        if self._archive is not None:
            await asyncio.to_thread(self._archive.append, room.transcript, entry)
        self._metrics.utterance_done("ok")

    async def _speak(self, who: Participant, utterance: Utterance, texts: list[TextResult], deliver: _Delivery) -> None:
        """One utterance's speech, for the languages in `texts`: a speech job (babelfish/inference.py)."""
        loop = asyncio.get_running_loop()
        asked = time.monotonic()
        started: list[float] = []
        heard: set[str] = set()  # the languages the engine gave speech for

        def consume() -> None:  # in the speech lane's thread; each result's own compute time is tts in /metrics
            began = time.monotonic()
            started.append(began)
            for result in self._engine.speak(utterance, texts):
                ready = time.monotonic()
                heard.add(result.language)
                loop.call_soon_threadsafe(deliver, result, ready - began, ready)
                began = time.monotonic()

        try:
            await self._queue.speak(consume, owner=who.id)
        except Shed as exc:
            self._metrics.speech(f"shed_{exc.reason}")
            deliver.speech_skipped([t.language for t in texts], "server_busy")
            log.info("speech of %s skipped (%s)", deliver.utterance_id, exc.reason)
            return
        except asyncio.CancelledError:
            self._metrics.speech("gone")  # the server stops
            raise
        except Exception:  # the texts are out; one failing voice must not touch anything else
            log.exception("speech of %s failed", deliver.utterance_id)  # what came before it was delivered
        finally:
            if started:
                self._metrics.speech_wait(started[0] - asked)
        # Engines swallow a failing or hung voice (each voice on its own): a language asked for and not given failed.
        missing = [t.language for t in texts if t.language not in heard]
        if missing:
            log.warning("speech of %s: no voice output for %s", deliver.utterance_id, ", ".join(missing))
            deliver.speech_skipped(missing, "voice_failed")
        self._metrics.speech("error" if missing else "spoken")


class _Delivery:
    """Delivers each render result, on the event loop, to the listeners of its language."""

    def __init__(
        self,
        rooms: Rooms,
        metrics: Metrics,
        cluster: Cluster,
        who: Participant,
        transcript: Transcript,
        utterance_id: str,
        speaker: proto.Speaker,
        speech_end: float,
        entry: Entry,
    ) -> None:
        self._rooms, self._metrics, self._cluster, self._who = rooms, metrics, cluster, who
        self._entry = entry
        self._transcript, self._speech_end = transcript, speech_end
        self.utterance_id, self._speaker = utterance_id, speaker

    def __call__(self, result: RenderResult, compute_seconds: float = 0.0, ready_at: float | None = None) -> None:
        if not (isinstance(result, TextResult) and result.text is None):  # a notice costs no translation
            self._metrics.stage("mt" if isinstance(result, TextResult) else "tts", compute_seconds)
        if isinstance(result, TextResult) and result.text is not None:
            self._entry.translations[result.language] = result.text  # the room's transcript, listened to or not
        room = self._rooms.get(self._who.room_name)
        if room is None:
            return
        # Looked up now, not when the utterance started: someone who just joined gets it too.
        audience = [p for p in room.listeners(self._who) if p.language == result.language]
        if not audience and not any(r.language == result.language for r in room.remote.values()):
            return
        latency = _ms(self._speech_end)
        if isinstance(result, TextResult):
            message: proto.ServerMessage
            if result.text is None:
                message = proto.Notice.untranslatable(
                    self.utterance_id,
                    self._speaker,
                    result.language,
                    result.notice or untranslatable(self._transcript.language, result.language),
                )
            else:
                self._metrics.observe("translation", latency / 1000)
                message = proto.Translation(
                    utterance_id=self.utterance_id,
                    speaker=self._speaker,
                    text=result.text,
                    language=result.language,
                    source_language=self._transcript.language,
                    via=result.via,
                    latency_ms=latency,
                )
            room.broadcast(message, audience)
            self._cluster.relay(room, message.encode(), result.language)
        elif isinstance(result, SpeechResult):
            self._metrics.observe("audio", latency / 1000)
            header = proto.AudioHeader(
                utterance_id=self.utterance_id,
                speaker=self._speaker,
                language=result.language,
                sample_rate=result.sample_rate,
                bytes=len(result.pcm),
                latency_ms=latency,
            ).encode()  # once for the whole audience
            for p in audience:
                if p.wants_audio:
                    p.outbox.put((header, result.pcm))
            self._cluster.relay(room, header, result.language, result.pcm)
        if ready_at is not None:
            self._metrics.stage("delivery", time.monotonic() - ready_at)

    def speech_skipped(self, languages: list[str], reason: proto.SpeechSkip) -> None:
        """The speech of `languages` was skipped or failed (`reason` says which): the listeners who wanted to hear
        it are told."""
        room = self._rooms.get(self._who.room_name)
        if room is None:
            return
        for language in languages:
            message = proto.Notice.speech_skipped(self.utterance_id, self._speaker, language, reason)
            audience = [p for p in room.listeners(self._who) if p.language == language and p.wants_audio]
            room.broadcast(message, audience)
            self._cluster.relay(room, message.encode(), language, audio_only=True)
