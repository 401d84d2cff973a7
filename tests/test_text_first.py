"""Text first: nobody's text waits behind anyone's speech; speech that could not start in time is skipped, counted,
and its listeners are told (babelfish/inference.py, babelfish/pipeline.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import websockets

from babelfish.app import create_app
from babelfish.cluster import LocalOnly, inbound, redis_node
from babelfish.cluster.envelope import Envelope, unpack
from babelfish.config import Settings
from babelfish.engines.base import LanguageSupport, SpeechResult, TextResult, Utterance
from babelfish.engines.fake import FakeEngine
from babelfish.inference import InferenceQueue, Shed
from babelfish.metrics import Metrics
from babelfish.pipeline import Pipeline
from babelfish.rooms import Outbox, Participant, RemoteMember, Room
from tests.audio import frames, silence
from tests.pipeline_harness import PipelineHarness
from tests.test_nothing_lost import _InThread
from tests.test_ws import join, speak
from tests.wsclient import BoundedClient


@pytest.fixture
def pools():
    with ThreadPoolExecutor(1) as text, ThreadPoolExecutor(1) as speech:
        yield text, speech


def blocker() -> tuple[threading.Event, threading.Event, object]:
    """(started, gate, work): work sets `started`, then holds its thread until `gate` is set."""
    started, gate = threading.Event(), threading.Event()

    def work() -> str:
        started.set()
        assert gate.wait(10)
        return "blocked"

    return started, gate, work


async def test_a_transcription_does_not_wait_for_a_long_synthesis(pools):
    text, speech = pools
    q = InferenceQueue(text, 1, 8, 60, Metrics(), speech_executor=speech, speech_max_wait=60)
    started, gate, synthesis = blocker()
    speaking = asyncio.create_task(q.speak(synthesis, owner="a"))
    assert await asyncio.to_thread(started.wait, 5)
    assert q.speaking == 1
    async with asyncio.timeout(5):
        assert await q.transcribe(str, "b's words", owner="b") == "b's words"
        assert await q.render(str, "b's translations", owner="b") == "b's translations"
    assert not speaking.done()  # the synthesis still runs: the texts did not wait for it
    gate.set()
    async with asyncio.timeout(5):
        assert await speaking == "blocked"
        await q.idle()


async def test_speech_jobs_run_one_at_a_time_in_order_whatever_the_workers():
    # Two workers, a speech executor with threads to spare: the lane still takes one job at a time, so one listener
    # never hears two utterances' sentences interleaved, and they come in the order they were asked for.
    with ThreadPoolExecutor(2) as text, ThreadPoolExecutor(2) as speech:
        q = InferenceQueue(text, 2, 8, 60, Metrics(), speech_executor=speech, speech_max_wait=60)
        started, gate, first = blocker()
        order: list[str] = []
        a = asyncio.create_task(q.speak(first, owner="a"))
        assert await asyncio.to_thread(started.wait, 5)
        b = asyncio.create_task(q.speak(order.append, "b", owner="b"))
        c = asyncio.create_task(q.speak(order.append, "c", owner="c"))
        await asyncio.sleep(0.1)
        assert q.speaking == 1 and q.speech_waiting == 2 and order == []
        gate.set()
        async with asyncio.timeout(5):
            await asyncio.gather(a, b, c)
        assert order == ["b", "c"]


async def test_speech_starts_only_when_no_text_waits(pools):
    text, speech = pools
    q = InferenceQueue(text, 1, 8, 60, Metrics(), speech_executor=speech, speech_max_wait=60)
    started, gate, work = blocker()
    b_started, b_gate, b_work = blocker()
    order: list[str] = []
    running = asyncio.create_task(q.transcribe(work, owner="a"))
    assert await asyncio.to_thread(started.wait, 5)
    waiting = asyncio.create_task(q.transcribe(b_work, owner="b"))
    spoken = asyncio.create_task(q.speak(order.append, "speak a", owner="a"))
    await asyncio.sleep(0.1)
    assert order == [] and q.speech_waiting == 1  # the speech lane is free, but b's transcription waits
    gate.set()
    assert await asyncio.to_thread(b_started.wait, 5)  # b's transcription runs: nothing waits any more
    async with asyncio.timeout(5):
        await spoken  # so speech starts, beside the text already running (it shares the CPU, never a worker)
    assert order == ["speak a"] and not waiting.done()
    b_gate.set()
    async with asyncio.timeout(5):
        assert await asyncio.gather(running, waiting) == ["blocked", "blocked"]
        await q.idle()


async def test_speech_that_waited_too_long_is_skipped(pools):
    text, speech = pools
    q = InferenceQueue(text, 1, 8, 60, Metrics(), speech_executor=speech, speech_max_wait=0.2)
    started, gate, work = blocker()
    ran: list[str] = []
    running = asyncio.create_task(q.transcribe(work, owner="a"))
    assert await asyncio.to_thread(started.wait, 5)
    waiting = asyncio.create_task(q.transcribe(ran.append, "b", owner="b"))  # text waits: speech may not start
    late = asyncio.create_task(q.speak(ran.append, "speech", owner="a"))
    await asyncio.sleep(0.4)
    gate.set()
    with pytest.raises(Shed) as info:
        await asyncio.wait_for(late, 5)
    assert info.value.reason == "late"
    async with asyncio.timeout(5):
        await asyncio.gather(running, waiting)
        await q.idle()
    assert ran == ["b"]


async def test_full_speech_queue_skips_the_oldest(pools):
    text, speech = pools
    q = InferenceQueue(text, 1, 2, 60, Metrics(), speech_executor=speech, speech_max_wait=60)
    started, gate, synthesis = blocker()
    running = asyncio.create_task(q.speak(synthesis, owner="a"))
    assert await asyncio.to_thread(started.wait, 5)
    first = asyncio.create_task(q.speak(str, "first", owner="a"))
    second = asyncio.create_task(q.speak(str, "second", owner="b"))
    await asyncio.sleep(0.01)
    third = asyncio.create_task(q.speak(str, "third", owner="c"))
    with pytest.raises(Shed) as info:
        await asyncio.wait_for(first, 5)
    assert info.value.reason == "full"
    gate.set()
    async with asyncio.timeout(5):
        assert await asyncio.gather(running, second, third) == ["blocked", "second", "third"]


class GatedEngine(FakeEngine):
    """The fake engine whose speech waits for `gate` (at most 10 s): speech that outlasts whatever the test needs,
    with no wall-clock margin."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def speak(self, utterance: Utterance, texts: Sequence[TextResult]) -> Iterator[SpeechResult]:
        assert self.gate.wait(10)
        yield from super().speak(utterance, texts)


