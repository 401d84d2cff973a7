"""Choose and load the engine the settings ask for (`auto`: seamless when its weights are local)."""

from __future__ import annotations

import logging
import time

from babelfish.config import Settings
from babelfish.engines.base import Engine
from babelfish.engines.seamless import seamless_available, seamless_weights

log = logging.getLogger(__name__)


def choose(settings: Settings) -> tuple[str, str]:
    """The engine to run and why, in words for the log, /healthz and /metrics."""
    if settings.engine == "test":
        return "test", "selected with --engine test: no models, deterministic output (not for real conversations)"
    if settings.engine != "auto":
        return settings.engine, f"selected with --engine {settings.engine}"
    weights = seamless_weights(settings)
    if weights is None:
        return (
            "cascade",
            f"auto: no local SeamlessM4T weights for {settings.seamless_model!r}, using the offline cascade",
        )
    if not seamless_available():
        return "cascade", f"auto: SeamlessM4T weights found at {weights}, but torch/transformers are not installed"
    return "seamless", f"auto: SeamlessM4T weights found at {weights}"


def load_engine(settings: Settings) -> Engine:
    """Load the chosen engine; slow (seconds), so call it from a worker thread."""
    name, reason = choose(settings)
    log.info("engine: %s (%s)", name, reason)
    started = time.perf_counter()
    engine: Engine
    if name == "test":
        from babelfish.engines.fake import FakeEngine

        engine = FakeEngine(reason=reason)
    elif name == "cascade":
        from babelfish.engines.cascade import CascadeEngine

        engine = CascadeEngine.load(settings, reason=reason)
    else:
        from babelfish.engines.seamless import SeamlessEngine

        engine = SeamlessEngine.load(settings, reason=reason)
    log.info("engine %s loaded in %.1f s", name, time.perf_counter() - started)
    return engine
