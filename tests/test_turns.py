"""Turns (babelfish/turns.py), the revision verdict and the queue's revision policy, with fakes and a real loop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from babelfish.engines.base import Transcript
from babelfish.inference import InferenceQueue, Shed
from babelfish.metrics import Metrics
from babelfish.protocol import Speaker
from babelfish.revisions import verdict, words
from babelfish.transcripts import Entry, RoomTranscript
from babelfish.turns import WINDOW, Piece, Turn, TurnTracker, voiced_span

SPEAKER = Speaker(id="ann", name="Ann")


def piece(uid: str, end: float, seconds: float = 1.0, text: str = "word") -> Piece:
    """A piece of `seconds` whose speech ends at `end` (monotonic) and is voiced throughout."""
    n = int(seconds * 16000) // WINDOW
    return Piece(uid, np.zeros(n * WINDOW, np.float32), np.ones(n, np.float32), text, "en", end, SPEAKER)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_voiced_span_uses_the_speech_probabilities():
    probs = np.array([0.0, 0.1, 0.9, 0.8, 0.9, 0.0, 0.0], np.float32)
    assert voiced_span(probs, 9.0) == pytest.approx(3 * 512 / 16000)
    assert voiced_span(None, 9.0) == 9.0 and voiced_span(np.zeros(3, np.float32), 2.0) == 2.0


def test_pieces_with_short_pauses_make_one_turn_and_a_long_pause_ends_it():
    async def main() -> list[Turn]:
        ended: list[Turn] = []
        tracker = TurnTracker(gap=0.3, max_seconds=28, on_end=ended.append)
        now = time.monotonic()
        tracker.add("ann", piece("a", now - 2.5))
        tracker.add("ann", piece("b", now - 1.25))  # its speech began ~0.25 s after "a" ended: same turn
        assert ended == []
        tracker.add("ann", piece("c", now))  # ~0.26 s pause: same turn
        tracker.add("ann", piece("d", now + 2.0))  # began 1.0 s after "c" ended: a new turn
        assert [t.ids for t in ended] == [["a", "b", "c"]]
        await asyncio.sleep(2.0 + 0.3 + 0.3)  # "d" alone: its turn ends without a revision
        tracker.close()
        return ended

    assert [t.ids for t in run(main())] == [["a", "b", "c"]]


def test_a_turn_ends_after_the_gap_unless_the_speaker_talks_again():
    async def main() -> tuple[list[list[str]], float]:
        ended: list[list[str]] = []
        done = asyncio.Event()

        def on_end(turn: Turn) -> None:
            ended.append(turn.ids)
            done.set()

        tracker = TurnTracker(gap=0.3, max_seconds=28, on_end=on_end)
        talking: dict[str, float | None] = {"since": None}
        tracker.watch("ann", lambda: talking["since"])
        now = time.monotonic()
        tracker.add("ann", piece("a", now - 1.2))
        tracker.add("ann", piece("b", now))
        talking["since"] = now + 0.1  # talks again within the gap: the turn waits for that piece
        await asyncio.sleep(0.8)
        assert ended == []
        tracker.expect("ann", "c")  # cut, being transcribed
        talking["since"] = None
        await asyncio.sleep(0.5)
        assert ended == []
        tracker.add("ann", piece("c", time.monotonic(), seconds=time.monotonic() - (now + 0.1)))
        t0 = time.monotonic()
        await asyncio.wait_for(done.wait(), 3)
        tracker.close()
        return ended, time.monotonic() - t0

    ended, after = run(main())
    assert ended == [["a", "b", "c"]]
    assert 0.3 <= after < 1.0  # the gap (and the VAD's batch slack) after the last speech


def test_speech_that_starts_after_the_gap_does_not_hold_the_turn():
    async def main() -> list[list[str]]:
        ended: list[list[str]] = []
        tracker = TurnTracker(gap=0.3, max_seconds=28, on_end=lambda t: ended.append(t.ids))
        now = time.monotonic()
        tracker.watch("ann", lambda: now + 5.0)
        tracker.add("ann", piece("a", now - 1.1))
        tracker.add("ann", piece("b", now))
        await asyncio.sleep(0.8)
        tracker.close()
        return ended

    assert run(main()) == [["a", "b"]]


def test_someone_else_speaking_ends_the_turn():
    async def main() -> list[list[str]]:
        ended: list[list[str]] = []
        tracker = TurnTracker(gap=1.0, max_seconds=28, on_end=lambda t: ended.append(t.ids))
        now = time.monotonic()
        tracker.add("ann", piece("a", now - 3.0), room="r")
        tracker.add("ann", piece("b", now - 1.7), room="r")
        tracker.add("eve", piece("x", now - 1.1, seconds=0.5), room="elsewhere")  # another room: nothing changes
        assert ended == []
        tracker.add("bob", piece("y", now - 1.1, seconds=0.5), room="r")  # "Yes." after Ann's last words
        assert ended == [["a", "b"]]
        tracker.add("ann", piece("c", now), room="r")  # Ann again: a new turn, and Bob's one-piece turn ends
        tracker.close()
        return ended

    assert run(main()) == [["a", "b"]]


def test_another_voice_on_the_same_phone_starts_its_own_turn():
    """Two people sharing one phone trade quick lines: the voices' pieces are never merged into one revision."""
    dan = Speaker(id="spk-dan", name="Dan")
    eve = Speaker(id="spk-eve", name="Speaker 2 (via Dan)")

    def said(uid: str, end: float, voice: Speaker) -> Piece:
        return Piece(uid, np.zeros(16 * WINDOW, np.float32), np.ones(16, np.float32), uid, "en", end, voice)

    async def main() -> list[list[str]]:
        ended: list[list[str]] = []
        tracker = TurnTracker(gap=1.0, max_seconds=28, on_end=lambda t: ended.append(t.ids))
        now = time.monotonic()
        tracker.add("phone", said("a", now - 3.0, dan), room="r")
        tracker.add("phone", said("b", now - 2.2, dan), room="r")  # Dan's turn goes on
        tracker.add("phone", said("c", now - 1.4, eve), room="r")  # 0.3 s later, another voice: Dan's turn ends
        tracker.add("phone", said("d", now - 0.6, eve), room="r")
        tracker.leave("phone")
        return ended

    assert run(main()) == [["a", "b"], ["c", "d"]]


