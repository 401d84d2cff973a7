"""Measured translation quality per route (chrF on everyday sentences), so the router picks routes by quality.

The table (mt_quality.json, beside this file) is written by bench/bench_mt_quality.py: for each ordered language pair,
the chrF of every direct and pivot route the installed backends offered. Routes are keyed as their hops,
"backend:src-tgt", joined by "+". Reading it needs nothing beyond the standard library.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path

from babelfish.engines.cascade.router import Hop, Route

log = logging.getLogger(__name__)

QUALITY_FILE = Path(__file__).with_name("mt_quality.json")


def route_key(route: Iterable[Hop]) -> str:
    return "+".join(f"{h.backend}:{h.src}-{h.tgt}" for h in route)


def parse_route(key: str) -> Route:
    hops = []
    for part in key.split("+"):
        backend, _, pair = part.rpartition(":")
        src, _, tgt = pair.partition("-")
        hops.append(Hop(backend, src, tgt))
    return tuple(hops)


def measured_routes(routes: dict[str, dict[str, float]]) -> dict[tuple[str, str], list[tuple[float, Route]]]:
    """{"src-tgt": {route key: chrF}} -> {(src, tgt): [(chrF, route), ...] best first}."""
    table: dict[tuple[str, str], list[tuple[float, Route]]] = {}
    for pair, scores in routes.items():
        src, _, tgt = pair.partition("-")
        ranked = [(float(score), parse_route(key)) for key, score in scores.items()]
        table[(src, tgt)] = sorted(ranked, key=lambda r: -r[0])
    return table


def load_memory(path: Path = QUALITY_FILE) -> dict[tuple[str, str, str], float]:
    """MiB each measured hop keeps running, {(backend, src, tgt): MiB}; empty if the table has none or is unreadable."""
    try:
        table = json.loads(path.read_text()).get("pipeline_mib", {})
        return {(h.backend, h.src, h.tgt): float(mib) for key, mib in table.items() for h in parse_route(key)}
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("pipeline memory table %s not used (%s): routes chosen by chrF alone", path, exc)
        return {}


# An apertium pair with no measured memory (one installed beyond the shipped ones): the shipped pairs' median
# (112.5 MiB), when the table has none.
DEFAULT_APERTIUM_MIB = 112.5


def apertium_default_mib(memory: Mapping[tuple[str, str, str], float]) -> float:
    """What routing charges for an apertium pair missing from the memory table: the measured pairs' median, a
    constant for the server's lifetime."""
    mibs = [mib for (backend, _, _), mib in memory.items() if backend == "apertium"]
    return statistics.median(mibs) if mibs else DEFAULT_APERTIUM_MIB


def load_quality(path: Path = QUALITY_FILE) -> dict[tuple[str, str], list[tuple[float, Route]]]:
    """The shipped table. An unreadable one is logged and ignored: routes are then chosen by hop count."""
    try:
        return measured_routes(json.loads(path.read_text())["routes"])
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        log.warning("translation quality table %s not used (%s): routes chosen by hop count", path, exc)
        return {}
