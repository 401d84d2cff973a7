"""What each voice said last (babelfish/recent.py): whole segments, bounded, one language, the texts listeners hold."""

from __future__ import annotations

import numpy as np

from babelfish.engines.base import SAMPLE_RATE
from babelfish.recent import PAUSE_SECONDS, RecentSpeech

ANN, BOB = ("hall", "phone-a", "ann"), ("hall", "phone-b", "bob")
PAUSE = round(PAUSE_SECONDS * SAMPLE_RATE)


def audio(seconds: float, level: float = 0.1) -> np.ndarray:
    return np.full(round(seconds * SAMPLE_RATE), level, np.float32)


def test_the_context_is_the_latest_whole_segments_with_a_pause_after_each():
    recent = RecentSpeech(seconds=4.0)
    recent.add(ANN, "u1", audio(2.5, 0.1), "one", "en", at=10.0, start=9.5)
    recent.add(ANN, "u2", audio(1.0, 0.2), "two", "en", at=11.0, start=10.5)
    recent.add(BOB, "b1", audio(1.0, 0.9), "not hers", "en", at=11.5, start=11.0)
    recent.add(ANN, "u3", audio(1.5, 0.3), "three", "en", at=12.0, start=11.5)
    ctx = recent.context(ANN, "en", now=12.5)
    assert ctx is not None and ctx.text == "two three" and ctx.ids == ("u2", "u3")  # "one" would pass 4 s
    got = ctx.audio()
    assert len(got) == 2.5 * SAMPLE_RATE + 2 * PAUSE and ctx.seconds * SAMPLE_RATE == len(got)
    assert got[0] == np.float32(0.2) and got[SAMPLE_RATE] == 0.0  # "two", then a pause
    assert got[SAMPLE_RATE + PAUSE] == np.float32(0.3) and not got[-PAUSE:].any()  # "three", a pause; no Bob
    assert recent.context(("other room", "phone-a", "ann"), "en", now=12.5) is None


def test_only_the_same_language_and_recent_words():
    recent = RecentSpeech(seconds=4.0, max_age=60.0)
    recent.add(ANN, "u1", audio(1.0), "hallo", "de", at=0.0, start=-0.5)
    recent.add(ANN, "u2", audio(1.0), "hello", "en", at=1.0, start=0.5)
    ctx = recent.context(ANN, "en", now=2.0)
    assert ctx is not None and ctx.text == "hello"  # the German before it does not continue into English
    assert recent.context(ANN, "de", now=2.0) is None  # the latest words are not German
    assert recent.context(ANN, "en", now=61.5) is None  # a minute later: another conversation


def test_storage_is_bounded_per_voice_and_silent_voices_are_dropped():
    recent = RecentSpeech(seconds=4.0, max_age=60.0)
    for k in range(50):
        recent.add(ANN, f"u{k}", audio(1.0), f"w{k}", "en", at=float(k), start=k - 0.5)
    ctx = recent.context(ANN, "en", now=50.0)
    assert ctx is not None and ctx.text == "w47 w48 w49"  # 4 s, the pauses counted
    assert sum(len(s.audio) for s in recent._said[ANN]) <= 4 * SAMPLE_RATE
    recent.add(ANN, "long", audio(6.0), "a long one", "en", at=51.0, start=50.5)
    assert recent.context(ANN, "en", now=52.0) is None  # longer than a context: never cut (text ↔ audio)
    assert len(recent._said[ANN]) == 1  # the rest was dropped
    recent.add(BOB, "b1", audio(1.0), "later", "en", at=112.0, start=111.5)  # Ann silent for over a minute: forgotten
    assert list(recent._said) == [BOB]


def test_a_revision_replaces_its_pieces_with_one_segment_of_the_revised_text():
    recent = RecentSpeech(seconds=4.0)
    recent.add(ANN, "u1", audio(1.0), "before", "en", at=1.0, start=0.5)
    recent.add(ANN, "u2", audio(0.5), "pieces", "en", at=2.0, start=1.5)
    recent.add(ANN, "u3", audio(0.5), "of won", "en", at=3.0, start=2.5)
    recent.revise(ANN, ["u2", "u3"], audio(1.0, 0.5), "pieces of one", "en")
    ctx = recent.context(ANN, "en", now=3.5)
    assert ctx is not None and ctx.text == "before pieces of one" and ctx.ids == ("u1", "u2", "u3")
    assert len(ctx.audio()) == 2.0 * SAMPLE_RATE + 2 * PAUSE
    recent.add(ANN, "u4", audio(0.5), "after", "en", at=4.0, start=3.5)
    recent.revise(ANN, ["u1", "u4"], audio(1.5), "not adjacent", "en")  # words in between: the two are dropped
    ctx = recent.context(ANN, "en", now=4.5)
    assert ctx is not None and ctx.text == "pieces of one"
    recent.revise(ANN, ["gone"], audio(1.0), "unknown ids change nothing", "en")
    recent.revise(BOB, ["u2"], audio(1.0), "nor does another voice", "en")
    again = recent.context(ANN, "en", now=4.5)
    assert again is not None and again.text == ctx.text and again.ids == ctx.ids


