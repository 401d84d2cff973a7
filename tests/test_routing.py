"""Who gets what of one utterance: Pipeline with the fake engine and real outboxes (tests/pipeline_harness.py)."""

from collections.abc import Iterator

import pytest

from babelfish.engines.fake import FakeEngine
from tests.pipeline_harness import PipelineHarness


@pytest.fixture
def h() -> Iterator[PipelineHarness]:
    harness = PipelineHarness()
    yield harness
    harness.close()


def kinds(messages):
    return [m["type"] for m in messages]


async def test_each_listener_gets_its_language_and_the_speaker_only_the_transcript(h):
    ann, bob, dora, paula = h.join("Ann", "en"), h.join("Bob", "de"), h.join("Dora", "de"), h.join("Paula", "pt")
    await h.say(ann)
    mine = await h.received(ann)
    assert kinds(mine) == ["transcript"] and mine[0]["speaker"] == {"id": ann.id, "name": "Ann"}
    for p, lang in ((bob, "de"), (dora, "de"), (paula, "pt")):
        transcript, translation, audio = got = await h.received(p)
        assert kinds(got) == ["transcript", "translation", "audio"]
        assert transcript["utterance_id"] == translation["utterance_id"] == audio["utterance_id"]
        assert translation["language"] == audio["language"] == lang and translation["source_language"] == "en"
        assert audio["bytes"] == len(audio["payload"]) > 0
    # The engine was asked once per language, not once per listener.
    assert h.metrics.snapshot()["latency_ms"]["translation"]["count"] == 2


async def test_same_language_auto_and_text_only_listeners(h):
    ann, same, auto, text_only = h.join("Ann", "en"), h.join("Eve", "en"), h.join("Al", "auto"), h.join("Tom", "de")
    text_only.wants_audio = False
    await h.say(ann)
    assert kinds(await h.received(same)) == ["transcript"]
    assert kinds(await h.received(auto)) == ["transcript"]
    assert kinds(await h.received(text_only)) == ["transcript", "translation"]


async def test_untranslatable_language_gets_a_notice_naming_the_speaker(h):
    ann, livia = h.join("Ann", "en"), h.join("Livia", "la")
    await h.say(ann)
    transcript, notice = await h.received(livia)
    assert notice["type"] == "notice" and notice["code"] == "untranslatable" and notice["language"] == "la"
    assert notice["speaker"] == transcript["speaker"] and notice["utterance_id"] == transcript["utterance_id"]


async def test_rooms_do_not_hear_each_other(h):
    ann, bob, carl = h.join("Ann", "en", room="one"), h.join("Bob", "de", room="one"), h.join("Carl", "de", room="two")
    await h.say(ann)
    assert kinds(await h.received(bob)) == ["transcript", "translation", "audio"]
    assert await h.received(carl) == []


async def test_silence_reaches_nobody(h):
    ann, bob = h.join("Ann", "en"), h.join("Bob", "de")
    await h.say(ann, level=0.0)
    assert await h.received(ann) == [] and await h.received(bob) == []


async def test_a_failing_engine_tells_only_the_speaker():
    class Broken(FakeEngine):
        def render(self, *args, **kwargs):
            raise RuntimeError("model exploded")
            yield  # a generator, like the real ones

    h = PipelineHarness(Broken())
    try:
        ann, bob = h.join("Ann", "en"), h.join("Bob", "de")
        await h.say(ann)
        transcript, error = await h.received(ann)
        assert transcript["type"] == "transcript"
        assert (error["type"], error["code"]) == ("error", "internal_error")
        assert error["utterance_id"] == transcript["utterance_id"]
        assert kinds(await h.received(bob)) == ["transcript"]
    finally:
        h.close()


async def test_a_listener_that_cannot_keep_up_overflows_alone():
    h = PipelineHarness(max_items=2)
    try:
        ann, bob, slow = h.join("Ann", "en"), h.join("Bob", "en"), h.join("Slow", "de")
        await h.say(ann)  # three messages for the German listener: one over its outbox
        assert h.dropped == [slow.id]
        assert kinds(await h.received(bob)) == ["transcript"]
    finally:
        h.close()