def test_a_turn_never_outgrows_the_decoder_window_and_leaving_ends_it():
    async def main() -> list[list[str]]:
        ended: list[list[str]] = []
        tracker = TurnTracker(gap=1.0, max_seconds=10, on_end=lambda t: ended.append(t.ids))
        now = time.monotonic()
        for i, uid in enumerate("abcd"):
            tracker.add("ann", piece(uid, now + 4.1 * i, seconds=4.0))
        tracker.leave("ann")
        tracker.leave("ann")  # twice: nothing more
        return ended

    assert run(main()) == [["a", "b"], ["c", "d"]]


def test_one_piece_turns_end_too_when_asked_and_talking_sees_speech_on_its_way():
    async def main() -> tuple[list[list[str]], list[list[str]]]:
        ended: list[list[str]] = []
        tracker = TurnTracker(gap=0.3, max_seconds=28, on_end=lambda t: ended.append(t.ids), min_pieces=1)
        default: list[list[str]] = []
        multi_only = TurnTracker(gap=0.3, max_seconds=28, on_end=lambda t: default.append(t.ids))
        since: dict[str, float | None] = {"bob": None}
        tracker.watch("bob", lambda: since["bob"])
        assert not tracker.talking()
        now = time.monotonic()
        for t in (tracker, multi_only):
            t.add("ann", piece("a", now - 2.0), room="r")
            t.add("ann", piece("b", now), room="r")  # 1 s after "a" ended: a turn of its own
        assert ended == [["a"]] and default == []
        tracker.expect("ann", "c")  # cut, being transcribed
        assert tracker.talking()
        tracker.settled("ann", "c")
        assert not tracker.talking()
        since["bob"] = time.monotonic()  # Bob started speaking
        assert tracker.talking()
        since["bob"] = None
        await asyncio.sleep(0.3 + 0.15 + 0.3)  # "b" alone: its turn ends after the gap, revised only when asked
        tracker.close()
        multi_only.close()
        return ended, default

    ended, default = run(main())
    assert ended == [["a"], ["b"]] and default == []


