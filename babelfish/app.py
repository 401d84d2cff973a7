"""The FastAPI application: lifespan (load the engine once), HTTP endpoints and `/ws/client`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from babelfish import languages
from babelfish.cluster import Cluster, LocalOnly
from babelfish.config import Settings
from babelfish.early import make_early_reads
from babelfish.echoes import EchoConfig, Echoes
from babelfish.engines.base import Engine
from babelfish.gate import AddressLimits, Gate, close_revoked
from babelfish.hub import Hub
from babelfish.inference import SPEECH_LANES, InferenceQueue
from babelfish.metrics import Metrics
from babelfish.partials import make_partials
from babelfish.pipeline import Pipeline
from babelfish.rooms import Rooms
from babelfish.segmenter import SegmenterConfig, SileroVad, SpeechDetector
from babelfish.session import Session
from babelfish.speakers.backup import backup_dir
from babelfish.speakers.embedder import Embedder, load_embedder
from babelfish.speakers.registry import Registry
from babelfish.speakers.service import Speakers
from babelfish.store.base import Store
from babelfish.store.open import open_store
from babelfish.tls import ca_certificate_path
from babelfish.tokens import TokenStore
from babelfish.transcript_route import make_transcript_router
from babelfish.transcripts import TranscriptArchive
from babelfish.web import make_router, static_files

log = logging.getLogger(__name__)
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def drain(app: FastAPI) -> None:
    """Tell every client the server restarts and close it (1012); new connections are refused from now on.

    The one way to drain. The lifespan calls it when the app stops; a server that closes WebSockets itself before
    the lifespan ends (uvicorn does, with a bare 1012) calls it first.
    """
    hub: Hub | None = getattr(app.state, "hub", None)
    if hub is not None:
        await hub.drain()


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    detector_factory: Callable[[], SpeechDetector] | None = None,
    embedder: Embedder | Literal["settings"] | None = "settings",
) -> FastAPI:
    """Build the app. With `engine` given (tests) it is used as is; otherwise the settings choose and load one.
    Likewise `embedder` (None: speaker recognition off). `detector_factory` makes one stream's speech detector; by
    default Silero VAD, loaded once at start-up."""
    app_metrics = Metrics()  # here, not in the lifespan: the gate counts refusals from the first request on
    tokens = TokenStore.in_data_dir(settings.data_dir)
    address_limits = AddressLimits(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = app_metrics
        # inference_workers utterances at once, each using `threads` CPU threads (README: keep the product ≤ cores).
        inference = ThreadPoolExecutor(settings.inference_workers, thread_name_prefix="inference")
        # Speech has its own lane: never a thread text could use (text first, inference.py); one job at a time.
        speech = ThreadPoolExecutor(SPEECH_LANES, thread_name_prefix="speech")
        vad = ThreadPoolExecutor(settings.vad_workers, thread_name_prefix="vad")
        voices = ThreadPoolExecutor(1, thread_name_prefix="speakers")
        loaded = engine
        revocations: asyncio.Task[None] | None = None
        cluster: Cluster = LocalOnly()
        store: Store | None = None
        tasks: set[asyncio.Task[None]] = set()
        expiry: asyncio.Task[None] | None = None
        # Transcripts go to disk only when the operator asks (retention on); otherwise nothing is ever written.
        archive = (
            TranscriptArchive(settings.data_dir / "transcripts", settings.transcript_retention_days * 86400)
            if settings.transcript_retention
            else None
        )
        try:
            loop = asyncio.get_running_loop()
            # The voice model loads beside the engine, not after it: start-up takes the longer of the two.
            voice_model = (
                loop.run_in_executor(voices, load_embedder, settings)
                if embedder == "settings"
                else asyncio.sleep(0, embedder)
            )
            if loaded is None:
                from babelfish.engines.factory import load_engine

                loaded = await loop.run_in_executor(inference, load_engine, settings)
            chosen = await voice_model
            registry = None
            if chosen is not None:
                store = open_store(settings)
                registry = Registry(store, chosen.name, settings.speaker_threshold, settings.speaker_refine_max)
            speakers = Speakers(chosen, registry, voices, settings.speaker_min_seconds)
            backups = asyncio.create_task(
                speakers.backup_loop(
                    backup_dir(settings.data_dir), settings.speaker_backups, settings.speaker_backup_hours * 3600
                )
            )
            tasks.add(backups)
            metrics.set_engine(loaded.info.name, loaded.info.reason)
            metrics.watch_pipelines(getattr(loaded, "pipeline_events", None))
            if loaded.info.name == "test":
                log.warning("running the TEST engine: output is synthetic, not real translation")
            detectors = detector_factory or (await asyncio.to_thread(SileroVad)).stream
            supports = loaded.languages()
            rooms = Rooms(settings.max_rooms, settings.max_clients_per_room, settings.transcript_max_utterances)
            speech_in = {s.code for s in supports if s.speech_in}
            if settings.redis_url:
                from babelfish.cluster.redis_node import RedisCluster

                cluster = RedisCluster(
                    settings.redis_url, rooms, metrics, settings.cluster_heartbeat_seconds, archive=archive
                )
                # Known gap (docs/deployment.md): one cluster room per passcode (redis_node.cluster_name),
                # but a server holding the name under another passcode refuses the right one.
                log.warning("cluster mode: room passcodes are checked per server, not cluster-wide; use --access token")
            await cluster.start()
            queue = InferenceQueue(
                inference,
                settings.inference_workers,
                settings.inference_queue_max,
                settings.inference_max_wait_seconds,
                metrics,
                settings.revision_max_wait_seconds,
                speech_executor=speech,
                speech_max_wait=settings.speech_max_wait_seconds,
            )
            turns = (settings.turn_gap_seconds, settings.turn_max_seconds) if settings.revisions else None
            pipeline = Pipeline(
                loaded, queue, rooms, metrics, cluster, speakers, archive, turns, settings.revision_single_pieces,
                settings.revision_context,
            )  # fmt: skip
            # One phone per voice spans the cluster: each server tells the others about its phones' copies.
            echoes = Echoes(EchoConfig.from_settings(settings), pipeline.new_id, link=cluster)
            cluster.listen_echoes(echoes)
            partials = make_partials(
                settings.partials, settings.partial_interval_seconds, loaded, queue, rooms, metrics, cluster,
                pipeline.new_id, speakers.label, echoes,
            )  # fmt: skip
            early = make_early_reads(
                settings.early_read_ms, settings.vad_silence_ms, loaded, queue, pipeline, metrics, echoes
            )
            segmenter_config = SegmenterConfig.from_settings(settings)
            if early is None:  # a cut's words are read from all of its audio
                segmenter_config = dataclasses.replace(segmenter_config, early_read_ms=0)
            app.state.hub = Hub(
                settings=settings,
                engine=loaded,
                rooms=rooms,
                metrics=metrics,
                pipeline=pipeline,
                echoes=echoes,
                partials=partials,
                early=early,
                vad_executor=vad,
                detector_factory=detectors,
                segmenter_config=segmenter_config,
                speakers=speakers,
                language_table=languages.table(supports),
                languages_in=frozenset(speech_in | {s.code for s in supports if s.text_out} | {languages.AUTO}),
                address_limits=address_limits,
                cluster=cluster,
            )
            revocations = asyncio.create_task(close_revoked(app.state.hub, tokens))
            if archive is not None:
                expiry = asyncio.create_task(archive.expire_forever())
            yield
        finally:
            for task in (revocations, expiry):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await drain(app)  # a no-op after the server's own early drain (cli.py); TestClient apps need it here
            hub = getattr(app.state, "hub", None)
            if hub is not None:
                await hub.finishing.cancel_all()  # past the drain's limit: what is left is given up
                await hub.pipeline.close()
            await cluster.stop()  # after the drain: this server's participants have left
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            vad.shutdown(wait=False, cancel_futures=True)
            # Off the loop: the utterance in flight may take a while, and closing models can block too.
            # Never cancel_futures: the drain has finished what was said; anything still queued is finished too.
            await asyncio.to_thread(inference.shutdown, wait=True)
            await asyncio.to_thread(speech.shutdown, wait=True)  # speech given up (pipeline.close): at most one running
            await asyncio.to_thread(voices.shutdown, wait=True, cancel_futures=True)
            if store is not None:
                store.close()
            if loaded is not None and engine is None:
                await asyncio.to_thread(loaded.close)

    app = FastAPI(title="BabbleFish", lifespan=lifespan)
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.address_limits = address_limits

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        hub: Hub | None = getattr(request.app.state, "hub", None)
        if hub is None:
            return JSONResponse({"status": "starting", "engine": None}, status_code=503)
        info = hub.engine.info
        return JSONResponse(
            {
                "status": "draining" if hub.draining else "ok",
                "engine": {"name": info.name, "reason": info.reason, "details": info.details},
                "cluster": hub.cluster.status(),  # redis "down": serving local clients only
                **({"speakers": hub.speakers.store_status()} if hub.speakers.store_status() else {}),
            }
        )

    @app.get("/languages")
    async def get_languages(request: Request) -> JSONResponse:
        hub: Hub = request.app.state.hub
        return JSONResponse({"engine": hub.engine.info.name, "languages": hub.language_table})

    @app.get("/metrics")
    async def metrics(request: Request, format: str | None = None) -> Response:
        hub: Hub = request.app.state.hub
        accept = request.headers.get("accept", "")
        wants_text = format == "prometheus" or (
            format is None and ("text/plain" in accept or "openmetrics" in accept) and "json" not in accept
        )
        if wants_text:
            return Response(hub.metrics.prometheus(), media_type=PROMETHEUS_TYPE)
        return JSONResponse({**hub.metrics.snapshot(), "cluster": hub.cluster.status()})

    @app.websocket("/ws/client")
    async def ws_client(websocket: WebSocket) -> None:
        await Session(websocket, websocket.app.state.hub).run()

    # Read-only public data (/languages, /qr.svg) for a page opened from a file or another origin; with access
    # control on, only for the origins the operator allows. Never /metrics (the gate hides Origin from it).
    cors = ["*"] if settings.access == "open" else settings.allowed_origins
    app.add_middleware(CORSMiddleware, allow_origins=cors, allow_methods=["GET"])
    app.add_middleware(Gate, settings=settings, tokens=tokens, limits=address_limits, metrics=app_metrics)
    # Outermost: the client address the gate limits is the one a trusted proxy names (uvicorn's own copy is off).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    own_ca = settings.https and settings.certfile is None  # phones fetch our local CA from /ca.pem to trust it
    app.include_router(make_transcript_router())
    app.include_router(make_router(ca_cert=ca_certificate_path(settings.data_dir) if own_ca else None))
    app.mount("/static", static_files(), name="static")
    return app
