"""The pipeline hands the engine the segmenter's speech probabilities, and counts repaired decoder loops and turns
cut in a crowd."""

from __future__ import annotations

import time

import numpy as np

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.base import Transcript, Utterance
from babelfish.engines.fake import FakeEngine
from babelfish.segmenter import WINDOW
from tests.audio import frames, pcm16
from tests.engines.conversation_audio import at_snr, babble, pico
from tests.test_ws import join, receive_until, speak
from tests.wsclient import BoundedClient


class Looping(FakeEngine):
    """The test engine, reporting every transcript as a repaired loop and keeping what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Utterance] = []

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        if not utterance.revision:  # the turn decoded again once it ends: not what the pipeline passed on
            self.seen.append(utterance)
        tr = super().transcribe(utterance)
        return None if tr is None else Transcript(tr.text, tr.language, repaired=True)


def test_speech_probs_reach_the_engine_and_loops_are_counted(tmp_path, speech_pcm):
    engine = Looping()
    app = create_app(Settings(data_dir=tmp_path), engine=engine)
    with BoundedClient(app) as c, c.websocket_connect("/ws/client") as a:
        join(a, "A", "en")
        speak(a, speech_pcm)
        receive_until(a, "transcript")
        (u,) = engine.seen
        assert u.speech_probs is not None and len(u.speech_probs) == len(u.audio) // WINDOW
        assert float(np.mean(u.speech_probs >= 0.5)) > 0.6  # real speech: mostly voiced windows
        deadline = time.monotonic() + 10
        while c.get("/metrics").json()["decoder_loops"] != 1:
            assert time.monotonic() < deadline, "decoder loop not counted"
            time.sleep(0.05)
        assert "babelfish_decoder_loops_total 1.0" in c.get("/metrics?format=prometheus").text


def test_a_turn_said_in_a_crowd_that_never_stops_ends(tmp_path):
    """An open microphone in a café: six voices 10 dB under the speaker before, during and after "Good morning.".
    The crowd never stops, and Silero takes it for speech; the turn still ends on its own (no end_utterance), and
    /metrics counts it as cut in a crowd."""
    turn = pico("Good morning.")
    crowd = babble(11.0, 0.5, np.random.default_rng(5), talkers=6)
    track = at_snr(crowd, float(np.mean(turn**2)), 10)
    at = 5 * 16000
    track[at : at + len(turn)] += turn
    app = create_app(Settings(data_dir=tmp_path), engine=FakeEngine())
    with BoundedClient(app) as c, c.websocket_connect("/ws/client") as a:
        join(a, "A", "en")
        for frame in frames(pcm16(track)):  # the crowd goes on after the turn: without the gate, no cut before 15 s
            a.send_bytes(frame)
        receive_until(a, "transcript", seconds=10)
        deadline = time.monotonic() + 10
        while c.get("/metrics").json()["utterances_in_crowd"] < 1:
            assert time.monotonic() < deadline, "the cut in a crowd was not counted"
            time.sleep(0.05)
        assert "babelfish_utterances_in_crowd_total" in c.get("/metrics?format=prometheus").text
