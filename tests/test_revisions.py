"""Revisions through the real app (real VAD, a fake engine): a turn cut at a breath pause is re-decoded whole and
its corrected text replaces the pieces' texts, for everyone, in every language, and in the room transcript."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.base import Transcript
from babelfish.engines.fake import FakeEngine
from tests.audio import frames, silence
from tests.pipeline_harness import PipelineHarness
from tests.wsclient import BoundedClient


@pytest.fixture
def app_client(tmp_path) -> Iterator[BoundedClient]:
    settings = Settings(data_dir=tmp_path, engine="test", turn_gap_seconds=0.8)
    with BoundedClient(create_app(settings, engine=FakeEngine())) as c:
        yield c


def join(ws, name: str, language: str) -> dict:
    ws.send_text(json.dumps({"type": "join", "name": name, "language": language, "room": "hall", "audio": False}))
    msg = ws.receive_json()
    assert msg["type"] == "welcome", msg
    return msg


def say(ws, pieces: list[bytes], pause: float = 0.5) -> None:
    """Pieces with a breath `pause` between them (longer than the VAD's 300 ms: it cuts there), then silence."""
    pcm = silence(0.3)
    for i, p in enumerate(pieces):
        pcm += (silence(pause) if i else b"") + p
    for frame in frames(pcm + silence(0.7)):
        ws.send_bytes(frame)


def until(ws, kind: str, of: str | None = None, seconds: float = 20.0) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = ws.receive_json()  # bounded (tests/wsclient.py)
        got.append(msg)
        if msg["type"] == kind and (of is None or msg.get("of") == of):
            return got
    raise AssertionError(f"no {kind} within {seconds} s: {[m['type'] for m in got]}")


def nothing_more(ws, wait: float) -> list[dict]:
    """What arrives within `wait` seconds (a ping's pong closes it): everything queued before the ping."""
    time.sleep(wait)
    ws.send_text('{"type": "ping"}')
    got = until(ws, "pong")
    return got[:-1]


def _revising_single_pieces(engine: FakeEngine) -> tuple[PipelineHarness, asyncio.Queue[str]]:
    """A harness whose pipeline revises one-piece turns too (turn gap 0.3 s), and the queue of revision outcomes."""
    from babelfish.pipeline import Pipeline

    h = PipelineHarness(engine)
    h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, turns=(0.3, 28.0), single_pieces=True)
    return h, _revision_outcomes(h)


def _revision_outcomes(h: PipelineHarness) -> asyncio.Queue[str]:
    """Each revision outcome the pipeline counts in /metrics, also put on a queue for the test to await."""
    outcomes: asyncio.Queue[str] = asyncio.Queue()
    count = h.metrics.revision

    def counted(outcome: str) -> None:
        count(outcome)
        outcomes.put_nowait(outcome)

    h.metrics.revision = counted  # type: ignore[method-assign]
    return outcomes


def test_a_turn_cut_at_a_pause_is_revised_once_for_everyone(app_client, speech_pcm):
    half = len(speech_pcm) // 2 // 2 * 2
    with (
        app_client.websocket_connect("/ws/client") as ann,
        app_client.websocket_connect("/ws/client") as de1,
        app_client.websocket_connect("/ws/client") as de2,
        app_client.websocket_connect("/ws/client") as fr,
    ):
        w = join(ann, "Ann", "en")
        for ws, name, lang in ((de1, "Dan", "de"), (de2, "Dora", "de"), (fr, "Fay", "fr")):
            join(ws, name, lang)
        say(ann, [speech_pcm[:half], speech_pcm[half:]])
        heard = until(ann, "revision", "transcript")
        ids = [m["utterance_id"] for m in heard if m["type"] == "transcript"]
        revision = heard[-1]
        assert len(ids) >= 2 and revision["replaces"] == ids and revision["utterance_id"] == ids[0]
        assert revision["speaker"]["name"] == "Ann" and revision["client_id"] == w["client_id"]
        assert revision["language"] == "en" and revision["latency_ms"] >= 0
        n_words = len(revision["text"].split())
        assert n_words >= len(" ".join(m["text"] for m in heard if m["type"] == "transcript").split()) - 5 * len(ids)
        for ws, lang in ((de1, "de"), (de2, "de"), (fr, "fr")):
            got = until(ws, "revision", "translation")
            mine = [m for m in got if m["type"] == "revision"]
            assert [m["of"] for m in mine] == ["transcript", "translation"]
            assert mine[0] == revision
            assert mine[1]["replaces"] == ids and mine[1]["language"] == lang and mine[1]["source_language"] == "en"
            assert mine[1]["text"] == f"[{lang}] {revision['text']}"
            assert not [m for m in nothing_more(ws, 0.3) if m["type"] == "revision"]  # once per language
        assert not [m for m in nothing_more(ann, 0.0) if m["type"] == "revision"]  # no translation for the speaker

        r = app_client.get("/rooms/hall/transcript", params={"format": "json"},
                           headers={"Authorization": f"Bearer {w['transcript_key']}"})  # fmt: skip
        assert r.status_code == 200, r.text
        utterances = r.json()["utterances"]
        assert [u["id"] for u in utterances] == [ids[0]]
        assert utterances[0]["text"] == revision["text"] and utterances[0]["replaces"] == ids
        assert utterances[0]["translations"]["de"] == f"[de] {revision['text']}"
        snapshot = app_client.get("/metrics", params={"format": "json"}).json()
        assert snapshot["revisions"]["sent"] == 1
        assert 'babelfish_revisions_total{outcome="sent"} 1.0' in app_client.get("/metrics?format=prometheus").text


