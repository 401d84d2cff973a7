"""What each voice said last: the context a revision decodes their next turn with.

Whisper base decodes a short turn alone poorly: "Fail again." came out as "Thank you again", "Où est la gare?" as
"Willaga ?". Decoded as the continuation of the same speaker's previous words (their audio in the window before the
turn, the text listeners hold for it forced as the decoder's prefix), those came out right (docs/benchmarks.md, "The
speaker's own context").

Kept per voice: a room, a phone and the speaker label a transcript got there. One phone may carry several voices, so
the label splits a phone's speech; it is as right as that label (an utterance too short for the speaker service to
embed, under 1.5 s by default, is labelled with its phone's last voice). The phone splits a label: the service can
give two people on two phones one label (resemblyzer scores different voices up to 0.76 here, and Pico's voices
0.80-0.94, against its 0.72 bar), and then each would be decoded after the other's words, or, in two languages, with
none. The price: a voice whose speech one phone per voice keeps from another phone starts a context there.
Per voice, its latest segments, whole (the text must match the audio), up to
`seconds` of audio with the pauses put between them (4 s was as good as 8 s; with 20 s Whisper skipped the start of
the new words), each with the text listeners hold for it (a revision's text replaces its pieces').

Bounded: per voice, `seconds` of audio plus the newest segment or revised turn (at most the turn limit, 28 s by
default); a voice silent for `max_age` is dropped at the next segment added or context asked for (a phone that has
left too: a phone that comes back gets a new client id, so a new context), and a room's voices when the room is gone
(`forget_room`). Only the event loop touches it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from babelfish.engines.base import SAMPLE_RATE, Context
from babelfish.rooms import Participant

CONTEXT_SECONDS = 4.0
PAUSE_SECONDS = 0.3  # put after each segment of a context (the segmenter cuts after 0.3 s of silence)
MAX_AGE_SECONDS = 60.0  # words said longer ago are another conversation

Voice = tuple[str, str, str]  # (room name, client id, speaker id)


def voice_of(who: Participant, speaker_id: str) -> Voice:
    """The voice a transcript labelled `speaker_id` came from, through `who`'s phone."""
    return who.room_name, who.id, speaker_id


@dataclass(frozen=True, eq=False)
class _Said:
    ids: tuple[str, ...]  # one utterance, or the pieces of a revised turn
    audio: np.ndarray
    text: str
    language: str
    at: float  # time.monotonic() of its speech end

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class RecentSpeech:
    def __init__(self, seconds: float = CONTEXT_SECONDS, max_age: float = MAX_AGE_SECONDS) -> None:
        self.seconds = seconds
        self.max_age = max_age
        self._said: dict[Voice, deque[_Said]] = {}

    def add(
        self, voice: Voice, utterance_id: str, audio: np.ndarray, text: str, language: str, at: float, start: float
    ) -> None:
        """A transcribed segment of `voice`, with the text listeners got for it; `start` and `at` its speech's start
        and end. One whose speech began before the voice's latest ended came out of order (a copy one phone per voice
        stood by, processed after the phone's later segments when the kept copy was not delivered: babelfish/echoes.py):
        not kept."""
        self._expire(at)
        said = self._said.setdefault(voice, deque())
        if said and said[-1].at > start:
            return
        said.append(_Said((utterance_id,), audio, text, language, at))
        self._trim(said)

    def revise(self, voice: Voice, ids: Sequence[str], audio: np.ndarray, text: str, language: str) -> None:
        """A revision replaced the texts of `ids` (one turn, `audio` its joined audio) with `text`. The entries still
        kept (the oldest, when some were dropped) become one: a turn's audio and text cannot be split into pieces."""
        said = self._said.get(voice)
        at, adjacent = _holding(said, ids)
        if said is None or not at:
            return
        entries = list(said)
        said.clear()
        if not adjacent:  # something else in between: the turn's words cannot be told apart
            said.extend(s for i, s in enumerate(entries) if i not in at)
            return
        merged = _Said(tuple(ids), audio, text, language, entries[at[-1]].at)
        said.extend([*entries[: at[0]], merged, *entries[at[-1] + 1 :]])
        self._trim(said)

    def context(self, voice: Voice, language: str, now: float, before: float | None = None) -> Context | None:
        """The voice's latest segments in `language` (whole ones, up to `seconds` with the pauses after them), said
        within `max_age` of `now` and ended by `before` (the new segment's start: a later one came after it); None when
        there are none."""
        self._expire(now)
        said = self._said.get(voice)
        if not said:
            return None
        chosen: list[_Said] = []
        total = 0.0
        for s in reversed(said):
            if before is not None and s.at > before:
                continue
            if s.language != language or now - s.at > self.max_age or not s.text.strip():
                break
            if total + s.seconds > self.seconds:
                break
            chosen.insert(0, s)
            total += s.seconds + PAUSE_SECONDS
        return _context(chosen, language) if chosen else None

    def refresh(self, voice: Voice, context: Context) -> Context:
        """`context` with the text listeners hold now: a revision sent since it was taken replaced its pieces' text.
        As it was when its segments are no longer kept whole (or no longer fit)."""
        said = self._said.get(voice)
        at, adjacent = _holding(said, context.ids)
        if said is None or not at or not adjacent:
            return context
        entries = [said[i] for i in at]
        if not set(context.ids) <= {i for s in entries for i in s.ids}:
            return context
        if any(s.language != context.language for s in entries):  # a revision heard another language
            return context
        fresh = _context(entries, context.language)
        return fresh if fresh.seconds <= self.seconds + PAUSE_SECONDS else context

    def forget_room(self, room: str) -> None:
        """The room is gone: what its voices said is no one's context any more."""
        for voice in [v for v in self._said if v[0] == room]:
            del self._said[voice]

    def _expire(self, now: float) -> None:
        for voice in [v for v, said in self._said.items() if now - said[-1].at > self.max_age]:
            del self._said[voice]

    def _trim(self, said: deque[_Said]) -> None:
        """Drop the oldest entries beyond `seconds` of audio; the newest stays whatever its length (a revision may
        still merge it)."""
        while len(said) > 1 and sum(s.seconds for s in said) > self.seconds:
            said.popleft()


def _holding(said: deque[_Said] | None, ids: Sequence[str]) -> tuple[list[int], bool]:
    """The positions of the entries holding any of `ids`, and whether they are adjacent (nothing said between them)."""
    at = [i for i, s in enumerate(said or ()) if set(s.ids) & set(ids)]
    return at, bool(at) and at[-1] - at[0] + 1 == len(at)


def _context(entries: Sequence[_Said], language: str) -> Context:
    return Context(
        tuple(s.audio for s in entries),
        " ".join(s.text.strip() for s in entries),
        language,
        tuple(i for s in entries for i in s.ids),
        PAUSE_SECONDS,
    )