def _gated_job(order: list[str]) -> tuple[asyncio.Event, Callable[..., str]]:
    """A job for the queue's worker thread that records its name in `order`; `wait=True` holds the worker until the
    returned event is set (called on the event loop)."""
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    def job(name: str, wait: bool = False) -> str:
        if wait:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
        order.append(name)
        return name

    return gate, job


def test_a_one_piece_revision_takes_only_idle_time():
    """`idle_only` (a one-piece turn's revision) is skipped while anything runs or waits or a render is owed, and runs
    on an idle engine; it still comes after fresh speech asked for meanwhile."""

    async def main() -> list[str]:
        metrics = Metrics()
        order: list[str] = []
        with ThreadPoolExecutor(1) as pool:
            queue = InferenceQueue(pool, 1, 3, 60.0, metrics, revision_max_wait=60.0)
            gate, job = _gated_job(order)
            running = asyncio.ensure_future(queue.transcribe(job, "first", True, owner="x"))
            await asyncio.sleep(0.05)
            with pytest.raises(Shed) as info:
                await queue.revise(job, "while-running", owner="ann", idle_only=True)
            assert info.value.reason == "busy"
            multi = asyncio.ensure_future(queue.revise(job, "multi", owner="ann"))  # not idle-only: waits its turn
            await asyncio.sleep(0.01)
            gate.set()
            await asyncio.gather(running, multi)

            owed = queue.owe_render()
            await queue.transcribe(job, "final", owner="bob", owed=owed)  # its render is owed from now on
            with pytest.raises(Shed):
                await queue.revise(job, "while-owed", owner="ann", idle_only=True)
            owed.release()
            await queue.idle()
            assert await queue.revise(job, "idle", owner="ann", idle_only=True) == "idle"
        return order

    assert run(main()) == ["first", "multi", "final", "idle"]


def test_verdict_sends_only_a_meaningful_change():
    def t(text: str) -> Transcript:
        return Transcript(text, "en")

    assert words("Don't stop, Mr. Smith!") == ["don't", "stop", "mr", "smith"]
    assert verdict("the cat. Sat on the mat", t("The cat sat on the mat.")) == "unchanged"
    assert verdict("the cats at on the mat", t("The cat sat on the mat.")) == "sent"
    assert verdict("one two three four five six", t("one two")) == "rejected"  # lost most words
    assert verdict("one two", None) == "rejected"
    # a phrase the pieces have once, said twice by the re-decode: a decoder's repeat, not the speaker's
    assert verdict("Good morning.", t("Good morning. Good morning.")) == "rejected"
    assert verdict("Good morning. Good morning.", t("Good morning.")) == "sent"  # a first pass's double, said once
    assert verdict("He was not. And he'll", t("He was not an ill man, not an ill man.")) == "rejected"
    assert verdict("No, no. No!", t("No, no, no.")) == "unchanged"
    assert verdict("Yes. Yes, I", t("Yes, yes, I do.")) == "sent"  # the repeat was in the pieces already
    # Far more words than the pieces: the previous turn's words said again (a wrong context), or made up.
    assert verdict("Where shall we meet?", t("Fail again. Thank you very much. Where shall we meet?")) == "rejected"
    assert verdict("Where shall we meet", t("Where shall we meet tomorrow at five?")) == "sent"  # 4 → 7: words found
    # ... unless the pieces are a word or two and the voice could hold the new words: a short turn's first pass
    # misheard as one word (6.6 words a voiced second)
    assert verdict("Willaga ?", t("Où est la gare ?"), voiced_seconds=0.6) == "sent"
    assert verdict("Willaga ?", t("Où est la gare ?")) == "rejected"  # how long the voice was is unknown
    assert verdict("Willaga ?", t("Où est la gare ?"), voiced_seconds=0.4) == "rejected"
    assert verdict("Will aga ?", t("Où est la gare, ma chérie ?"), voiced_seconds=1.0) == "sent"  # two words: a few
    assert verdict("Will a ga ?", t("Où est la gare, ma chérie, Jean ?"), voiced_seconds=1.0) == "rejected"  # three
    # The waiver's price: a made-up phrase on a one-word turn passes the reviser; the engine's held check (a word or two
    # held is always compared) is what keeps it out.
    assert verdict("Okay.", t("Thank you for watching."), voiced_seconds=0.5) == "sent"
    echoed = t("Fail again. Thank you very much. Where shall we meet?")
    assert verdict("Where shall we meet?", echoed, voiced_seconds=3.0) == "rejected"  # four words are not a few
    # the engine kept the words listeners hold: its own were not clearly better
    assert verdict("non lo so", Transcript("non lo so", "it", held=True)) == "held"
    # Fewer words: a word or two split apart by a short turn's first pass, which the engine weighed the revision
    # against and found clearly worse, gives way; unweighed (a reading that stops where the held one goes on is not
    # weighed: "Good" for "Good morning."), or three words and more, it stands.
    assert verdict("den Au.", Transcript("Genau.", "de", outweighed=True), voiced_seconds=0.5) == "sent"
    assert verdict("den Au.", t("Genau."), voiced_seconds=0.5) == "rejected"
    assert verdict("Good morning.", t("Good"), voiced_seconds=0.5) == "rejected"
    assert verdict("it's up tly", Transcript("Exactly.", "en", outweighed=True), voiced_seconds=0.5) == "rejected"
    # ... and only a one-piece turn's (an engine's word, not the reviser's, that it weighed one): never two pieces
    assert verdict("Yes. No.", Transcript("Yes.", "en", outweighed=True)) == "rejected"
    assert verdict("den Au.", Transcript("…", "de", outweighed=True), voiced_seconds=0.5) == "rejected"  # no words