def test_a_long_pause_splits_the_turn_and_unchanged_words_send_no_revision(app_client, speech_pcm):
    """Two one-piece turns, each its own turn and re-decoded to the same words: nobody gets a revision."""
    with app_client.websocket_connect("/ws/client") as ann, app_client.websocket_connect("/ws/client") as dan:
        join(ann, "Ann", "en")
        join(dan, "Dan", "de")
        say(ann, [speech_pcm])
        until(dan, "translation")
        time.sleep(1.2)  # past the turn gap: the turn is over
        say(ann, [speech_pcm])
        until(dan, "translation")
        got = nothing_more(dan, 1.5)
        assert not [m for m in got if m["type"] == "revision"], got
        assert app_client.get("/metrics", params={"format": "json"}).json()["revisions"]["sent"] == 0


class Careful(FakeEngine):
    """Its revision adds a word: a re-decode whose words changed."""

    def transcribe(self, utterance):
        got = super().transcribe(utterance)
        return Transcript(got.text + " indeed", got.language) if got and utterance.revision else got


def test_revision_single_pieces_revises_a_one_piece_turn_whose_words_change(tmp_path, speech_pcm):
    settings = Settings(data_dir=tmp_path, engine="test", turn_gap_seconds=0.8, revision_single_pieces=True)
    with (
        BoundedClient(create_app(settings, engine=Careful())) as c,
        c.websocket_connect("/ws/client") as ann,
        c.websocket_connect("/ws/client") as dan,
    ):
        join(ann, "Ann", "en")
        join(dan, "Dan", "de")
        say(ann, [speech_pcm])
        got = until(dan, "revision", "translation")
        (transcript,) = [m for m in got if m["type"] == "transcript"]
        revised = [m for m in got if m["type"] == "revision"]
        assert [m["of"] for m in revised] == ["transcript", "translation"]
        assert revised[0]["replaces"] == [transcript["utterance_id"]]
        assert revised[0]["text"] == transcript["text"] + " indeed"
        assert revised[1]["text"] == f"[de] {transcript['text']} indeed"


def test_a_one_piece_turn_the_engine_would_only_repeat_is_not_revised(tmp_path, speech_pcm):
    """An engine whose revision of a turn this long would decode it as its first pass did (a cascade turn over 4 s,
    any seamless turn) is not asked: nothing to gain, and it would hold a worker."""
    engine = Careful()
    engine.info = replace(engine.info, single_revision_seconds=len(speech_pcm) / 2 / 16000 / 2)  # under the turn's
    settings = Settings(data_dir=tmp_path, engine="test", turn_gap_seconds=0.8, revision_single_pieces=True)
    with (
        BoundedClient(create_app(settings, engine=engine)) as c,
        c.websocket_connect("/ws/client") as ann,
        c.websocket_connect("/ws/client") as dan,
    ):
        join(ann, "Ann", "en")
        join(dan, "Dan", "de")
        say(ann, [speech_pcm])
        until(dan, "translation")
        got = nothing_more(dan, 2.0)  # past the turn gap and an idle moment
        assert not [m for m in got if m["type"] == "revision"], got
        revisions = c.get("/metrics", params={"format": "json"}).json()["revisions"]
        assert sum(v for k, v in revisions.items() if isinstance(v, int)) == 0, revisions


