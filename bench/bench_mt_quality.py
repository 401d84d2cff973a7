"""Translation quality per route: chrF (sacrebleu) of every direct and pivot route the installed text backends offer
between en, es, pt, fr, it and ca, on the 32 everyday sentences of bench/data/conversation.json.

Run: python -m bench.bench_mt_quality [--write babelfish/engines/cascade/mt_quality.json]
Prints, per ordered pair, the route the router picks with this table (best chrF, less a margin per extra hop) against
the fewest-hops route it picked before. `--write`
stores every measured route's chrF in the package, where the router reads it (runtime needs no sacrebleu).
Needs the Debian apertium pairs from scripts/setup.sh and sacrebleu (requirements_test.txt).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from itertools import permutations
from pathlib import Path

from babelfish.engines.cascade.mt import Apertium, FastTranslate, Translator
from babelfish.engines.cascade.quality import QUALITY_FILE, measured_routes, route_key
from babelfish.engines.cascade.router import Hop, Route, Router

ROOT = Path(__file__).resolve().parents[1]

LANGUAGES = ("en", "es", "pt", "fr", "it", "ca")
DATA = ROOT / "bench" / "data" / "conversation.json"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", type=Path, help=f"store the table (the package's is {QUALITY_FILE.relative_to(ROOT)})")
    ap.add_argument("--max-hops", type=int, default=3)
    args = ap.parse_args()

    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    data = json.loads(DATA.read_text())
    backends: list[Translator] = [FastTranslate()]
    apertium = Apertium.detect()
    if apertium is not None:
        backends.append(apertium)
    by_name = {b.name: b for b in backends}
    edges: dict[str, list[Hop]] = {}
    for b in backends:
        for src, tgt in sorted(b.pairs()):
            edges.setdefault(src, []).append(Hop(b.name, src, tgt))

    memo: dict[tuple[str, str, str, str], str] = {}

    def run(hop: Hop, text: str) -> str:
        key = (hop.backend, hop.src, hop.tgt, text)
        if key not in memo:
            memo[key] = by_name[hop.backend].translate(text, hop.src, hop.tgt)
        return memo[key]

    table: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for src, tgt in permutations(LANGUAGES, 2):
        scores: dict[str, float] = {}
        for route in routes(edges, src, tgt, args.max_hops):
            outs = []
            for text in data[src]:
                for hop in route:
                    text = run(hop, text)
                outs.append(text)
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
    print(f"\n{sum(len(v) for v in table.values())} routes, {len(memo)} hop calls, {elapsed:.0f} s")
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
    for b in backends:
        close = getattr(b, "close", None)
        if close is not None:
            close()


if __name__ == "__main__":
    main()
