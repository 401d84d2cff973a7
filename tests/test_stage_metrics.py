"""/metrics breaks an utterance's time down by stage: endpointing, queue, ASR, MT, TTS, delivery."""

from __future__ import annotations

import re

from babelfish.engines.fake import FakeEngine
from babelfish.metrics import PIPELINE_STAGES
from tests.pipeline_harness import PipelineHarness
from tests.test_ws import join, receive_until, speak

DELAY = 0.15  # the fake engine sleeps this long in transcribe and for each result


async def test_each_stage_is_measured_where_its_time_goes():
    h = PipelineHarness(FakeEngine(delay_seconds=DELAY))
    try:
        ann, bob, cid = h.join("Ann", "en"), h.join("Bob", "de"), h.join("Cid", "fr", audio=False)
        await h.say(ann)
        assert len(await h.received(bob)) == 3 and len(await h.received(cid)) == 2
    finally:
        h.executor.shutdown()
    stages = h.metrics.snapshot()["stages_ms"]
    assert isinstance(stages, dict) and set(stages) == set(PIPELINE_STAGES)
    counts = {name: stages[name]["count"] for name in PIPELINE_STAGES}
    # One transcribe; a translation each for de and fr, a voice for de only (speech is made only for languages
    # someone listens to); each of the three had listeners of its language, so each went through delivery.
    assert counts == {"endpointing": 1, "queue": 1, "asr": 1, "mt": 2, "tts": 1, "delivery": 3}
    ms = DELAY * 1000
    for name in ("asr", "mt", "tts"):  # the engine's own time, not more than a busy machine can add
        assert ms * 0.9 <= stages[name]["p50"] < ms + 2000, (name, stages[name])
    for name in ("endpointing", "queue", "delivery"):  # no VAD, no other speaker, one event-loop hop
        assert 0 <= stages[name]["p95"] < 1000, (name, stages[name])
    text = h.metrics.prometheus().decode()
    for name in PIPELINE_STAGES:
        assert re.search(rf'babelfish_stage_seconds_count\{{stage="{name}"\}} [1-9]', text), name


def test_stages_through_the_app(client, speech_pcm):
    with client.websocket_connect("/ws/client") as en, client.websocket_connect("/ws/client") as de:
        join(en, "Ana", "en")
        join(de, "Dan", "de")
        speak(en, speech_pcm)
        got = receive_until(de, "audio")
        translation = next(m for m in got if m["type"] == "translation")
    stages = client.get("/metrics").json()["stages_ms"]
    assert all(stages[name]["count"] >= 1 for name in PIPELINE_STAGES), stages
    # The parts before a translation fit inside its latency (measured from the same speech end).
    before = sum(stages[name]["p50"] for name in ("endpointing", "queue", "asr", "mt"))
    assert before <= translation["latency_ms"] + 50, (before, translation["latency_ms"])