def test_revisions_off(tmp_path, speech_pcm):
    settings = Settings(data_dir=tmp_path, engine="test", turn_gap_seconds=0.8, revisions=False)
    with BoundedClient(create_app(settings, engine=FakeEngine())) as c, c.websocket_connect("/ws/client") as ann:
        join(ann, "Ann", "en")
        half = len(speech_pcm) // 2 // 2 * 2
        say(ann, [speech_pcm[:half], speech_pcm[half:]])
        until(ann, "transcript")
        got = nothing_more(ann, 2.0)
        assert [m["type"] for m in got if m["type"] != "transcript"] == []


def test_revisions_are_shed_when_the_engine_is_behind():
    """Ann's two-piece turn ends while four others' utterances queue for a slow engine: her revision is skipped at
    once (busy), and every fresh utterance is still transcribed. Through the real pipeline and engine queue (the
    harness: the app's test client would pace four speakers' audio too loosely to be sure of the backlog)."""
    import asyncio

    from babelfish.pipeline import Pipeline
    from tests.pipeline_harness import PipelineHarness

    async def main() -> tuple[dict[str, int], int]:
        h = PipelineHarness(FakeEngine(delay_seconds=0.3))
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, turns=(0.3, 28.0))
        ann, *others = [h.join(name, "en") for name in ("Ann", "Bob", "Cy", "Di", "Eve")]
        await h.say(ann, 1.0)
        await h.say(ann, 1.2)  # her turn ends 0.3 s (+ the VAD's 0.15 s slack) after this piece's speech end
        backlog = [asyncio.ensure_future(h.say(p, 1.0 + i / 10)) for i, p in enumerate(others)]  # 1.2 s of engine
        await asyncio.wait_for(asyncio.gather(*backlog), 20)
        await h.pipeline.close()
        h.close()
        return h.metrics.revisions, h.metrics.utterances

    revisions, done = asyncio.run(main())
    assert revisions["shed_busy"] == 1 and revisions["sent"] == 0, revisions
    assert done == 6  # every fresh utterance, none shed


def test_revision_message_shape():
    from babelfish import protocol as proto

    m = proto.Revision(of="transcript", utterance_id="u1", replaces=["u1", "u2"], speaker=proto.Speaker(id="a",
                       name="A"), client_id="c", text="t", language="en", latency_ms=5)  # fmt: skip
    assert set(json.loads(m.encode())) == {"type", "of", "utterance_id", "replaces", "speaker", "client_id", "text",
                                           "language", "latency_ms"}  # fmt: skip


def test_a_final_is_rendered_before_a_waiting_revision():
    """A revision waiting for the engine does not slip in between a fresh utterance's transcription and its render
    (the pipeline asks for the render only once the speaker's label is known)."""
    import asyncio

    from tests.pipeline_harness import PipelineHarness

    calls: list[str] = []

    class Recording(FakeEngine):
        def transcribe(self, utterance):
            calls.append("transcribe")
            return super().transcribe(utterance)

        def render(self, utterance, transcript, targets, speech=True):
            calls.append("render")
            yield from super().render(utterance, transcript, targets, speech)

    async def main() -> None:
        h = PipelineHarness(Recording(delay_seconds=0.2))
        bob = h.join("Bob", "en")
        h.join("Dan", "de", audio=False)
        saying = asyncio.ensure_future(h.say(bob))
        await asyncio.sleep(0.05)  # Bob's transcription runs
        revision = asyncio.ensure_future(h.queue.revise(calls.append, "revision", owner="ann"))
        await asyncio.wait_for(asyncio.gather(saying, revision), 10)
        await h.pipeline.close()
        h.close()

    asyncio.run(main())
    assert calls == ["transcribe", "render", "revision"]


