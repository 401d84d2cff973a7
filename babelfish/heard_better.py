"""Whether another phone of the room hears a speaker's words better than this one, before this phone spends the
engine on them: an early read of its pause (babelfish/early.py) or a partial of its open speech (babelfish/partials.py).

At a table every phone hears every speaker. One phone per voice (babelfish/echoes.py) keeps the copy of the phone
nearest the speaker and processes no other, but only once each phone's VAD has cut its copy: without this, a table
of four read every turn ahead of its cut four times, the copies that were then dropped took the engine from the one
that was kept, and partials showed a speaker's words under the names of the people whose phones overheard them
(measured in docs/benchmarks.md). So the pause or the open speech is weighed as its copy will be: against the room's
copies from other phones and the speech other phones of this server hear now, by the same rules (`covers`, `better`,
`same_speech`). A copy that will be heard elsewhere is not read ahead, nor streamed; should it be kept after all, its
cut reads it, a little later. A wrong guess costs time, never words."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from babelfish.echoes import Copy, EchoConfig, Hearing, better, covers, envelopes, make_copy, same_speech
from babelfish.engines.base import SAMPLE_RATE
from babelfish.segmenter import WINDOW, OpenSegment, ReadAhead, Segment

STEP = WINDOW / SAMPLE_RATE
# Envelopes are compared over the last seconds of each copy only: plenty to tell the same speech from another person
# (one phone per voice judges open speech on 0.8 s), and a long turn's partials do not cost more and more.
TAIL_SECONDS = 3.0


def ahead_copy(client_id: str, ahead: ReadAhead, vad_threshold: float) -> Copy:
    """The copy a pause's cut will give, as far as it was heard (its audio up to where the early read stops)."""
    n = ahead.read_until
    heard = Segment(ahead.audio[:n], ahead.speech_end, "silence", ahead.speech_probs[: n // WINDOW],
                    floor_db=ahead.floor_db)  # fmt: skip
    return make_copy(client_id, heard, vad_threshold)


def open_copy(client_id: str, heard: OpenSegment, vad_threshold: float) -> Copy | None:
    """A phone's open speech so far as a copy on the arrival timeline (placed as `echoes.judge` places it); None
    while none of it is voiced."""
    probs = heard.timing_probs
    voiced = np.flatnonzero(probs >= max(0.05, vad_threshold - 0.15))
    if not len(voiced):
        return None
    # Its first voiced window arrived at `started`, after the preroll; make_copy places a copy by its last one.
    t0 = heard.started - (len(probs) - round(heard.speech_seconds / STEP) + 1) * STEP
    segment = Segment(heard.audio, t0 + (int(voiced[-1]) + 1) * STEP, "silence", heard.speech_probs,
                      heard_probs=heard.heard_probs, floor_db=heard.floor_db)  # fmt: skip
    return make_copy(client_id, segment, vad_threshold)


def heard_better(
    mine: Copy, copies: list[tuple[Copy, bool]], hearing: list[tuple[str, Hearing]], cfg: EchoConfig
) -> str | None:
    """In a worker thread: the phone whose copy one phone per voice will keep instead of `mine`, or None.

    `copies`: the room's copies from other phones that may still be kept (`Echoes.rivals`), each with whether it was
    (a kept copy replaces `mine` whatever their ranks, as in the verdict; an undecided one only when it is `better`);
    `hearing`: other phones of this server mid-utterance, what each heard so far. Envelopes are compared last, and
    only against a rival that would win."""
    tail: list[Copy] = []  # mine's last seconds, made once and only if a rival would win
    # The rivals' tails compared, kept until the end: same_speech caches by id(), and a freed copy's id is reused.
    compared: list[Copy] = []

    def same(rival: Copy) -> bool:
        tail[:] = tail or [_tail(mine)]
        compared.append(_tail(rival))
        return same_speech(tail[0], compared[-1], cfg)

    for c, kept in copies:
        if covers(c, mine) >= cfg.min_coverage and (kept or better(c, mine)) and same(c):
            return c.client_id
    for who, hears in hearing:
        heard = hears()
        rival = open_copy(who, heard, cfg.vad_threshold) if heard is not None else None
        if rival is not None and covers(rival, mine) >= cfg.min_coverage and better(rival, mine) and same(rival):
            return who
    return None


def _tail(c: Copy) -> Copy:
    """`c` for comparing envelopes: those of its last TAIL_SECONDS only (a copy known by its features, from another
    server, as it is)."""
    if c.segment is None or len(c.segment.audio) <= TAIL_SECONDS * SAMPLE_RATE:
        return c
    skip = len(c.segment.audio) - int(TAIL_SECONDS * SAMPLE_RATE)
    return replace(c, features=envelopes(c.segment.audio[skip:]), t0=c.t0 + skip / SAMPLE_RATE, matches={})


def pause_heard_better(
    client_id: str, ahead: ReadAhead, copies: list[tuple[Copy, bool]], hearing: list[tuple[str, Hearing]],
    cfg: EchoConfig,
) -> str | None:  # fmt: skip
    """`heard_better` for a phone's pause an early read would take (in a worker thread)."""
    return heard_better(ahead_copy(client_id, ahead, cfg.vad_threshold), copies, hearing, cfg)


def speech_heard_better(
    client_id: str, heard: OpenSegment, copies: list[tuple[Copy, bool]], hearing: list[tuple[str, Hearing]],
    cfg: EchoConfig,
) -> str | None:  # fmt: skip
    """`heard_better` for a phone's open speech a partial would decode (in a worker thread)."""
    mine = open_copy(client_id, heard, cfg.vad_threshold)
    return None if mine is None else heard_better(mine, copies, hearing, cfg)