async def test_the_next_utterance_is_not_held_by_the_speech_of_the_last():
    """The pipeline: Ann's utterance is over for the text path once its texts are out; her speech runs on while Bob's
    utterance is transcribed and translated."""
    engine = GatedEngine()  # Ann's speech holds the only speech lane until Bob's texts are out
    h = PipelineHarness(engine)
    try:
        ann, bob, dan = h.join("Ann", "en"), h.join("Bob", "fr"), h.join("Dan", "de")
        async with asyncio.timeout(10):
            await h.pipeline.process(ann, h.segment(1.0))  # returns with the texts out, speech still to make
            await h.pipeline.process(bob, h.segment(1.2))  # would time out if it waited for Ann's speech
            assert h.queue.speaking == 1
            engine.gate.set()
            assert await h.pipeline.spoken(10) == 0
        got = await h.received(dan)
        ann_id, bob_id = (m["utterance_id"] for m in got if m["type"] == "transcript")
        kinds = [(m["type"], m["utterance_id"]) for m in got]
        assert kinds.index(("translation", bob_id)) < kinds.index(("audio", ann_id))  # read Bob before hearing Ann
        assert ("audio", bob_id) in kinds
        speech = h.metrics.snapshot()["speech"]
        assert isinstance(speech, dict) and speech["spoken"] == 2 and speech["shed_late"] == 0
    finally:
        engine.gate.set()
        h.close()


async def test_skipped_speech_is_counted_and_its_listeners_told():
    engine = GatedEngine()
    h = PipelineHarness(engine, speech_max_wait=0.3)
    try:
        ann, bob, mute = h.join("Ann", "en"), h.join("Bob", "de"), h.join("Mute", "de", audio=False)
        async with asyncio.timeout(10):
            await h.pipeline.process(ann, h.segment(1.0))  # its speech takes the lane until the gate opens
            await h.pipeline.process(ann, h.segment(1.3))
            await asyncio.sleep(0.4)  # the second one's speech has waited longer than 0.3 s
            engine.gate.set()
            assert await h.pipeline.spoken(10) == 0
        got = await h.received(bob)
        audio = [m for m in got if m["type"] == "audio"]
        skipped = [m for m in got if m["type"] == "notice" and m["code"] == "speech_skipped"]
        assert len(audio) == 1 and len(skipped) == 1
        assert skipped[0]["utterance_id"] != audio[0]["utterance_id"]
        assert (skipped[0]["language"], skipped[0]["reason"]) == ("de", "server_busy")
        # Its text was delivered all the same.
        assert any(m["type"] == "translation" and m["utterance_id"] == skipped[0]["utterance_id"] for m in got)
        # A listener who takes no audio is not told about audio.
        assert not any(m["type"] == "notice" for m in await h.received(mute))
        speech = h.metrics.snapshot()["speech"]
        assert isinstance(speech, dict) and (speech["spoken"], speech["shed_late"]) == (1, 1)
        assert 'babelfish_speech_jobs_total{outcome="shed_late"} 1.0' in h.metrics.prometheus().decode()
    finally:
        engine.gate.set()
        h.close()


