"""Revisions: a finished turn re-decoded whole, and the corrected text sent in place of its pieces' texts.

Each piece of a turn (babelfish/turns.py) was transcribed alone, fast, without the context of the others: Whisper
guesses the words at every cut (and decodes greedily when the engine is behind). Once the turn ends, its joined
audio is transcribed again in one window, the careful way (`Utterance.revision`: the cascade decodes it with a beam
search) — on the shared engine queue at the lowest priority, shed first under load (babelfish/inference.py) — and,
when the words differ from the pieces' words joined, everyone in the room gets a `revision` of the transcript, then
the listeners of each language a `revision` of the translation (the engine translates it once per distinct language).
The room transcript keeps the revised text (downloads show it), and other servers of a cluster get the same messages
through `Cluster.relay`.

A turn of one piece has no cut to repair, only the quick decode, whose words for a short turn hang on where the speech
sits in Whisper's window: it is revised too (`revision_single_pieces`; the cascade decodes a short one at three
positions and keeps the best-scored words, babelfish/engines/cascade/asr.py), but only with time nobody else needs: it
waits (up to `revision_max_wait_seconds`, else "late") for a moment when the engine is idle and nobody is speaking,
since a revision that runs holds a worker and fresh speech would wait for it or share the CPU with it. Its words and
the first pass's are often near-equal readings of the same audio, where a change is as likely wrong as right and
listeners have read the first already: the engine keeps the words listeners hold (`Utterance.held`, outcome "held")
unless the model finds its own clearly likelier (the cascade: HELD_MARGIN).

A turn is decoded after what the same voice said before it through the same phone (`Utterance.context`,
babelfish/recent.py: the text listeners hold for it, so a sent revision's text is what the next turn continues).

A revision is delivered only once every piece of its turn is done with (rendered, recorded for the cluster, archived):
otherwise a late piece's translation would land in the merged entry, other servers would get the piece after its
revision, and the archive would hold them out of order. While the server drains, no revision starts.

Text only: the listeners already heard the pieces spoken a moment ago; speaking the turn again would repeat it, late,
over whatever is being said now. A re-decode that loses many of the pieces' words (a decoder that skipped a stretch
of a long window; unless the pieces are a word or two that the engine weighed the revision against), has far more
than them (the previous turn's words said again, or words made up; unless the pieces are a word or two and the voice
could hold the new words), or repeats a phrase the pieces have once, is not sent: the pieces stand.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence

from babelfish import protocol as proto
from babelfish.cluster import Cluster
from babelfish.engines.base import Context, Engine, TextResult, Transcript, Utterance
from babelfish.inference import InferenceQueue, Shed
from babelfish.languages import AUTO
from babelfish.metrics import Metrics
from babelfish.recent import RecentSpeech, voice_of
from babelfish.repeats import doubled, once, words
from babelfish.rooms import Participant, Room, Rooms
from babelfish.tasks import TaskSet
from babelfish.transcripts import TranscriptArchive
from babelfish.turns import Turn

log = logging.getLogger(__name__)

KEEP_WORDS = 0.6  # a re-decode with fewer words than this share of the pieces' words is not trusted
# Nor one with far more: the previous turn's words said again (a revision decoded in a context whose text was wrong:
# babelfish/recent.py), or words made up. Except where the pieces are a word or two and the voice could hold the
# revision's words: a short turn's first pass can be one wrong word for four said ("Willaga ?" for "Où est la gare ?",
# 6.6 words a voiced second, the fastest of bench_fidelity's one-piece turns; docs/benchmarks.md, "Held words").
MORE_WORDS, MORE_WORDS_SLACK = 1.5, 2
FEW_WORDS = 2
MAX_WORDS_PER_VOICED_SECOND = 8.0
PIECES_WAIT = 10.0  # seconds a computed revision waits for its pieces to be done with; later, it is not sent
IDLE_POLL = 0.1  # seconds between looks for an idle moment (one-piece turns); the VAD reports speech every ~0.1 s


def verdict(pieces: str, revised: Transcript | None, voiced_seconds: float | None = None) -> str:
    """ "sent" when `revised` should replace the pieces' text; else why not ("unchanged", "held": the engine kept the
    pieces' words, "rejected"). `voiced_seconds`: how much of a one-piece turn the segmenter heard as speech
    (`Turn.voiced_seconds`; None: unknown, or a turn of several pieces, which neither waiver below serves)."""
    if revised is None or not revised.text.strip():
        return "rejected"
    if revised.held:
        return "held"
    before, after = words(pieces), words(revised.text)
    if after == before:
        return "unchanged"
    few = voiced_seconds is not None and len(before) <= FEW_WORDS  # a one-piece turn of a word or two: both waivers
    # Words lost are counted against the pieces with a doubled phrase kept once: a revision that says once what a first
    # pass said twice ("Good morning. Good morning.") is what it is for.
    # Except a word or two the engine weighed the revision against and found clearly worse: a short turn's first pass
    # can split a word ("den Au." for "Genau.", "It's aptly." for "Exactly."; docs/benchmarks.md).
    if len(after) < KEEP_WORDS * len(once(before)) and not (few and revised.outweighed and after):
        return "rejected"
    voice_holds = voiced_seconds is not None and len(after) <= MAX_WORDS_PER_VOICED_SECOND * voiced_seconds
    if len(after) > MORE_WORDS * len(before) + MORE_WORDS_SLACK and not (few and voice_holds):
        return "rejected"
    if doubled(after) > doubled(before):
        return "rejected"  # a beam can say a short phrase twice ("Good morning. Good morning."): the pieces stand
    return "sent"


class Reviser:
    def __init__(
        self,
        engine: Engine,
        queue: InferenceQueue,
        rooms: Rooms,
        metrics: Metrics,
        cluster: Cluster,
        archive: TranscriptArchive | None = None,
        pieces_done: Callable[[Sequence[str]], Awaitable[None]] | None = None,
        talking: Callable[[], bool] = lambda: False,
        recent: RecentSpeech | None = None,
    ) -> None:
        self._engine, self._queue, self._rooms = engine, queue, rooms
        self._metrics, self._cluster, self._archive = metrics, cluster, archive
        self._pieces_done = pieces_done  # waits until those utterances are done with (Pipeline.finished)
        self._talking = talking  # someone is speaking, or speech is on its way to the engine (TurnTracker.talking)
        self._tasks = TaskSet()
        self._stopped = False
        self._recent = recent  # told the revised texts (the pipeline's: babelfish/recent.py)

    def stop(self) -> None:
        """The server drains: no revision starts from now on, and the waiting ones are skipped (what was said is
        finished first; the listeners are about to be disconnected)."""
        self._stopped = True
        self._queue.drop_revisions()

    def turn_ended(self, turn: Turn) -> None:
        """From the turn tracker, on the event loop: revise `turn` in a task of ours (a one-piece turn only when the
        engine would decode it differently: a longer one would come back as its first pass, holding a worker)."""
        if len(turn.pieces) == 1 and turn.seconds > self._engine.info.single_revision_seconds:
            return
        self._tasks.spawn(self._revise(turn))

    async def close(self) -> None:
        await self._tasks.cancel_all()

    async def _revise(self, turn: Turn) -> None:
        who = turn.owner
        assert isinstance(who, Participant)
        try:
            outcome = await self._run(who, turn)
        except Shed as exc:
            outcome = f"shed_{exc.reason}"
            log.info("revision of %s shed (%s)", turn.ids, exc.reason)
        except Exception:
            log.exception("revision of %s failed", turn.ids)  # the pieces' texts stand
            outcome = "error"
        self._metrics.revision(outcome)

    async def _run(self, who: Participant, turn: Turn) -> str:
        if len(turn.pieces) == 1 and not await self._idle_moment():
            if self._stopped:
                return "gone"
            raise Shed("late")  # no idle time for a turn without cuts (module docstring)
        room = self._rooms.get(who.room_name)
        if room is None or self._stopped:
            return "gone"
        language = None if who.language == AUTO else who.language
        if language is None and len({p.language for p in turn.pieces}) == 1:
            language = turn.pieces[0].language  # settled by the pieces' language id, with the room's hints
        candidates = tuple(sorted(room.languages() - {AUTO}))
        idle_only = len(turn.pieces) == 1
        wanted = threading.Event()  # a one-piece revision's extra tries stop once someone needs the engine
        utterance = Utterance(
            turn.audio(), language, candidates, turn.speech_probs(), voice=room.voice_of(who.id), revision=True,
            halt=wanted.is_set if idle_only else None, context=self._context(turn, who),
            held=turn.text if idle_only else None,
        )  # fmt: skip
        # Every listener language now; the revised transcript's own language is dropped in the worker.
        listening = room.target_languages(who, "")
        pieces_text, voiced = turn.text, turn.voiced_seconds() if idle_only else None

        def work() -> tuple[Transcript | None, str, list[TextResult], float]:  # in the worker
            began = time.monotonic()
            revised = self._engine.transcribe(utterance)
            decision = verdict(pieces_text, revised, voiced)
            results: list[TextResult] = []
            if decision == "sent" and revised is not None:
                targets = [lang for lang in listening if lang != revised.language]
                rendered = self._engine.render(utterance, revised, targets, False)
                results = [r for r in rendered if isinstance(r, TextResult) and r.text is not None]
            return revised, decision, results, time.monotonic() - began

        # The job goes to a worker as it is queued (an idle-only revision is refused unless a worker is free), so the
        # watcher never counts it among the waiting ones.
        watch = asyncio.create_task(self._watch(wanted)) if idle_only else None
        try:
            revised, decision, results, compute = await self._queue.revise(work, owner=who.id, idle_only=idle_only)
        finally:
            wanted.set()  # cancelled, shed or done: a worker still on it stops its extra tries
            if watch is not None:
                watch.cancel()
        self._metrics.revision_seconds("compute", compute)
        log.debug("revision of %s: %s (%r -> %r)", turn.ids, decision, pieces_text, revised.text if revised else None)
        if decision != "sent" or revised is None:
            return decision
        if self._pieces_done is not None:
            try:
                async with asyncio.timeout(PIECES_WAIT):
                    await self._pieces_done(turn.ids)  # a piece's render may still run (another worker, or load)
            except TimeoutError:
                log.info("revision of %s not sent: its pieces were not done within %g s", turn.ids, PIECES_WAIT)
                return "shed_late"
        room = self._rooms.get(who.room_name)
        if room is None:
            return "gone"
        self._deliver(room, who, turn, revised, results)
        if self._recent is not None:
            voice = voice_of(who, turn.pieces[0].speaker.id)
            self._recent.revise(voice, turn.ids, utterance.audio, revised.text, revised.language)
        return "sent"

    def _context(self, turn: Turn, who: Participant) -> Context | None:
        """What the turn's voice said before it, with the text listeners hold now (a revision sent since)."""
        context = turn.pieces[0].context
        if context is None or self._recent is None:
            return context
        return self._recent.refresh(voice_of(who, turn.pieces[0].speaker.id), context)

    async def _watch(self, wanted: threading.Event) -> None:
        """On the event loop while a one-piece revision runs: `wanted` once someone speaks or a job waits (read here,
        where that state lives; the worker only reads the event). A failure is logged here, at once: nobody awaits this
        task (it is cancelled), so it would otherwise surface only as "never retrieved" at garbage collection."""
        try:
            while True:
                if self._stopped or self._talking() or self._queue.waiting:
                    wanted.set()
                    return
                await asyncio.sleep(IDLE_POLL)
        except Exception:
            log.exception("watching a running one-piece revision failed: its extra tries are not stopped early")

    async def _idle_moment(self) -> bool:
        """Waits, at most the queue's revision wait, until the engine is quiet and nobody speaks; False if never."""
        deadline = time.monotonic() + self._queue.revision_max_wait
        while self._talking() or not self._queue.quiet:
            if self._stopped or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(IDLE_POLL)
        return not self._stopped

    def _deliver(
        self, room: Room, who: Participant, turn: Turn, revised: Transcript, results: Sequence[TextResult]
    ) -> None:
        latency = round((time.monotonic() - turn.speech_end) * 1000)
        first = turn.pieces[0]
        message = proto.Revision(
            of="transcript",
            utterance_id=first.utterance_id,
            replaces=turn.ids,
            speaker=first.speaker,
            client_id=who.id,
            text=revised.text,
            language=revised.language,
            latency_ms=latency,
        )
        room.broadcast(message)
        self._cluster.relay(room, message.encode(), None)
        translations: dict[str, str] = {}
        for result in results:
            assert result.text is not None
            translations[result.language] = result.text
            translated = message.model_copy(
                update={
                    "of": "translation",
                    "text": result.text,
                    "language": result.language,
                    "source_language": revised.language,
                    "via": result.via,
                }
            )
            audience = [p for p in room.listeners(who) if p.language == result.language]
            room.broadcast(translated, audience)
            self._cluster.relay(room, translated.encode(), result.language)
        self._metrics.revision_seconds("latency", latency / 1000)
        entry = room.transcript.revise(turn.ids, revised.text, revised.language, translations)
        if entry is not None:
            self._cluster.record(room, entry)  # the other servers' copies of the transcript are revised too
        if entry is not None and self._archive is not None:
            self._tasks.spawn(asyncio.to_thread(self._archive.append, room.transcript, entry))