def test_a_revision_waits_for_its_last_piece_and_none_starts_while_draining():
    """With two engine workers the turn's re-decode can finish while its last piece is still being translated: the
    revision is delivered (and recorded for the cluster) only after that piece, so the piece's late translation
    cannot land in the revised entry and other servers never get a piece after its revision. Then: a server that
    drains starts no revision."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from babelfish.inference import InferenceQueue
    from babelfish.pipeline import Pipeline
    from tests.pipeline_harness import PipelineHarness

    class SlowPieces(FakeEngine):
        def render(self, utterance, transcript, targets, speech=True):
            if 1.1 < utterance.seconds < 2.0:  # the turn's last piece (1.2 s), not the first nor the whole turn
                time.sleep(0.8)
            yield from super().render(utterance, transcript, targets, speech)

    recorded: list[tuple[str, list[str]]] = []

    class Recorder:
        def relay(self, room, text, language, pcm=None) -> None:
            pass

        def record(self, room, entry) -> None:
            recorded.append((entry.utterance_id, list(entry.replaces)))

    async def main() -> tuple[list[dict], list, dict[str, int]]:
        h = PipelineHarness(SlowPieces())
        h.executor.shutdown()
        h.executor = ThreadPoolExecutor(2, thread_name_prefix="harness-inference")
        h.queue = InferenceQueue(h.executor, 2, 64, 60.0, h.metrics)
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, Recorder(), turns=(0.3, 28.0))  # type: ignore[arg-type]
        outcomes = _revision_outcomes(h)
        ann, dan = h.join("Ann", "en"), h.join("Dan", "de", audio=False)
        await asyncio.wait_for(h.say(ann, 1.0), 10)
        await asyncio.wait_for(h.say(ann, 1.2), 10)  # the turn ends 0.45 s after: while this piece is rendered
        assert await asyncio.wait_for(outcomes.get(), 10) == "sent"
        got = await h.received(dan)
        entries = list(h.rooms.get("r").transcript.entries())

        h.pipeline.stop_revising()  # the server drains
        await asyncio.wait_for(h.say(ann, 1.0), 10)
        await asyncio.wait_for(h.say(ann, 1.2), 10)
        assert await asyncio.wait_for(outcomes.get(), 10) == "gone"
        await h.pipeline.close()
        h.close()
        return got, entries, h.metrics.revisions

    got, entries, outcomes = asyncio.run(main())
    kinds = [(m["type"], m.get("of")) for m in got]
    assert kinds == [("transcript", None), ("translation", None)] * 2 + [
        ("revision", "transcript"), ("revision", "translation")]  # fmt: skip
    first, second = got[0]["utterance_id"], got[2]["utterance_id"]
    assert recorded[:3] == [(first, []), (second, []), (first, [first, second])]
    (entry,) = entries
    assert entry.replaces == [first, second]
    assert entry.translations["de"] == got[-1]["text"]
    assert outcomes["sent"] == 1 and outcomes["gone"] == 1


def test_a_one_piece_turn_is_revised_only_when_its_words_change_and_only_in_idle_time():
    """With `revision_single_pieces`, a turn of one utterance is decoded again (`Utterance.revision`) once it ends: a
    revision goes out only when the words changed, and it waits for a moment when nobody speaks (then "late")."""
    import asyncio

    from babelfish.engines.base import Transcript
    from babelfish.inference import InferenceQueue
    from babelfish.pipeline import Pipeline
    from tests.pipeline_harness import PipelineHarness

    class Careful(FakeEngine):
        """The careful decode hears one more word in utterances under 1.5 s."""

        def transcribe(self, utterance):
            got = super().transcribe(utterance)
            if got is not None and utterance.revision and utterance.seconds < 1.5:
                return Transcript(got.text + " indeed", got.language)
            return got

    async def main() -> tuple[list[dict], dict[str, int]]:
        h = PipelineHarness(Careful())
        h.queue = InferenceQueue(h.executor, 1, 64, 60.0, h.metrics, revision_max_wait=1.5)
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, turns=(0.3, 28.0), single_pieces=True)
        outcomes = _revision_outcomes(h)
        ann, dan = h.join("Ann", "en"), h.join("Dan", "de", audio=False)
        await asyncio.wait_for(h.say(ann, 1.0), 10)
        assert await asyncio.wait_for(outcomes.get(), 10) == "sent"
        await asyncio.wait_for(h.say(ann, 2.0), 10)
        assert await asyncio.wait_for(outcomes.get(), 10) == "unchanged"
        got = await h.received(dan)

        bob: dict[str, float | None] = {"since": time.monotonic()}  # Bob is speaking when Ann's turn ends
        h.pipeline.turns.watch("bob-id", lambda: bob["since"])
        await asyncio.wait_for(h.say(ann, 1.0), 10)
        await asyncio.sleep(0.3 + 0.15 + 0.4)  # her turn is over; her revision waits for Bob
        assert outcomes.empty()
        bob["since"] = None
        assert await asyncio.wait_for(outcomes.get(), 10) == "sent"

        bob["since"] = time.monotonic()  # and now he does not stop
        await asyncio.wait_for(h.say(ann, 1.0), 10)
        assert await asyncio.wait_for(outcomes.get(), 10) == "shed_late"
        await h.pipeline.close()
        h.close()
        return got, h.metrics.revisions

    got, revisions = asyncio.run(main())
    kinds = [(m["type"], m.get("of")) for m in got]
    assert kinds == [("transcript", None), ("translation", None), ("revision", "transcript"),
                     ("revision", "translation"), ("transcript", None), ("translation", None)]  # fmt: skip
    first = got[0]["utterance_id"]
    assert got[2]["replaces"] == [first] and got[2]["text"].endswith(" indeed") and got[2]["utterance_id"] == first
    assert got[3]["text"] == f"[de] {got[2]['text']}"
    assert revisions["sent"] == 2 and revisions["unchanged"] == 1 and revisions["shed_late"] == 1, revisions


def test_a_one_piece_revision_waits_for_the_engine_to_be_idle():
    """Ann's one-piece turn ends while Bob's utterance waits for a slow engine: her revision starts only once his
    utterance is done with, never before it."""
    import asyncio

    from babelfish.pipeline import Pipeline
    from tests.pipeline_harness import PipelineHarness

    calls: list[bool] = []

    class Recording(FakeEngine):
        def transcribe(self, utterance):
            calls.append(utterance.revision)
            return super().transcribe(utterance)

    async def main() -> dict[str, int]:
        h = PipelineHarness(Recording(delay_seconds=0.5))
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, turns=(0.1, 28.0), single_pieces=True)
        outcomes = _revision_outcomes(h)
        ann, bob = h.join("Ann", "en"), h.join("Bob", "en")
        saying = asyncio.ensure_future(h.say(ann, 1.0))  # her turn is over as soon as her piece is transcribed
        await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(saying, h.say(bob, 1.0)), 10)  # Bob's waits meanwhile
        for _ in range(2):  # Ann's and Bob's one-piece turns
            assert await asyncio.wait_for(outcomes.get(), 10) == "unchanged"
        await h.pipeline.close()
        h.close()
        return h.metrics.revisions

    revisions = asyncio.run(main())
    assert revisions["unchanged"] == 2 and revisions["sent"] == 0, revisions
    assert calls == [False, False, True, True]  # both utterances first, then the revisions


def test_a_one_piece_revision_is_given_the_held_words_and_an_engine_may_keep_them():
    """A one-piece turn's revision carries the text listeners hold (`Utterance.held`); an engine that keeps it (its
    own reading was not clearly better) sends nothing and counts "held". A turn of two pieces carries none: its pieces
    were never read whole."""
    import asyncio

    from babelfish.engines.base import Transcript

    held: list[str | None] = []

    class Keeping(FakeEngine):
        def transcribe(self, utterance):
            got = super().transcribe(utterance)
            if not utterance.revision:
                return got
            held.append(utterance.held)
            return Transcript(utterance.held or "", "en", held=True) if utterance.held else got

    async def main() -> tuple[dict[str, int], list[dict]]:
        h, outcomes = _revising_single_pieces(Keeping())
        ann, dan = h.join("Ann", "en"), h.join("Dan", "de", audio=False)
        await asyncio.wait_for(h.say(ann, 1.0), 10)
        assert await asyncio.wait_for(outcomes.get(), 10) == "held"
        await asyncio.wait_for(h.say(ann, 1.0), 10)
        await asyncio.wait_for(h.say(ann, 1.2), 10)
        assert await asyncio.wait_for(outcomes.get(), 10) == "sent"  # the two pieces' words differ from the whole's
        got = await h.received(dan)
        await h.pipeline.close()
        h.close()
        return h.metrics.revisions, got

    revisions, got = asyncio.run(main())
    assert {k: n for k, n in revisions.items() if n} == {"held": 1, "sent": 1}, revisions
    assert len(held) == 2 and held[1] is None, held
    assert held[0] is not None and held[0].startswith("utterance 1.00s")  # the first pass's text of her one piece
    assert sum(m["type"] == "revision" for m in got) == 2  # the two-piece turn's: transcript and translation


def test_a_misheard_word_gives_way_to_the_words_its_voice_could_hold():
    """A one-piece turn heard as one wrong word ("Willaga?") is revised to the six said: far more words than the piece,
    sent because the turn's voiced time could hold them (the reviser gets it from the segmenter's probabilities); a
    turn of two pieces gets no such waiver."""
    import asyncio

    import numpy as np

    from babelfish.engines.base import Transcript
    from babelfish.segmenter import Segment

    class Misheard(FakeEngine):
        def transcribe(self, utterance):
            return Transcript("Où est la gare, ma chérie ?" if utterance.revision else "Willaga?", "en")

    def voiced(windows: int) -> Segment:
        audio = np.full(windows * 512, 0.1, np.float32)
        return Segment(audio, time.monotonic(), "silence", np.full(windows, 0.9, np.float32))

    async def main() -> list[str]:
        h, outcomes = _revising_single_pieces(Misheard())
        ann = h.join("Ann", "en")
        got = []
        await asyncio.wait_for(h.pipeline.process(ann, voiced(32)), 10)  # one piece, 1 s voiced
        got.append(await asyncio.wait_for(outcomes.get(), 10))
        await asyncio.wait_for(h.pipeline.process(ann, voiced(16)), 10)  # two pieces, one word each
        await asyncio.wait_for(h.pipeline.process(ann, voiced(16)), 10)
        got.append(await asyncio.wait_for(outcomes.get(), 10))
        await h.pipeline.close()
        h.close()
        return got

    assert asyncio.run(main()) == ["sent", "rejected"]


def _tries_until_halted(utterance, seen, running, meanwhile=lambda: None) -> None:  # type: ignore[no-untyped-def]
    """In a one-piece revision's worker, as an engine making extra tries: note whether `halt` said stop at once, tell
    the test it runs (`running`), let the test act (`meanwhile`: before anything could stop it), then try until told to
    stop (5 s at most) and note whether it was."""
    assert utterance.halt is not None
    seen["at start"] = utterance.halt()
    running.set()
    meanwhile()
    deadline = time.monotonic() + 5.0
    while not utterance.halt() and time.monotonic() < deadline:
        time.sleep(0.02)
    seen["halted"] = utterance.halt()


def test_a_one_piece_revision_is_told_to_stop_its_extra_tries_when_someone_needs_the_engine():
    """A one-piece revision runs only in idle time, and cannot be stopped once running: its `halt` turns true as soon
    as someone else's speech reaches the engine, so an engine's extra tries (the cascade's further leads) stop."""
    import threading

    from babelfish.pipeline import Pipeline
    from tests.pipeline_harness import PipelineHarness

    seen: dict[str, bool] = {}
    revising = threading.Event()

    class Watching(FakeEngine):
        def transcribe(self, utterance):
            if not utterance.revision or "halted" in seen:  # Ann's revision is watched (Bob's comes after it)
                return super().transcribe(utterance)
            _tries_until_halted(utterance, seen, revising)
            return super().transcribe(utterance)

    async def main() -> None:
        h = PipelineHarness(Watching(delay_seconds=0.1))
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, turns=(0.1, 28.0), single_pieces=True)
        outcomes = _revision_outcomes(h)
        ann, bob = h.join("Ann", "en"), h.join("Bob", "en")
        await asyncio.wait_for(h.say(ann, 1.0), 10)
        assert await asyncio.to_thread(revising.wait, 10)
        began = time.monotonic()
        await asyncio.wait_for(h.say(bob, 1.0), 10)  # waits for the worker the revision holds
        seen["bob in time"] = time.monotonic() - began < 3.0
        assert await asyncio.wait_for(outcomes.get(), 10) == "unchanged"
        await h.pipeline.close()
        h.close()

    asyncio.run(main())
    assert seen == {"at start": False, "halted": True, "bob in time": True}, seen