def _collect(ws, done, seconds: float = 30.0) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + seconds
    while not done(got):
        assert time.monotonic() < deadline, [(m["type"], m.get("code")) for m in got]
        try:
            msg = ws.receive_json()  # itself bounded (tests/wsclient.py)
        except AssertionError:
            raise AssertionError(f"got only {[(m['type'], m.get('code')) for m in got]}") from None
        if msg["type"] == "audio":
            msg["payload"] = ws.receive_bytes()
        got.append(msg)
    return got


def test_through_the_app_a_slow_voice_holds_up_no_text(tmp_path, speech_pcm):
    """A voice that holds the speech lane: the speaker's next utterances are read before the first is heard, and
    speech that could not start within 0.5 s is skipped with a notice; every text arrives."""
    settings = Settings(data_dir=tmp_path, engine="test", speech_max_wait_seconds=0.5, revisions=False)
    engine = GatedEngine()  # the first speech holds the lane until all three texts are read
    try:
        with (
            BoundedClient(create_app(settings, engine=engine)) as c,
            c.websocket_connect("/ws/client") as en,
            c.websocket_connect("/ws/client") as de,
        ):
            join(en, "Ann", "en")
            join(de, "Dan", "de")

            def spoken_or_skipped(m: dict) -> bool:
                return m["type"] == "audio" or (m["type"] == "notice" and m["code"] == "speech_skipped")

            def translations(g: list[dict]) -> int:
                return sum(m["type"] == "translation" for m in g)

            got: list[dict] = []
            for n in range(1, 4):  # one at a time, each ended by a clear pause: three utterances however busy the CPU
                speak(en, speech_pcm)
                for frame in frames(silence(1.0)):
                    en.send_bytes(frame)
                want = n - translations(got)
                got += _collect(de, lambda g, want=want: translations(g) >= want)
            time.sleep(1.0)  # the speech of the second (asked for before the third was read) is now late
            engine.gate.set()
            said, heard = translations(got), sum(map(spoken_or_skipped, got))
            got += _collect(de, lambda g: heard + sum(map(spoken_or_skipped, g)) == said + translations(g))
            ids = [m["utterance_id"] for m in got if m["type"] == "translation"]
            kinds = [(m["type"], m["utterance_id"]) for m in got]
            assert kinds.index(("translation", ids[2])) < kinds.index(("audio", ids[0]))  # read before heard
            skipped = [m for m in got if m["type"] == "notice" and m["code"] == "speech_skipped"]
            skipped_ids = {m["utterance_id"] for m in skipped}
            assert ids[1] in skipped_ids and ids[0] not in skipped_ids
            speech = c.get("/metrics").json()["speech"]
            assert speech["shed_late"] == len(skipped) and speech["spoken"] == len(ids) - len(skipped), speech
    finally:
        engine.gate.set()


class VoicelessEngine(FakeEngine):
    """No voice for French (its speech_out is False); the German voice fails quietly, as the engines' voices do."""

    def languages(self) -> Sequence[LanguageSupport]:
        return [replace(s, speech_out=False) if s.code == "fr" else s for s in super().languages()]

    def speak(self, utterance: Utterance, texts: Sequence[TextResult]) -> Iterator[SpeechResult]:
        assert "fr" not in {t.language for t in texts}  # no speech job for a language it cannot speak
        yield from super().speak(utterance, [t for t in texts if t.language != "de"])


async def test_a_language_without_voice_gets_no_speech_job_and_a_failing_voice_is_told():
    h = PipelineHarness(VoicelessEngine())
    try:
        ann, fr, de, es = h.join("Ann", "en"), h.join("Fay", "fr"), h.join("Dan", "de"), h.join("Eva", "es")
        await h.say(ann)
        assert not any(m["type"] in ("audio", "notice") for m in await h.received(fr))  # text only, nothing to tell
        got = await h.received(de)
        assert not any(m["type"] == "audio" for m in got)
        failed = [m for m in got if m["type"] == "notice"]
        assert [(m["code"], m["reason"], m["language"]) for m in failed] == [("speech_skipped", "voice_failed", "de")]
        assert any(m["type"] == "audio" for m in await h.received(es))
        speech = h.metrics.snapshot()["speech"]
        assert isinstance(speech, dict) and speech.get("error") == 1 and not speech.get("spoken"), speech
    finally:
        h.close()