def test_a_rate_counts_voiced_windows_as_the_engine_does():
    from babelfish.engines.cascade import nonspeech
    from babelfish.turns import RATE_VOICED

    assert RATE_VOICED == nonspeech.VOICED  # the measured words-a-second figures used the engine's threshold


def test_a_turn_knows_how_long_its_voice_was():
    probs = np.zeros(10, np.float32)
    probs[2:7] = 0.9
    probs[7] = 0.4  # speech to the segmenter's off-threshold, not counted in a rate's voiced time
    a = Piece("a", np.zeros(10 * WINDOW, np.float32), probs, "x", "en", 1.0, SPEAKER)
    b = Piece("b", np.zeros(10 * WINDOW, np.float32), np.full(10, 0.5, np.float32), "y", "en", 2.0, SPEAKER)
    assert Turn("s", pieces=[a, b]).voiced_seconds() == pytest.approx(15 * WINDOW / 16000)
    bare = Piece("c", np.zeros(10 * WINDOW, np.float32), None, "z", "en", 3.0, SPEAKER)
    assert Turn("s", pieces=[a, bare]).voiced_seconds() is None  # a piece without probabilities


def test_room_transcript_merges_the_revised_entries():
    tr = RoomTranscript("r", 10)
    for i, uid in enumerate(["a", "b", "x", "c"]):
        tr.add(Entry(uid, "ann" if uid != "x" else "bob", "Ann", i, i + 0.5, "en", uid, {"de": f"[de] {uid}"}))
    entry = tr.revise(["a", "b", "c"], "A B C", "en", {"fr": "[fr] A B C"})
    assert entry is not None
    assert [e.utterance_id for e in tr.entries()] == ["a", "x"]
    assert (entry.text, entry.start, entry.end) == ("A B C", 0, 3.5)
    assert entry.translations == {"de": "[de] a [de] b [de] c", "fr": "[fr] A B C"}
    assert entry.as_json(0)["replaces"] == ["a", "b", "c"]
    assert "replaces" not in tr.entries()[1].as_json(0)
    assert tr.revise(["gone", "a"], "z", "en", {}) is None


def test_a_relayed_revision_whose_first_piece_never_came_replaces_the_others():
    tr = RoomTranscript("r", 10)
    tr.add(Entry("x", "bob", "Bob", 0.5, 0.9, "en", "x"))
    tr.add_relayed(Entry("b", "ann", "Ann", 2.0, 2.5, "en", "b"))  # "a" was missed
    tr.add_relayed(Entry("a", "ann", "Ann", 1.0, 2.5, "en", "A B", {"de": "[de] A B"}, ["a", "b"]))
    assert [(e.utterance_id, e.text) for e in tr.entries()] == [("x", "x"), ("a", "A B")]
    assert tr.entries()[1].replaces == ["a", "b"]