def test_a_one_piece_revision_is_told_to_stop_its_extra_tries_when_a_job_waits():
    """The other trigger of `halt`: nobody is talking, but a job (here a transcription queued straight on the engine
    queue, which the turn tracker knows nothing of) waits for the worker the revision holds."""
    import threading

    from babelfish.pipeline import Pipeline

    seen: dict[str, bool] = {}
    revising, queued = threading.Event(), threading.Event()

    class Watching(FakeEngine):
        def transcribe(self, utterance):
            if utterance.revision and not seen:  # the first revision only (there is no other)
                _tries_until_halted(utterance, seen, revising, lambda: seen.update(queued=queued.wait(10)))
            return super().transcribe(utterance)

    async def main() -> None:
        h = PipelineHarness(Watching())
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, turns=(0.1, 28.0), single_pieces=True)
        outcomes = _revision_outcomes(h)
        try:
            await asyncio.wait_for(h.say(h.join("Ann", "en"), 1.0), 10)
            assert await asyncio.to_thread(revising.wait, 10)
            other = asyncio.ensure_future(h.queue.transcribe(lambda: "other", owner="cy-id"))
            await asyncio.sleep(0)  # its task's first step queues it (the one worker is the revision's)
            seen["waits, nobody talking"] = h.queue.waiting == 1 and not h.pipeline.turns.talking()
            queued.set()
            assert await asyncio.wait_for(other, 10) == "other"
            assert await asyncio.wait_for(outcomes.get(), 10) == "unchanged"
        finally:
            queued.set()
            await h.pipeline.close()
            h.close()

    asyncio.run(main())
    assert seen == {"at start": False, "queued": True, "waits, nobody talking": True, "halted": True}, seen