class Relayed:
    """A cluster that records what is relayed (the rest of the Cluster protocol as LocalOnly)."""

    def __init__(self) -> None:
        self.relayed: list[tuple[str, str | None, bool, bool]] = []  # (text, language, pcm?, audio_only)

    def relay(self, room, text, language, pcm=None, audio_only=False) -> None:
        self.relayed.append((text, language, pcm is not None, audio_only))

    def __getattr__(self, name: str):
        return getattr(LocalOnly(), name)


async def test_across_servers_speech_skipped_reaches_only_listeners_who_take_audio():
    engine = GatedEngine()
    h = PipelineHarness(engine, speech_max_wait=0.3)
    cluster = Relayed()
    h.pipeline = Pipeline(h.engine, h.queue, h.rooms, h.metrics, cluster)  # type: ignore[arg-type]
    try:
        ann = h.join("Ann", "en")
        h.rooms.get("r").remote["far"] = RemoteMember("far", "Fay", "de", True, "server-2")
        async with asyncio.timeout(10):
            await h.pipeline.process(ann, h.segment(1.0))
            await h.pipeline.process(ann, h.segment(1.3))
            await asyncio.sleep(0.4)  # the second one's speech is late
            engine.gate.set()
            assert await h.pipeline.spoken(10) == 0
        skipped = [r for r in cluster.relayed if '"speech_skipped"' in r[0]]
        assert [(lang, audio_only) for _, lang, _, audio_only in skipped] == [("de", True)]
        # The other server's side: the notice goes to its listeners of that language who take audio, only.
        room = Room("r")
        hears = Participant("h", "Hal", "de", "r", Outbox(10, 1 << 20, lambda: None), wants_audio=True)
        reads = Participant("t", "Tom", "de", "r", Outbox(10, 1 << 20, lambda: None), wants_audio=False)
        room.members.update({p.id: p for p in (hears, reads)})
        body = {"text": skipped[0][0], "language": "de", "audio": False, "audio_only": True}
        checked = inbound.result(unpack(Envelope("result", "server-1", "r", body).pack()).body, b"")
        assert isinstance(checked, inbound.Result)  # what a server relays passes the other server's checks
        redis_node._deliver(room, checked)
        assert (hears.outbox.qsize(), reads.outbox.qsize()) == (1, 0)
        assert not redis_node._needed(room_with_remote(False), "de", True)
        assert redis_node._needed(room_with_remote(True), "de", True)
    finally:
        engine.gate.set()
        h.close()


def room_with_remote(wants_audio: bool) -> Room:
    room = Room("r")
    room.remote["far"] = RemoteMember("far", "Fay", "de", wants_audio, "server-2")
    return room


@pytest.mark.timeout(90)
def test_a_drain_waits_for_speech_in_flight(tmp_path, speech_pcm):
    """A restart while an utterance's speech is being made (its text is out): the audio arrives before `draining`."""
    settings = Settings(data_dir=tmp_path, log_level="warning", revisions=False)
    engine = GatedEngine()
    srv = _InThread(create_app(settings, engine=engine), settings)

    async def scenario() -> list[str]:
        async with websockets.connect(srv.url, max_size=None) as listener, websockets.connect(srv.url) as speaker:
            for ws, name, lang in ((listener, "L", "de"), (speaker, "S", "en")):
                await ws.send(json.dumps({"type": "join", "name": name, "language": lang}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "welcome"
            for frame in frames(speech_pcm):
                await speaker.send(frame)
            await speaker.send('{"type": "end_utterance"}')
            seen: list[str] = []
            while "translation" not in seen:  # the text is out; its speech waits for the gate
                msg = await asyncio.wait_for(listener.recv(), 20)
                seen.append("audio-frame" if isinstance(msg, bytes) else json.loads(msg)["type"])
            srv.server.should_exit = True  # what SIGTERM does
            await asyncio.sleep(0.5)  # the drain has begun (were it not to wait for speech, `draining` came now)
            engine.gate.set()
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    msg = await asyncio.wait_for(listener.recv(), 20)
                    seen.append("audio-frame" if isinstance(msg, bytes) else json.loads(msg)["type"])
            return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        engine.gate.set()
        srv.stop()
    kinds = [k for k in seen if k != "participants"]
    assert "audio" in kinds and kinds.index("audio") < kinds.index("draining"), kinds
    assert not srv.thread.is_alive()
