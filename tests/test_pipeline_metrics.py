"""Translation pipeline churn (apertium starts, evictions, idle stops) is exported in /metrics, JSON and Prometheus."""

from __future__ import annotations

from babelfish.app import create_app
from babelfish.config import Settings
from babelfish.engines.cascade.engine import CascadeEngine, Voices
from babelfish.engines.cascade.router import Router
from babelfish.engines.fake import FakeEngine
from tests.engines.test_cascade_router import FakeAsr, FakeMT
from tests.wsclient import BoundedClient


class Churning(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.events = {"start": 0, "eviction": 0, "idle_stop": 0}

    def pipeline_events(self) -> dict[str, int]:
        return dict(self.events)


def test_pipeline_events_are_read_at_each_scrape(tmp_path):
    engine = Churning()
    app = create_app(Settings(data_dir=tmp_path), engine=engine, embedder=None)
    with BoundedClient(app) as c:
        assert c.get("/metrics").json()["mt_pipelines"] == {"start": 0, "eviction": 0, "idle_stop": 0}
        engine.events.update(start=7, eviction=3)
        assert c.get("/metrics").json()["mt_pipelines"] == {"start": 7, "eviction": 3, "idle_stop": 0}
        text = c.get("/metrics?format=prometheus").text
        assert 'babelfish_mt_pipeline_events_total{event="start"} 7.0' in text
        assert 'babelfish_mt_pipeline_events_total{event="eviction"} 3.0' in text


def test_an_engine_without_pipelines_exports_none(tmp_path):
    app = create_app(Settings(data_dir=tmp_path), engine=FakeEngine(), embedder=None)
    with BoundedClient(app) as c:
        assert c.get("/metrics").json()["mt_pipelines"] == {}
        assert "babelfish_mt_pipeline_events_total{" not in c.get("/metrics?format=prometheus").text


class Counting(FakeMT):
    def __init__(self, name: str, pairs: set[tuple[str, str]], events: dict[str, int]) -> None:
        super().__init__(name, pairs)
        self.events = events

    def counters(self) -> dict[str, int]:
        return dict(self.events)


def test_cascade_sums_the_events_of_the_backends_that_count_them():
    router = Router([
        Counting("a", {("en", "es")}, {"start": 2, "eviction": 1}),
        FakeMT("plain", {("es", "en")}),  # counts nothing: skipped
        Counting("b", {("en", "fr")}, {"start": 3, "idle_stop": 4}),
    ])  # fmt: skip
    engine = CascadeEngine(FakeAsr(), router, Voices([]))
    try:
        assert engine.pipeline_events() == {"start": 5, "eviction": 1, "idle_stop": 4}
    finally:
        engine.close()
