"""Server metrics: JSON for people and dashboards, Prometheus text for scrapers.

Latency is measured per utterance from the end of the speech (arrival of its last voiced frame) to
the moment each result is ready to send. Prometheus gets histograms; the JSON view keeps a bounded
window of recent samples to report p50/p95 directly.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Literal

import numpy as np
import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from babelfish.cluster.inbound import REASONS as CLUSTER_IGNORED

Stage = Literal["transcript", "translation", "audio"]
STAGES: tuple[Stage, ...] = ("transcript", "translation", "audio")
# Where an utterance's time goes (babelfish/pipeline.py): speech end → cut by the VAD (endpointing), waiting for an
# inference worker (queue), the engine's transcribe (asr), each translation (mt) and each voice (tts), and a result
# from ready to its listeners' send queues (delivery).
PipelineStage = Literal["endpointing", "queue", "asr", "mt", "tts", "delivery"]
PIPELINE_STAGES: tuple[PipelineStage, ...] = ("endpointing", "queue", "asr", "mt", "tts", "delivery")
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
WINDOW = 1000  # recent samples kept per stage for the JSON percentiles
# What became of each revised turn (babelfish/revisions.py): a revision sent, the re-decode said the same words
# (unchanged), the engine kept the words listeners hold as its own were not clearly better (held, one-piece turns,
# whatever the reviser's own rules would have said), it lost too many (rejected), it was shed by the engine queue
# (late, busy, full) or its pieces were not done with in time (late), nobody was left to tell or the server drains
# (gone), or it failed (error).
REVISION_OUTCOMES = ("sent", "unchanged", "held", "rejected", "shed_late", "shed_busy", "shed_full", "gone", "error")
# Why a request or connection was turned away (babelfish.gate and the join checks); each is exported from the start.
REFUSALS = (
    "too_many_headers",
    "headers_too_large",
    "origin",
    "bad_token",
    "missing_token",
    "connections_per_address",
    "joins_per_minute",
    "rooms_per_minute",
    "bad_passcode",
    "metrics_forbidden",
)
# What became of each speech job (one per utterance with speech to make, babelfish/pipeline.py): spoken, skipped by
# the queue's policy (late, full: babelfish/inference.py), failed (error), or given up as the server stopped (gone).
SPEECH_OUTCOMES = ("spoken", "shed_late", "shed_full", "error", "gone")
# How each first pass that gave a transcript was decoded (babelfish/pipeline.py, inference.py): with a beam (the
# engine had time: nothing else waited), greedily because another transcription waited (busy), or greedily anyway
# (`asr_beam_size` 1, an engine without a beam, or the beam said a phrase twice that the greedy decode said once).
FirstPassDecode = Literal["beam", "greedy_busy", "greedy"]
FIRST_PASS_DECODES: tuple[FirstPassDecode, ...] = ("beam", "greedy_busy", "greedy")
# Early reads (babelfish/early.py): started in a pause (run), taken by the cut's first pass (used), or not started
# because the engine was busy (busy), could not start it in time (stale), or another phone of the room hears the pause
# better (elsewhere: its copy will be kept). Run less used: pauses the speaker went on after, or cut otherwise.
EarlyOutcome = Literal["run", "used", "busy", "stale", "elsewhere"]
EARLY_OUTCOMES: tuple[EarlyOutcome, ...] = ("run", "used", "busy", "stale", "elsewhere")
BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.registry = CollectorRegistry()  # per app, so tests and several apps never share counters
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the first reading is always 0
        self._recent: dict[Stage, deque[float]] = {s: deque(maxlen=WINDOW) for s in STAGES}
        self.engine_name = ""
        self.engine_reason = ""
        self._latency = Histogram(
            "babelfish_latency_seconds",
            "Speech end to result ready, per stage",
            ["stage"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        for stage in STAGES:  # export every stage from the start, so dashboards see zeros rather than gaps
            self._latency.labels(stage=stage)
        self._stage_recent: dict[PipelineStage, deque[float]] = {s: deque(maxlen=WINDOW) for s in PIPELINE_STAGES}
        self._stage = Histogram(
            "babelfish_stage_seconds",
            "Time spent in each pipeline stage (per utterance; per result for mt, tts, delivery)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        for pstage in PIPELINE_STAGES:
            self._stage.labels(stage=pstage)
        self._utterances = Counter("babelfish_utterances", "Utterances processed", ["outcome"], registry=self.registry)
        self._clients = Gauge("babelfish_clients", "Connected, joined clients", registry=self.registry)
        self._rooms = Gauge("babelfish_rooms", "Rooms with at least one participant", registry=self.registry)
        self._dropped = Counter(
            "babelfish_clients_dropped", "Clients closed for reading too slowly", registry=self.registry
        )
        self._loops = Counter(
            "babelfish_decoder_loops", "Transcripts whose decoder looped; the phrase was kept once",
            registry=self.registry,
        )  # fmt: skip
        self._first_passes = Counter(
            "babelfish_first_passes",
            "First passes that gave a transcript, by how they decoded: beam, greedy_busy (the engine was behind), "
            "greedy",
            ["decode"],
            registry=self.registry,
        )
        for decode in FIRST_PASS_DECODES:
            self._first_passes.labels(decode=decode)
        self.first_passes: dict[str, int] = dict.fromkeys(FIRST_PASS_DECODES, 0)
        self._early = Counter(
            "babelfish_early_reads",
            "Early reads of an utterance in the pause before its cut: run, used by the cut, not started: busy, stale "
            "or elsewhere (another phone of the room hears the pause better)",
            ["outcome"],
            registry=self.registry,
        )
        for early in EARLY_OUTCOMES:
            self._early.labels(outcome=early)
        self.early_reads: dict[str, int] = dict.fromkeys(EARLY_OUTCOMES, 0)
        self._early_seconds = Histogram(
            "babelfish_early_read_seconds",
            "Engine time of one early read (used or not: the engine time early reads cost)",
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self._recent_early: deque[float] = deque(maxlen=WINDOW)
        self._echo_unresolved = Counter(
            "babelfish_echo_unresolved",
            "Copies heard elsewhere processed after all: no outcome for the kept copy came (a lost cluster message)",
            registry=self.registry,
        )
        self._refused = Counter(
            "babelfish_refused", "Requests and connections refused, by reason", ["reason"], registry=self.registry
        )
        for reason in REFUSALS:
            self._refused.labels(reason=reason)
        self.refusals: dict[str, int] = dict.fromkeys(REFUSALS, 0)
        self._speaker_wait = Histogram(
            "babelfish_speaker_wait_seconds",
            "Time the text path waited, after the transcript was ready, for the speaker's label",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=self.registry,
        )
        self._recent_speaker_wait: deque[float] = deque(maxlen=WINDOW)
        self._waiting = Gauge(
            "babelfish_inference_waiting", "Engine calls waiting for a worker, all speakers", registry=self.registry
        )
        self._shed = Counter(
            "babelfish_utterances_shed",
            "Utterances skipped because the engine could not keep up (reason: late or full)",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("late", "full"):
            self._shed.labels(reason=reason)
        # Streaming partials (babelfish/partials.py): decodes run, and decodes dropped because finals came first.
        self._partials = Counter("babelfish_partial_decodes", "Streaming-partial decodes run", registry=self.registry)
        self._partial_shed = Counter(
            "babelfish_partials_shed",
            "Streaming-partial decodes dropped: busy (a final waited), stale (waited too long) or elsewhere (another "
            "phone of the room hears the speech better)",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("busy", "stale", "elsewhere"):
            self._partial_shed.labels(reason=reason)
        self._partial_seconds = Histogram(
            "babelfish_partial_decode_seconds",
            "Engine time of one streaming-partial decode (transcript and stable-prefix translations)",
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self._recent_partial: deque[float] = deque(maxlen=WINDOW)
        self.partial_decodes = 0
        self.partials_shed: dict[str, int] = {"busy": 0, "stale": 0, "elsewhere": 0}
        self._crowd = Counter(
            "babelfish_utterances_in_crowd",
            "Utterances cut while their phone heard a crowd that never stops (the voice detector's crowd gate on)",
            registry=self.registry,
        )
        self.utterances_in_crowd = 0
        self._audio_dropped = Counter(
            "babelfish_audio_drops",
            "Times a client's audio waiting for the VAD went over vad_backlog_seconds and frames were dropped",
            registry=self.registry,
        )
        self._engine = Gauge("babelfish_engine_info", "Running engine", ["engine", "reason"], registry=self.registry)
        self._memory = Gauge("babelfish_resident_memory_bytes", "Resident memory", registry=self.registry)
        self._uptime = Gauge("babelfish_uptime_seconds", "Seconds since start", registry=self.registry)
        self._cluster_up = Gauge(
            "babelfish_cluster_redis_up", "Cluster mode: 1 while Redis answers, 0 while serving local clients only",
            registry=self.registry,
        )  # fmt: skip
        self._cluster_frames = Counter(
            "babelfish_cluster_frames",
            "Cluster frames relayed (out), received (in), dropped; partials shed", ["direction"],
            registry=self.registry,
        )  # fmt: skip
        # Frames from the other servers ignored, by reason (babelfish/cluster/inbound.py); exported from the start.
        self._cluster_ignored = Counter(
            "babelfish_cluster_frames_ignored", "Cluster frames from other servers ignored, by reason", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        for reason in CLUSTER_IGNORED:
            self._cluster_ignored.labels(reason=reason)
        self.cluster_ignored: dict[str, int] = dict.fromkeys(CLUSTER_IGNORED, 0)
        self._revisions = Counter(
            "babelfish_revisions", "Ended multi-piece turns, by what became of their revision", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        for outcome in REVISION_OUTCOMES:
            self._revisions.labels(outcome=outcome)
        self._revision_seconds = Histogram(
            "babelfish_revision_seconds",
            "Revisions: the turn's speech end to the revision sent (latency); engine time re-decoding and"
            " re-translating the turn (compute)",
            ["kind"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.revisions: dict[str, int] = dict.fromkeys(REVISION_OUTCOMES, 0)
        self._revision_recent: dict[str, deque[float]] = {k: deque(maxlen=WINDOW) for k in ("latency", "compute")}
        self._speech = Counter(
            "babelfish_speech_jobs", "Speech jobs (one per utterance with speech to make), by outcome", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        for outcome in SPEECH_OUTCOMES:
            self._speech.labels(outcome=outcome)
        self._speech_wait = Histogram(
            "babelfish_speech_wait_seconds",
            "Time a speech job waited, from its texts sent to its start (text first: it waits while text waits)",
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.speech_jobs: dict[str, int] = dict.fromkeys(SPEECH_OUTCOMES, 0)
        self._recent_speech_wait: deque[float] = deque(maxlen=WINDOW)
        # The engine's translation pipeline churn (apertium starts, evictions, idle stops), read at scrape time.
        self._pipeline_events: Callable[[], Mapping[str, int]] = dict
        self.registry.register(_PipelineEvents(lambda: self._pipeline_events()))
        self.clients = 0
        self.rooms = 0
        self.utterances = 0
        self.dropped = 0
        self.decoder_loops = 0
        self.echo_unresolved = 0
        self.shed = 0
        self.audio_drops = 0
        self.waiting = 0

    def set_engine(self, name: str, reason: str) -> None:
        self.engine_name, self.engine_reason = name, reason
        self._engine.labels(engine=name, reason=reason).set(1)

    def watch_pipelines(self, events: Callable[[], Mapping[str, int]] | None) -> None:
        """Export the engine's translation pipeline events (CascadeEngine.pipeline_events); None: nothing to watch."""
        self._pipeline_events = events or dict

    def observe(self, stage: Stage, seconds: float) -> None:
        self._latency.labels(stage=stage).observe(seconds)
        self._recent[stage].append(seconds)

    def speaker_wait(self, seconds: float) -> None:
        self._speaker_wait.observe(seconds)
        self._recent_speaker_wait.append(seconds)

    def stage(self, stage: PipelineStage, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._stage.labels(stage=stage).observe(seconds)
        self._stage_recent[stage].append(seconds)

    def utterance_done(self, outcome: str) -> None:
        self._utterances.labels(outcome=outcome).inc()
        if outcome == "ok":
            self.utterances += 1

    def utterance_in_crowd(self) -> None:
        self._crowd.inc()
        self.utterances_in_crowd += 1

    def decoder_loop(self) -> None:
        self._loops.inc()
        self.decoder_loops += 1

    def first_pass(self, decode: FirstPassDecode) -> None:
        self._first_passes.labels(decode=decode).inc()
        self.first_passes[decode] += 1

    def early_read(self, outcome: EarlyOutcome, seconds: float | None = None) -> None:
        """One early read's outcome; `seconds`: the engine time of one that ran."""
        self._early.labels(outcome=outcome).inc()
        self.early_reads[outcome] = self.early_reads.get(outcome, 0) + 1
        if seconds is not None:
            self._early_seconds.observe(max(0.0, seconds))
            self._recent_early.append(max(0.0, seconds))

    def echo_unresolved_copy(self) -> None:
        self._echo_unresolved.inc()
        self.echo_unresolved += 1

    def set_population(self, clients: int, rooms: int) -> None:
        self.clients, self.rooms = clients, rooms
        self._clients.set(clients)
        self._rooms.set(rooms)

    def set_cluster_up(self, up: bool) -> None:
        self._cluster_up.set(1 if up else 0)

    def cluster_frame(self, direction: Literal["in", "out", "dropped", "shed"]) -> None:
        self._cluster_frames.labels(direction=direction).inc()

    def cluster_frame_ignored(self, reason: str) -> None:
        self._cluster_ignored.labels(reason=reason).inc()
        self.cluster_ignored[reason] = self.cluster_ignored.get(reason, 0) + 1

    def utterance_shed(self, reason: str) -> None:
        self._shed.labels(reason=reason).inc()
        self.shed += 1

    def revision(self, outcome: str) -> None:
        self._revisions.labels(outcome=outcome).inc()
        self.revisions[outcome] = self.revisions.get(outcome, 0) + 1

    def revision_seconds(self, kind: Literal["latency", "compute"], seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._revision_seconds.labels(kind=kind).observe(seconds)
        self._revision_recent[kind].append(seconds)

    def speech(self, outcome: str) -> None:
        self._speech.labels(outcome=outcome).inc()
        self.speech_jobs[outcome] = self.speech_jobs.get(outcome, 0) + 1

    def speech_wait(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._speech_wait.observe(seconds)
        self._recent_speech_wait.append(seconds)

    def partial_decode(self, seconds: float) -> None:
        self._partials.inc()
        self.partial_decodes += 1
        self._partial_seconds.observe(seconds)
        self._recent_partial.append(seconds)

    def partial_shed(self, reason: str) -> None:
        self._partial_shed.labels(reason=reason).inc()
        self.partials_shed[reason] = self.partials_shed.get(reason, 0) + 1

    def audio_dropped(self) -> None:
        self._audio_dropped.inc()
        self.audio_drops += 1

    def set_waiting(self, waiting: int) -> None:
        self.waiting = waiting
        self._waiting.set(waiting)

    def client_dropped(self) -> None:
        self._dropped.inc()
        self.dropped += 1

    def refused(self, reason: str) -> None:
        self._refused.labels(reason=reason).inc()
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def snapshot(self) -> dict[str, object]:
        latency = {stage: _percentiles(values) for stage, values in self._recent.items()}
        stages = {stage: _percentiles(values) for stage, values in self._stage_recent.items()}
        return {
            "cpu_percent": self._process.cpu_percent(None),
            "memory_mb": round(self._process.memory_info().rss / 2**20, 1),
            "tasks": _tasks(),
            "open_fds": self._process.num_fds(),
            "clients": self.clients,
            "rooms": self.rooms,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "engine": {"name": self.engine_name, "reason": self.engine_reason},
            "utterances_processed": self.utterances,
            "utterances_in_crowd": self.utterances_in_crowd,
            "clients_dropped": self.dropped,
            "decoder_loops": self.decoder_loops,
            "first_passes": dict(self.first_passes),
            "early_reads": {**self.early_reads, "read_ms": _percentiles(self._recent_early)},
            "echo_unresolved": self.echo_unresolved,
            "refused": dict(self.refusals),
            "cluster_ignored": dict(self.cluster_ignored),
            "utterances_shed": self.shed,
            "audio_drops": self.audio_drops,
            "inference_waiting": self.waiting,
            "latency_ms": latency,
            "speaker_wait_ms": _percentiles(self._recent_speaker_wait),
            "stages_ms": stages,
            "revisions": {
                **self.revisions,
                **{f"{k}_ms": _percentiles(v) for k, v in self._revision_recent.items()},
            },
            "speech": {**self.speech_jobs, "wait_ms": _percentiles(self._recent_speech_wait)},
            "mt_pipelines": dict(self._pipeline_events()),
            "partials": {
                "decodes": self.partial_decodes,
                "shed": dict(self.partials_shed),
                "decode_ms": _percentiles(self._recent_partial),
            },
        }

    def prometheus(self) -> bytes:
        self._memory.set(self._process.memory_info().rss)
        self._uptime.set(time.monotonic() - self.started)
        return generate_latest(self.registry)


class _PipelineEvents(Collector):
    def __init__(self, events: Callable[[], Mapping[str, int]]) -> None:
        self._events = events

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "babelfish_mt_pipeline_events",
            "Translation pipelines (apertium) started, evicted under the caps, or stopped idle: churn shows as starts"
            " that keep growing",
            labels=["event"],
        )
        for event, count in self._events().items():
            family.add_metric([event], count)
        yield family


def _percentiles(values: deque[float]) -> dict[str, float | int | None]:
    arr = np.asarray(values) * 1000 if values else None
    return {
        "count": len(values),
        "p50": round(float(np.percentile(arr, 50)), 1) if arr is not None else None,
        "p95": round(float(np.percentile(arr, 95)), 1) if arr is not None else None,
    }


def _tasks() -> int | None:
    """asyncio tasks alive on the running loop: a leak shows as a count that grows with nobody connected."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return None
