"""`python server_cpu.py`: parse settings, bind the port, run uvicorn, say when clients can connect."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_settings import CliApp, SettingsError
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

from babelfish import logs
from babelfish import protocol as proto
from babelfish.config import Settings

READY_LINE = "[OK] Server ready for clients"
GRACEFUL_SHUTDOWN_SECONDS = 5  # uvicorn's wait for open connections after the drain; babelfish.service stops above it
KEEPALIVE_SECONDS = 20.0  # uvicorn pings every 20 s and closes (1011) when no pong comes within 20 s
SEND_BUFFER = 256 * 1024  # kernel send buffer per client
log = logging.getLogger("babelfish")


class _Server(uvicorn.Server):
    """uvicorn, plus the ready line once the engine is loaded and the socket listens, and a drain on shutdown."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, scheme: str, shown_host: str) -> None:
        super().__init__(config)
        self._app = app
        self._scheme, self._shown_host = scheme, shown_host

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            port = sockets[0].getsockname()[1]
            print(f"{READY_LINE} at {self._scheme}://{self._shown_host}:{port}/", flush=True)
            _notify_systemd(f"READY=1\nSTATUS=serving on port {port}")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _notify_systemd("STOPPING=1")
        from babelfish.app import drain

        log.info("draining clients before shutdown")
        await drain(self._app)  # before uvicorn closes the WebSockets itself, without a word to the clients
        await super().shutdown(sockets)


def _notify_systemd(state: str) -> None:
    """Tell systemd (Type=notify) how we are; a no-op unless systemd gave us NOTIFY_SOCKET."""
    if os.environ.get("NOTIFY_SOCKET"):
        import sdnotify

        sdnotify.SystemdNotifier().notify(state)


def exposed(host: str) -> bool:
    """Whether listening on `host` lets other machines connect (anything but a loopback address)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: it may resolve to anything


def oversize_aware(settings: Settings) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's WebSocket protocol, answering a frame over `ws_max_size` with our documented error before the close.

    A frame that big is refused by the frame parser before the app sees a byte of it (so it never sits in memory);
    the parser then closes with 1009. This writes the `frame_too_large` error frame just ahead of that close frame.
    """
    text = (
        proto.Error(
            code="frame_too_large",
            message=f"audio frames are limited to {settings.max_frame_bytes} bytes, control messages to "
            f"{settings.max_text_bytes}",
        )
        .encode()
        .encode()
    )

    class Protocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # Loopback and LAN sockets autotune their send buffer to megabytes: a client that stops reading would
            # swallow minutes of results before a send ever waits. A fixed buffer makes it show within seconds
            # (send_timeout_seconds) and caps kernel memory per client.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            super().connection_made(transport)

        def handle_parser_exception(self) -> None:
            sent = self.conn.close_sent
            if sent is not None and sent.code == proto.CLOSE_TOO_BIG and not self.transport.is_closing():
                self.transport.write(Frame(Opcode.TEXT, text).serialize(mask=False, extensions=[]))
            super().handle_parser_exception()

    return Protocol


def uvicorn_config(app: FastAPI, settings: Settings, **ssl: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=settings.log_level,
        # Over our own limit, so an oversized frame gets our clear error rather than uvicorn's bare close.
        ws_max_size=4 * max(settings.max_frame_bytes, settings.max_text_bytes),
        ws=oversize_aware(settings),
        # Compression costs ~50 KiB of zlib state per connection and CPU per message, and PCM barely compresses.
        ws_per_message_deflate=False,
        # The keepalive cuts a client that answers no ping within 20 + 20 s; a client that stops reading while
        # results flow is evicted by our own policy first (send_timeout_seconds ≤ 30, writer.py).
        ws_ping_interval=KEEPALIVE_SECONDS,
        ws_ping_timeout=KEEPALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # h11 bounds the request head it buffers (httptools takes megabytes); between max_header_bytes and this the
        # gate answers 431 and counts it; beyond, h11 closes with 400 before any app code runs. Only handshakes and
        # page loads go through it: WebSocket frames never do.
        http="h11",
        h11_max_incomplete_event_size=4 * settings.max_header_bytes,
        proxy_headers=False,  # the app's own ProxyHeadersMiddleware, with settings.trusted_proxies, decides
        log_config=None,  # uvicorn's lines go through our handler: one format, secrets redacted
        **ssl,  # type: ignore[arg-type]
    )


def parse_settings(argv: Sequence[str] | None) -> Settings:
    return CliApp.run(Settings, cli_args=list(sys.argv[1:] if argv is None else argv))


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _engine_problem(settings: Settings) -> str | None:
    """A missing prerequisite of the chosen engine, said in one line before anything starts."""
    from babelfish.engines.factory import choose
    from babelfish.engines.seamless import seamless_available, seamless_weights

    if choose(settings)[0] != "seamless":
        return None
    if not seamless_available():
        return "the seamless engine needs torch and transformers: pip install -r requirements_server.txt"
    if seamless_weights(settings) is None:
        return (
            f"no local SeamlessM4T weights for {settings.seamless_model!r}: give a folder with --seamless-model PATH "
            "(or put the model in the Hugging Face cache), or use --engine cascade"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except (SettingsError, ValidationError) as exc:
        print(f"[ERROR] invalid settings: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if settings.access == "open" and exposed(settings.host):
        log.warning(
            "listening on %s with --access open: anyone who can reach port %d can join any room, listen "
            "and speak. Fine on a trusted LAN; otherwise use --access token or passcode (docs/deployment.md).",
            settings.host,
            settings.port,
        )
    problem = _engine_problem(settings)
    if problem:
        print(f"[ERROR] {problem}", file=sys.stderr)
        return 2
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"[ERROR] Port {settings.port} is already in use on {settings.host}. "
                f"Choose another with --port N (or BABELFISH_PORT=N), or stop the program using it.",
                file=sys.stderr,
            )
        else:
            print(f"[ERROR] cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 1

    from babelfish.app import create_app

    ssl: dict[str, str] = {}
    if settings.https:
        from babelfish.tls import ensure_certificate

        certfile, keyfile = ensure_certificate(settings.data_dir, settings.certfile, settings.keyfile)
        ssl = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}
    app = create_app(settings)
    config = uvicorn_config(app, settings, **ssl)
    shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    server = _Server(config, app, "https" if settings.https else "http", shown)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 1