def test_revisions_run_last_and_are_shed_first():
    async def main() -> list[str]:
        metrics = Metrics()
        order: list[str] = []
        with ThreadPoolExecutor(1) as pool:
            queue = InferenceQueue(pool, 1, 3, 60.0, metrics, revision_max_wait=60.0)
            gate, job = _gated_job(order)
            busy = asyncio.ensure_future(queue.transcribe(job, "first", True, owner="x"))
            await asyncio.sleep(0.05)
            revision = asyncio.ensure_future(queue.revise(job, "revision", owner="ann"))
            fresh = asyncio.ensure_future(queue.transcribe(job, "fresh", owner="bob"))
            await asyncio.sleep(0.05)
            gate.set()
            await asyncio.gather(busy, revision, fresh)
            assert order == ["first", "fresh", "revision"]  # fresh speech wins

            # busy: with two transcriptions waiting, a revision is not even queued
            gate.clear()
            busy = asyncio.ensure_future(queue.transcribe(job, "first", True, owner="x"))
            await asyncio.sleep(0.05)
            waiting_revision = asyncio.ensure_future(queue.revise(job, "r1", owner="ann"))
            backlog = [asyncio.ensure_future(queue.transcribe(job, f"t{i}", owner=f"s{i}")) for i in range(2)]
            await asyncio.sleep(0.01)
            with pytest.raises(Shed) as info:
                await queue.revise(job, "r2", owner="ann")
            assert info.value.reason == "busy"
            # a shed transcription (queue full: 3 waiting) takes every waiting revision with it
            backlog += [asyncio.ensure_future(queue.transcribe(job, f"u{i}", owner="s9")) for i in range(2)]
            await asyncio.sleep(0.01)
            with pytest.raises(Shed) as info:
                await waiting_revision
            assert info.value.reason == "busy"
            gate.set()
            await asyncio.gather(busy, *backlog, return_exceptions=True)
        return order

    order = run(main())
    assert "r1" not in order and "r2" not in order


def test_revisions_are_relayed_to_the_cluster_like_results():
    """Listeners on other servers get the revised transcript (all) and the translation for their language."""
    from babelfish.engines.fake import FakeEngine
    from babelfish.pipeline import Pipeline
    from babelfish.rooms import RemoteMember
    from tests.pipeline_harness import PipelineHarness

    relayed: list[tuple[str, str | None]] = []
    translated = asyncio.Event()

    class Recorder:
        def relay(self, room, text, language, pcm=None) -> None:
            relayed.append((text, language))
            if '"of":"translation"' in text:
                translated.set()

    async def main() -> None:
        h = PipelineHarness(FakeEngine())
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, Recorder(), turns=(0.3, 28.0))  # type: ignore[arg-type]
        ann = h.join("Ann", "en")
        h.rooms.get("r").remote["far"] = RemoteMember("far", "Fay", "fr", False, "server-2")
        await h.say(ann, 1.0)
        await h.say(ann, 1.2)
        await asyncio.wait_for(translated.wait(), 5)
        await h.pipeline.close()
        h.close()

    run(main())
    revisions = [(json.loads(text), language) for text, language in relayed if '"revision"' in text]
    assert [(m["of"], language) for m, language in revisions] == [("transcript", None), ("translation", "fr")]
    assert revisions[1][0]["text"].startswith("[fr] ")


def test_in_a_crowd_a_piece_begins_where_the_gate_heard_its_speaker():
    """Silero takes the crowd before the speaker for voice too; the crowd gate's probabilities place the speech."""
    probs = np.full(20, 0.9, np.float32)  # all of it voice to Silero
    heard = np.zeros(20, np.float32)
    heard[8:14] = 0.9  # the speaker
    piece = Piece("a", np.zeros(20 * WINDOW, np.float32), probs, "x", "en", 5.0, SPEAKER, heard_probs=heard)
    assert piece.speech_start == pytest.approx(5.0 - 6 * WINDOW / 16000)
    assert replace(piece, heard_probs=None).speech_start == pytest.approx(5.0 - 20 * WINDOW / 16000)