def test_a_partly_dropped_turn_is_revised_whole():
    recent = RecentSpeech(seconds=4.0)
    for k in range(4):  # p0, p1 dropped as p2, p3 came
        recent.add(ANN, f"p{k}", audio(1.5), f"piece{k}", "en", at=float(k), start=k - 0.5)
    recent.revise(ANN, ["p0", "p1", "p2", "p3"], audio(6.0), "the whole turn", "en")
    assert [s.text for s in recent._said[ANN]] == ["the whole turn"]  # its audio and text, never a part of them
    recent.add(ANN, "next", audio(1.0), "next", "en", at=5.0, start=4.5)
    ctx = recent.context(ANN, "en", now=5.5)
    assert ctx is not None and ctx.text == "next"  # the 6 s turn does not fit a context


def test_refresh_gives_a_taken_context_the_text_listeners_hold_now():
    recent = RecentSpeech(seconds=4.0)
    recent.add(ANN, "u1", audio(0.5), "thank you again", "en", at=1.0, start=0.5)
    recent.add(ANN, "u2", audio(0.5), "soon", "en", at=2.0, start=1.5)
    taken = recent.context(ANN, "en", now=2.5)  # as the next turn's first piece went in
    assert taken is not None and taken.text == "thank you again soon"
    recent.revise(ANN, ["u1", "u2"], audio(1.0, 0.5), "fail again soon", "en")  # the previous turn's revision
    fresh = recent.refresh(ANN, taken)
    assert fresh.text == "fail again soon" and fresh.ids == ("u1", "u2")
    assert np.array_equal(fresh.audio()[:SAMPLE_RATE], audio(1.0, 0.5))  # the revised turn's own audio
    recent.add(ANN, "u3", audio(3.5), "much later", "en", at=3.0, start=2.5)  # the revised turn dropped from the store
    assert recent.refresh(ANN, taken) is taken  # kept as taken: its text still matches its audio


def test_another_phone_never_gives_a_voice_its_context():
    """The speaker service may label two people on two phones alike (similar voices), and one phone per voice off, each
    phone's copy of one voice's speech is transcribed with the same label: each phone keeps its own. (The key is the
    pipeline's to build: test_revisions.py checks that it holds the phone.)"""
    recent = RecentSpeech(seconds=4.0)
    ann_via_bob = ("hall", "phone-b", "ann")
    recent.add(ANN, "u1", audio(1.0), "good morning", "en", at=2.0, start=1.0)
    recent.add(ann_via_bob, "copy", audio(1.0), "good morning", "en", at=2.01, start=1.02)  # the other phone's copy
    recent.add(ANN, "u2", audio(1.0), "how are you", "en", at=4.0, start=3.0)
    ctx = recent.context(ANN, "en", now=5.0)
    assert ctx is not None and ctx.text == "good morning how are you" and ctx.ids == ("u1", "u2")
    ctx = recent.context(ann_via_bob, "en", now=5.0)
    assert ctx is not None and ctx.ids == ("copy",)


def test_a_segment_that_comes_out_of_order_is_not_kept_nor_its_own_context():
    """A copy one phone per voice stood by is processed after the phone's later segments when the kept copy was not
    delivered (babelfish/echoes.py)."""
    recent = RecentSpeech(seconds=4.0)
    recent.add(ANN, "u1", audio(1.0), "good morning", "en", at=2.0, start=1.0)
    recent.add(ANN, "u3", audio(1.0), "fine thanks", "en", at=6.0, start=5.0)
    ctx = recent.context(ANN, "en", now=6.1, before=3.0)  # u2 (3-4 s), transcribed after u3, asks: what ended first
    assert ctx is not None and ctx.ids == ("u1",)
    recent.add(ANN, "u2", audio(1.0), "how are you", "en", at=4.0, start=3.0)
    ctx = recent.context(ANN, "en", now=7.0)
    assert ctx is not None and ctx.ids == ("u1", "u3")


def test_a_rooms_voices_are_forgotten_with_it_and_silent_ones_after_a_while():
    recent = RecentSpeech(seconds=4.0, max_age=60.0)
    carl = ("hall", "phone-a", "carl")  # a second voice on Ann's phone
    recent.add(ANN, "u1", audio(1.0), "hello", "en", at=1.0, start=0.0)
    recent.add(carl, "c1", audio(1.0), "hey", "en", at=2.0, start=1.5)
    recent.add(("kitchen", "phone-k", "ann"), "k1", audio(1.0), "hi", "en", at=1.0, start=0.0)
    recent.forget_room("hall")
    assert recent.context(ANN, "en", now=3.0) is None and recent.context(carl, "en", now=3.0) is None
    assert recent.context(("kitchen", "phone-k", "ann"), "en", now=3.0) is not None
    recent.add(BOB, "b1", audio(1.0), "later", "en", at=62.0, start=61.0)  # the kitchen silent for over a minute
    assert list(recent._said) == [BOB]


def test_refresh_keeps_a_context_whose_turn_was_heard_in_another_language():
    recent = RecentSpeech(seconds=4.0)
    recent.add(ANN, "u1", audio(0.5), "si", "it", at=1.0, start=0.5)
    taken = recent.context(ANN, "it", now=1.5)
    assert taken is not None
    recent.revise(ANN, ["u1"], audio(0.5), "sí", "es")
    assert recent.refresh(ANN, taken) is taken
