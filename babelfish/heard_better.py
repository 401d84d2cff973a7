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

import asyncio
import logging
from dataclasses import replace

import numpy as np

from babelfish.echoes import (
    Copy,
    EchoConfig,
    Echoes,
    Hearing,
    better,
    covers,
    envelopes,
    make_copy,
    open_t0,
    same_speech,
)
from babelfish.engines.base import SAMPLE_RATE
from babelfish.segmenter import WINDOW, OpenSegment, ReadAhead, Segment

log = logging.getLogger(__name__)
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
    segment = Segment(heard.audio, open_t0(heard) + (int(voiced[-1]) + 1) * STEP, "silence", heard.speech_probs,
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


def weigh(
    client_id: str, heard: ReadAhead | OpenSegment, copies: list[tuple[Copy, bool]],
    hearing: list[tuple[str, Hearing]], cfg: EchoConfig,
) -> str | None:  # fmt: skip
    """`heard_better` for a phone's pause an early read would take, or its open speech a partial would decode (in a
    worker thread)."""
    if isinstance(heard, ReadAhead):
        mine: Copy | None = ahead_copy(client_id, heard, cfg.vad_threshold)
    else:
        mine = open_copy(client_id, heard, cfg.vad_threshold)
    return None if mine is None else heard_better(mine, copies, hearing, cfg)


async def kept_elsewhere(echoes: Echoes, room: str, client_id: str, heard: ReadAhead | OpenSegment) -> str | None:
    """On the event loop: the phone of `room` that hears `client_id`'s speech better, if any (`weigh`, in a worker
    thread). A phone alone in its room asks nothing; a failure answers None: this is an economy, and without an
    answer the phone reads as before."""
    copies, hearing = echoes.rivals(room, client_id)
    if not (copies or hearing):
        return None
    try:
        return await asyncio.to_thread(weigh, client_id, heard, copies, hearing, echoes.config)
    except Exception:
        log.exception("weighing %s's speech against the room's other phones failed", client_id)
        return None
