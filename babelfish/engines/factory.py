"""Choose and load the engine the settings ask for (`auto`: seamless when its weights are local)."""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

from babelfish.config import Settings
from babelfish.engines.base import Engine

log = logging.getLogger(__name__)


def seamless_weights(settings: Settings) -> Path | None:
    """The local folder holding SeamlessM4T weights, if any: a path, a snapshot in the HF cache, or a model fetched
    into the data dir (by name; with the default name, the best one fetched)."""
    candidate = Path(settings.seamless_model).expanduser()
    if (candidate / "config.json").is_file():
        return candidate
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return _fetched_seamless(settings)
    try:
        found = try_to_load_from_cache(settings.seamless_model, "config.json")
    except ValueError:  # not a repo id (e.g. a folder path that does not exist)
        found = None
    return Path(found).parent if isinstance(found, str) else _fetched_seamless(settings)


def _fetched_seamless(settings: Settings) -> Path | None:
    from babelfish.model_store import find, stored

    named = find(settings.data_dir, "seamless", settings.seamless_model)
    if named is None and settings.seamless_model == Settings.model_fields["seamless_model"].default:
        named = next(iter(stored(settings.data_dir, "seamless")), None)  # fetched, no flag given: use it
    return named.folder if named is not None else None


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


def seamless_available() -> bool:
    """Whether the seamless engine can run here (it needs torch and transformers)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))


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