def test_a_failing_watch_of_a_running_revision_is_logged_and_the_revision_goes_on(caplog):
    """Should the watcher of a running one-piece revision fail (here a speaker's probe raises), the error is logged
    where it happens (not left in a task nobody awaits) and the revision finishes as if it had not been watched."""
    import logging
    import threading

    from babelfish.pipeline import Pipeline

    revising, failed = threading.Event(), threading.Event()

    class Waiting(FakeEngine):
        def transcribe(self, utterance):
            if utterance.revision:
                revising.set()
                failed.wait(10)  # the watcher looks while this runs
            return super().transcribe(utterance)

    def probe() -> float | None:
        if revising.is_set():
            failed.set()
            raise RuntimeError("probe broke")
        return None

    async def main() -> None:
        h = PipelineHarness(Waiting())
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, turns=(0.1, 28.0), single_pieces=True)
        outcomes = _revision_outcomes(h)
        h.pipeline.turns.watch("cy-id", probe)  # a speaker with no turn: only `talking()` asks the probe
        try:
            await asyncio.wait_for(h.say(h.join("Ann", "en"), 1.0), 10)
            assert await asyncio.wait_for(outcomes.get(), 10) == "unchanged"
        finally:
            failed.set()
            await h.pipeline.close()
            h.close()

    with caplog.at_level(logging.ERROR, logger="babelfish.revisions"):
        asyncio.run(main())
    assert failed.is_set()
    logged = [r for r in caplog.records if r.name == "babelfish.revisions" and r.exc_info]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == ["probe broke"], caplog.text


