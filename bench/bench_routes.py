"""A multi-language room's translation routes: their quality, their pipelines' memory, and the churn under the caps.

    python -m bench.bench_routes [--langs en,es,fr,pt,it,de] [--utterances 120] [--configs 0:8:2048,1.5:16:2560]

Each config is `route_memory_weight:apertium_pipelines:apertium_memory_mib`; the default compares routing by chrF
alone under the caps before the memory weight (weight 0, 8 pipelines, 2048 MiB) with the shipped defaults. For each
config it prints:

- the routes every ordered pair of the room takes, from the shipped tables alone (no process started): the
  apertium pipelines they need and their memory (mt_quality.json's measured USS), and the mean chrF of the pairs
  whose chrF is measured (a German speaker is heard through Whisper's English, so de→x has only a guess);
- a replay of the room through the real backends: `--utterances` utterances, each by a speaker drawn at random
  (seeded) and translated into every other language of the room (4 targets at once, as the engine does), back to
  back. German speakers' utterances start from the English sentence, standing in for Whisper's translate task.
  Printed: pipeline starts and evictions (all, and in the second half, once the room is warm), the server's child
  processes' private memory (USS) at most, and the time to translate an utterance into every target.

Then the pairs whose route differs between the first two configs, with both routes' chrF and memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import permutations
from pathlib import Path

import psutil

from babelfish.engines.cascade.mt import Apertium, FastTranslate, Translator
from babelfish.engines.cascade.quality import load_memory, load_quality, route_key
from babelfish.engines.cascade.router import Memo, Route, Router

DATA = Path(__file__).with_name("data") / "conversation.json"


class WhisperStandIn:
    """Whisper's audio→English hop for the route choice; the replay starts such routes from the English sentence."""

    name, quality, target = "whisper-translate", 0.8, "en"

    def __init__(self, langs: set[str]) -> None:
        self._langs = langs

    def sources(self) -> set[str]:
        return self._langs

    def translate_audio(self, audio: object, src: str) -> str:
        raise NotImplementedError


def _children_mib() -> float:
    total = 0
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += p.memory_full_info().uss
    return total / 2**20


def _routes(router: Router, langs: list[str]) -> dict[tuple[str, str], Route]:
    return {(a, b): r for a, b in permutations(langs, 2) if (r := router.route(a, b)) is not None}


def _translate(router: Router, route: Route, *, text: str, memo: Memo) -> str:
    cur = text
    for hop in route:
        if hop.from_audio:
            continue  # the English sentence stands in for Whisper's translation
        cur = memo.get((hop.backend, hop.src, hop.tgt, cur), lambda h=hop, t=cur: router.text[h.backend].translate(
            t, h.src, h.tgt))  # fmt: skip
    return cur


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--langs", default="en,es,fr,pt,it,de")
    ap.add_argument("--utterances", type=int, default=120, help="replayed per config (0: routes and memory only)")
    ap.add_argument("--configs", default="0:8:2048,1.5:16:2560", help="weight:pipelines:memory_mib, comma-separated")
    args = ap.parse_args()
    langs = args.langs.split(",")
    data = json.loads(DATA.read_text())
    measured, memory = load_quality(), load_memory()
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; room {'/'.join(langs)}")
    fast = FastTranslate()
    chosen: list[dict[tuple[str, str], Route]] = []
    routers: list[Router] = []
    try:
        for config in args.configs.split(","):
            weight, pipelines, mib = (float(x) for x in config.split(":"))
            apertium = Apertium.detect(max_pipelines=int(pipelines), memory_mib=mib, timeout=60)
            assert apertium is not None, "apertium is not installed (scripts/setup.sh)"
            backends: list[Translator] = [fast, apertium]
            router = Router(backends, [WhisperStandIn(set(langs))], measured=measured, memory=memory,
                            memory_weight=weight)  # fmt: skip
            routes = _routes(router, langs)
            chosen.append(routes)
            routers.append(router)
            hops = {h for r in routes.values() for h in r if h.backend == "apertium"}
            scored = [router.score(r) for (a, _), r in routes.items() if a in measured_sources(measured)]
            print(f"\nweight {weight:g}, caps {int(pipelines)} pipelines / {mib:g} MiB:")
            table_mib = sum(memory.get((h.backend, h.src, h.tgt), 0.0) for h in hops)
            print(f"  routes: {len(hops)} apertium pipelines, {table_mib:.0f} MiB (table); mean chrF "
                  f"{statistics.mean(scored):.1f} over {len(scored)} measured pairs")  # fmt: skip
            try:
                replay(router, apertium, routes, langs, data, args.utterances)
            finally:
                apertium.close()
    finally:
        fast.close()
    if len(chosen) >= 2:
        before, after = chosen[0], chosen[1]
        r0 = routers[0]  # scores and memory only (the weight plays no part): it knows every hop either config took
        print("\n| pair | route (first config) | chrF | MiB | route (second) | chrF | MiB |")
        print("|---|---|---|---|---|---|---|")
        for pair in sorted(before):
            a, b = before[pair], after.get(pair)
            if b is not None and a != b:
                print(f"| {pair[0]}→{pair[1]} | {route_key(a)} | {r0.score(a):.1f} | {r0.memory_mib(a):.0f} | "
                      f"{route_key(b)} | {r0.score(b):.1f} | {r0.memory_mib(b):.0f} |")  # fmt: skip


def measured_sources(measured: object) -> set[str]:
    return {src for src, _ in measured}  # type: ignore[attr-defined]


def replay(
    router: Router,
    apertium: Apertium,
    routes: dict[tuple[str, str], Route],
    langs: list[str],
    data: dict[str, list[str]],
    utterances: int,
) -> None:
    if utterances <= 0:
        return
    rng = random.Random(0)
    times: list[float] = []
    peak = 0.0
    half: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for i in range(utterances):
            if i == utterances // 2:
                half = apertium.counters()
            src = rng.choice(langs)
            text = data["en" if src == "de" else src][rng.randrange(len(data["en"]))]
            memo = Memo()
            targets = [r for (a, _), r in routes.items() if a == src]
            t0 = time.perf_counter()
            list(pool.map(partial(_translate, router, text=text, memo=memo), targets))
            times.append(time.perf_counter() - t0)
            peak = max(peak, _children_mib())
    end = apertium.counters()
    late = {k: end[k] - half.get(k, 0) for k in end}
    q = statistics.quantiles(times, n=20) if len(times) > 1 else times * 19  # one utterance: its time is every quantile
    print(f"  replay of {utterances} utterances: pipeline events {end}; second half {late}")
    p50 = statistics.median(times)
    print(f"  child processes' USS at most {peak:.0f} MiB; utterance into every target: p50 {p50 * 1000:.0f} ms, "
          f"p95 {q[18] * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
