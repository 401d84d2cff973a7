"""Early reads at a table: a pause that another phone of the room hears better is not read ahead
(babelfish/heard_better.py). Real speech through the real VAD, the phones fed in step as the server feeds them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from babelfish.app import create_app
from babelfish.cluster import LocalOnly
from babelfish.config import Settings
from babelfish.echoes import EchoConfig, make_copy
from babelfish.engines.cascade.engine import CascadeEngine, Voices
from babelfish.engines.cascade.router import Router
from babelfish.heard_better import heard_better
from babelfish.partials import Partials, PartialsConfig
from babelfish.segmenter import OpenSegment, SegmenterConfig
from babelfish.tasks import TaskSet
from bench.bench_echoes import early_pauses
from bench.room import at_table
from tests.audio import SPEECH_CLIP, read_wav
from tests.pipeline_harness import PipelineHarness
from tests.test_early import CountingAsr
from tests.test_echoes import _echoes, _next, _play, cut, stream
from tests.test_partials import GrowingWords
from tests.test_ws import join
from tests.voices import voices
from tests.wsclient import BoundedClient

RATE = 16000
CONFIG = SegmenterConfig.from_settings(Settings())  # early reads 100 ms into a 300 ms pause (the defaults)
ECHOES = EchoConfig()


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return read_wav(SPEECH_CLIP)


@pytest.fixture(scope="module")
def other_person() -> np.ndarray:
    """A different speaker, longer than `clip` (two of pocketsphinx's own recordings)."""
    dhd = voices()["dhd"]
    return np.concatenate([dhd[1], dhd[0]])


def pauses(tracks: dict[str, np.ndarray], net: dict[str, float]) -> dict[str, list[str | None]]:
    """Each phone's pauses an early read would take, in order, each with the phone `heard_better` named (None: this
    phone reads it); the phones fed in step through the real VAD as the server feeds them (bench_echoes)."""
    out: dict[str, list[str | None]] = {p: [] for p in tracks}
    for pause in early_pauses(tracks, net, CONFIG, ECHOES):
        out[pause.phone].append(pause.kept_by)
    return out


def test_at_a_table_only_the_speakers_own_phone_reads_its_pauses(clip, other_person):
    """A speaks, then B (0.7 s later); both phones hear both through the room, over its noise. Every pause is read
    on its speaker's phone, and the other phone names that phone instead of reading it."""
    a_at, b_at = 1.5, 1.5 + len(clip) / RATE + 0.7
    n = int((b_at + len(other_person) / RATE + 1.5) * RATE)
    dry = {"A": np.zeros(n, np.float32), "B": np.zeros(n, np.float32)}
    dry["A"][int(a_at * RATE) :][: len(clip)] = clip
    dry["B"][int(b_at * RATE) :][: len(other_person)] = other_person
    heard = at_table(dry, RATE)
    answers = pauses(heard, {"A": 0.03, "B": 0.06})
    spoken = {p: [a for a in answers[p] if a is None] for p in answers}
    # Each phone read its own speaker's pauses, and named the other phone for pauses it did not read.
    assert spoken["A"] and spoken["B"], answers
    assert set(answers["A"]) <= {None, "B"} and set(answers["B"]) <= {None, "A"}, answers
    assert answers["A"].count("B") >= 1 and answers["B"].count("A") >= 1, answers


def test_another_person_louder_on_another_phone_does_not_stop_a_read(clip, other_person):
    """B talks over A, louder and for longer, into another phone that does not hear A: B's phone ranks above A's
    (both know their floors), yet A's pauses are A's to read: B's envelopes are another person's."""
    a = stream([(clip, 2.3, 0)], 8.5, seed=1)
    b = stream([(other_person, 2.0, 6)], 8.5, seed=2)
    answers = pauses({"A": a, "B": b}, {"A": 0.03, "B": 0.04})
    assert answers["A"] and all(x is None for x in answers["A"]), answers


def test_a_copy_the_room_keeps_stops_a_read_and_one_it_dropped_does_not(clip):
    """Against copies already cut on other phones (`Echoes.rivals`): one not decided yet stops a read only when it is
    better; a kept one that stands, whatever their ranks (the verdict will hear this copy elsewhere); one heard
    elsewhere or not delivered never; nor a copy of another time."""
    (near,) = cut(stream([(clip, 0.3, 0)], 4.5, seed=1))
    (far,) = cut(stream([(clip, 0.38, -9)], 4.5, seed=2), net_delay=0.06)  # 80 ms later, 9 dB down
    a, b = make_copy("A", near, 0.5), make_copy("B", far, 0.5)  # each phone's pause as an early read asks

    async def run() -> None:
        echoes = _echoes()
        echoes.register("r", "B", far)
        assert heard_better(a, echoes.rivals("r", "A")[0], [], ECHOES) is None  # undecided and worse: A's to read
        echoes.register("r", "A", near)
        assert heard_better(b, echoes.rivals("r", "B")[0], [], ECHOES) == "A"
        kept = _echoes()
        kept.register("r", "B", far)
        verdict = await asyncio.wait_for(kept.admit("r", "B", far), 5)  # alone: kept
        assert verdict.keep and verdict.outcome is not None
        assert heard_better(a, kept.rivals("r", "A")[0], [], ECHOES) == "B"  # A's copy will be heard elsewhere
        late = make_copy("A", replace(near, speech_end=near.speech_end + 30), 0.5)
        assert heard_better(late, kept.rivals("r", "A")[0], [], ECHOES) is None
        verdict.outcome.set_result("shed")  # not delivered: A's copy may be kept after all
        assert kept.rivals("r", "A")[0] == [] and heard_better(a, [], [], ECHOES) is None
        dropped = _echoes()
        for who, segment in (("A", near), ("B", far)):
            dropped.register("r", who, segment)
        verdicts = await asyncio.wait_for(
            asyncio.gather(dropped.admit("r", "A", near), dropped.admit("r", "B", far)), 5
        )
        assert [v.keep for v in verdicts] == [True, False]
        assert [c.client_id for c, _ in dropped.rivals("r", "C")[0]] == ["A"]  # B's, heard elsewhere, is no rival

    asyncio.run(run())


@dataclass
class Heard:
    messages: list[dict]  # what the listener got
    metrics: dict
    reads: list[float]  # the level (dBFS) of the audio of each of the recogniser's calls
    near: str  # the phones' client ids
    far: str


def near_and_far(tmp_path: Path, clip: np.ndarray, partials: bool, one_phone: bool = True) -> Heard:
    """Two phones in a room hear one voice, the far one 80 ms later and 9 dB down (each over its own room noise), and
    a German listener listens; the cascade with a recogniser that says the same words of anything."""
    asr = CountingAsr(seconds=0.15)
    cascade = CascadeEngine(asr, Router([]), Voices([]))
    settings = Settings(data_dir=tmp_path, engine="cascade", revisions=False, partials=partials,
                        one_phone_per_voice=one_phone)  # fmt: skip
    try:
        with (
            BoundedClient(create_app(settings, engine=cascade, embedder=None)) as c,
            c.websocket_connect("/ws/client") as listener,
            c.websocket_connect("/ws/client") as near,
            c.websocket_connect("/ws/client") as far,
        ):
            join(listener, "L", "de")
            near_id, far_id = join(near, "Near", "en")["client_id"], join(far, "Far", "en")["client_id"]
            _play([(near, stream([(clip, 1.2, 0)], 5.5, seed=1)), (far, stream([(clip, 1.28, -9)], 5.5, seed=2))])
            messages = [_next(listener)]
            while messages[-1]["type"] != "transcript":
                messages.append(_next(listener))
            # Until a second passes with no transcript or heard_by (every copy delivered or heard elsewhere), or 10 s.
            deadline = last = time.monotonic()
            deadline += 10
            while time.monotonic() < deadline and time.monotonic() - last < 1.0:
                listener.send_text('{"type": "ping", "id": "settle"}')
                while (m := _next(listener))["type"] != "pong":
                    messages.append(m)
                    last = time.monotonic() if m["type"] in ("transcript", "heard_by") else last
                time.sleep(0.1)
            levels = [10 * np.log10(np.mean(np.square(a)) + 1e-12) for a, _, _ in asr.calls]
            return Heard(messages, c.get("/metrics").json(), levels, near_id, far_id)
    finally:
        cascade.close()


@pytest.mark.timeout(90)
def test_through_the_server_the_far_phone_does_not_read_ahead(tmp_path, clip):
    """The near phone reads its pauses early, the far one does not, and the room gets the utterance once, read once."""
    heard = near_and_far(tmp_path, clip, partials=False)
    early = heard.metrics["early_reads"]
    transcripts = [m for m in heard.messages if m["type"] == "transcript"]
    assert early["elsewhere"] >= 1, early
    assert transcripts and {m["client_id"] for m in transcripts} == {heard.near}
    # Every read was of the near phone's audio (the far phone hears the voice 9 dB down), and each cut was read once:
    # early where the engine was free for it in the pause.
    assert heard.reads and max(heard.reads) - min(heard.reads) < 4, heard.reads
    assert early["used"] >= len(transcripts) - early["busy"] - early["stale"], early


@pytest.mark.timeout(90)
def test_with_one_phone_per_voice_off_every_phone_reads_its_own(tmp_path, clip):
    """Off, every phone's copy is delivered, so every phone reads it: nothing is judged heard elsewhere."""
    heard = near_and_far(tmp_path, clip, partials=True, one_phone=False)
    assert heard.metrics["early_reads"]["elsewhere"] == 0 and heard.metrics["partials"]["shed"]["elsewhere"] == 0
    assert {m["client_id"] for m in heard.messages if m["type"] == "transcript"} == {heard.near, heard.far}
    assert max(heard.reads) - min(heard.reads) > 5, heard.reads  # the far phone's audio was read too


@pytest.mark.timeout(90)
def test_through_the_server_only_the_near_phone_streams_partials(tmp_path, clip):
    """While the voice speaks, the listener sees its words from the near phone only: the far phone decodes none of
    it (its partials would name its own person as the speaker)."""
    heard = near_and_far(tmp_path, clip, partials=True)
    partials = [m for m in heard.messages if m["type"] == "partial"]
    assert partials and {m["client_id"] for m in partials} == {heard.near}, partials
    assert heard.metrics["partials"]["shed"]["elsewhere"] >= 1, heard.metrics["partials"]
    assert {m["client_id"] for m in heard.messages if m["type"] == "transcript"} == {heard.near}


class OneRival:
    """The room as the partials see it (`Echoes.rivals`): nobody else, or one other phone B whose open speech is
    `louder` while set (a fake of the filter's state; the weighing itself is the real one)."""

    def __init__(self) -> None:
        self.config = ECHOES
        self.louder: OpenSegment | None = None

    def rivals(self, room: str, client_id: str) -> tuple[list, list]:
        louder = self.louder
        return ([], [("B", lambda: louder)]) if louder is not None else ([], [])


async def test_a_partial_card_shown_before_another_phone_was_found_better_is_closed(clip):
    """Ann's phone streams a partial of the speech; then phone B is found to hear the same speech 9 dB louder: Ann's
    card is closed and no more of it is decoded there. Should Ann's phone be the better one again, its words go on
    afresh under a new id."""
    h = PipelineHarness(engine=GrowingWords())
    tasks = TaskSet()
    room = OneRival()
    ids = iter(["u1", "u2"])
    try:
        ann, bob = h.join("Ann", "en"), h.join("Bob", "de")
        config = PartialsConfig(interval=0.0, cost_factor=0.0)
        service = Partials(h.engine, h.queue, h.rooms, h.metrics, LocalOnly(), lambda: next(ids), config,
                           echoes=room)  # type: ignore[arg-type]  # fmt: skip
        stream = service.stream(ann, tasks.spawn)
        t0 = time.monotonic() - 3.0
        segmenter = SimpleNamespace(open_serial=1, trailing_silence=0.0, open_started=t0)

        def heard(seconds: float, gain: float) -> OpenSegment:
            n = int(seconds * RATE) // 512
            return OpenSegment(1, clip[: n * 512] * gain, np.full(n, 0.95, np.float32), t0, n * 512 / RATE,
                               floor_db=-60.0)  # fmt: skip

        def shown(messages: list[dict]) -> list[tuple[str, str]]:
            return [(m["type"], m["utterance_id"]) for m in messages if m["type"] in ("partial", "partial_end")
                    and m.get("kind", "transcript") == "transcript"]  # fmt: skip

        stream.after_batch(segmenter, [], heard(1.5, 0.35))  # type: ignore[arg-type]
        assert await tasks.wait(10) == 0
        assert shown(await h.received(bob)) == [("partial", "u1")]
        room.louder = heard(2.0, 1.0)
        stream.after_batch(segmenter, [], heard(2.0, 0.35))  # type: ignore[arg-type]
        assert await tasks.wait(10) == 0
        assert shown(await h.received(bob)) == [("partial_end", "u1")]
        assert h.metrics.partials_shed["elsewhere"] == 1
        room.louder = None
        stream.after_batch(segmenter, [], heard(2.5, 0.35))  # type: ignore[arg-type]
        assert await tasks.wait(10) == 0
        again = [m for m in await h.received(bob) if m["type"] == "partial" and m["kind"] == "transcript"]
        assert [m["utterance_id"] for m in again] == ["u2"] and again[0]["stable"] == ""  # nothing carried over
    finally:
        await tasks.cancel_all()
        h.close()