def test_a_turn_is_revised_after_what_its_voice_said_last_as_listeners_hold_it():
    """A turn's revision is given what the same voice said before it (babelfish/recent.py), with the text listeners
    hold for it (the revised text where a revision replaced the first pass): never another voice's words, even on the
    same phone, nor another phone's words, even under the same label (the speaker service may take two phones' voices
    for one). The voice is the speaker service's label (an embedding from 1.5 s on: the test's `Voices` stands for it);
    once the room is gone, its voices' words are forgotten; `revision_context` off, no turn gets any."""
    import asyncio

    from babelfish import protocol as proto
    from babelfish.pipeline import Pipeline
    from tests.pipeline_harness import PipelineHarness

    contexts: list[tuple[str, float] | None] = []

    class Careful(FakeEngine):
        def transcribe(self, utterance):
            got = super().transcribe(utterance)
            if got is None or not utterance.revision:
                return got
            ctx = utterance.context
            contexts.append(None if ctx is None else (ctx.text, ctx.seconds))
            return Transcript(got.text + " indeed", got.language)

    class Voices:
        """Labels each utterance with the voice the test says is speaking, whatever the phone."""

        def __init__(self) -> None:
            self.now = "Ann"

        async def embed(self, audio):  # type: ignore[no-untyped-def]
            return None

        async def identify(self, who, vector):  # type: ignore[no-untyped-def]
            return proto.Speaker(id=f"voice-{self.now.lower()}", name=self.now)

    async def main(context: bool) -> list[dict]:
        voices = Voices()
        h = PipelineHarness(Careful())
        h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, speakers=voices, turns=(0.1, 28.0),  # type: ignore[arg-type]
                              single_pieces=True, context=context)  # fmt: skip
        outcomes = _revision_outcomes(h)
        ann_phone, bob_phone = h.join("Ann", "en"), h.join("Bob", "en")
        said = ((ann_phone, "Ann", 1.0), (ann_phone, "Carl", 1.5), (bob_phone, "Ann", 1.5), (ann_phone, "Ann", 1.5))
        for phone, voice, seconds in said:
            voices.now = voice
            await asyncio.sleep(seconds)  # the utterance ends now: it was said over the last `seconds`
            await asyncio.wait_for(h.say(phone, seconds), 10)
            assert await asyncio.wait_for(outcomes.get(), 10) == "sent"
        got = await h.received(bob_phone)
        for phone in (ann_phone, bob_phone):  # both phones hold an "Ann" of their own
            voice = ("r", phone.id, "voice-ann")
            assert (h.pipeline.recent.context(voice, "en", time.monotonic()) is not None) is context
        h.rooms.leave(ann_phone)
        h.pipeline.leave(ann_phone)  # Bob is still in the room: what was said stays for revisions still to run
        assert bool(h.pipeline.recent._said) is context
        h.rooms.leave(bob_phone)
        h.pipeline.leave(bob_phone)
        assert not h.pipeline.recent._said  # the room is gone: every voice of it, Carl's too
        await h.pipeline.close()
        h.close()
        return got

    assert asyncio.run(main(context=False)) and contexts == [None, None, None, None]
    contexts.clear()
    got = asyncio.run(main(context=True))
    anns = [m["text"] for m in got if m["type"] == "revision" and m["speaker"]["name"] == "Ann"]
    assert anns[0].endswith(" indeed")
    assert contexts[0] is None  # Ann's first turn: nothing before it
    assert contexts[1] is None  # Carl on Ann's phone: not her words
    assert contexts[2] is None  # "Ann" on Bob's phone: not her phone's words
    assert contexts[3] is not None and contexts[3][0] == anns[0]  # Ann again on her phone: her revised words
    assert contexts[3][1] == pytest.approx(1.0 + 0.3, abs=0.01)  # her one-second turn and a pause: no one else's


def test_a_revision_reads_again_what_its_voice_holds_now():
    """A turn's context is taken when its first piece is transcribed; a revision of the turn before may be sent after
    that. The turn's own revision then reads the voice's words again, through the same phone, as listeners now hold
    them (babelfish/recent.py `refresh`)."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from babelfish.inference import InferenceQueue
    from babelfish.pipeline import Pipeline
    from tests.pipeline_harness import PipelineHarness

    contexts: list[str | None] = []
    running, release = threading.Event(), threading.Event()

    class Held(FakeEngine):
        def transcribe(self, utterance):
            got = super().transcribe(utterance)
            if got is None or not utterance.revision:
                return got
            contexts.append(None if utterance.context is None else utterance.context.text)
            if len(contexts) == 1:  # the first turn's revision runs until the second turn's piece is transcribed
                running.set()
                release.wait(10)
            return Transcript(got.text + " indeed", got.language)

    async def main() -> list[dict]:
        h = PipelineHarness(Held())
        workers = ThreadPoolExecutor(2, thread_name_prefix="test-inference")
        queue = InferenceQueue(workers, 2, 64, 60.0, h.metrics, speech_executor=h.speech_executor)
        h.pipeline = Pipeline(h.engine, queue, h.rooms, h.metrics, turns=(0.1, 28.0), single_pieces=True)
        outcomes = _revision_outcomes(h)
        ann, bob = h.join("Ann", "en"), h.join("Bob", "en")
        try:
            await asyncio.wait_for(h.say(ann, 1.0), 10)
            await asyncio.wait_for(h.say(ann, 1.0), 10)  # the same turn: two pieces
            assert await asyncio.wait_for(asyncio.to_thread(running.wait, 10), 11)
            await asyncio.sleep(1.2)  # the next turn was said after it
            await asyncio.wait_for(h.say(ann, 1.0), 10)  # its context: the first turn's pieces, as first passes
            release.set()
            assert [await asyncio.wait_for(outcomes.get(), 10) for _ in range(2)] == ["sent", "sent"]
            return await h.received(bob)
        finally:
            release.set()
            await h.pipeline.close()
            h.close()
            workers.shutdown()

    got = asyncio.run(main())
    revised = [m["text"] for m in got if m["type"] == "revision"]
    assert len(revised) == 2 and revised[0].endswith(" indeed")
    assert contexts[0] is None  # nothing before the first turn
    assert contexts[1] == revised[0]  # the revised words, not the first passes the piece was given
