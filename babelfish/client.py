"""Reference command-line client: speak a WAV file into a room and print what comes back.

    python -m babelfish.client speech.wav --name Dan --language de --listen en --listen pt

It joins (plus one listener connection per `--listen` language), streams the WAV at real-time pace
in 20 ms frames, adds a little silence and `end_utterance`, then prints every result until the
room has been quiet for `--wait` seconds. With `--press START:END` (seconds into the file, repeatable) it talks as
push-to-talk does on the page: only the frames inside a press are sent, and `end_utterance` at each release.
Exit status: 0 when a transcript came back, 1 on an error message or a failed connection, 3 when the server
understood nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import websockets

FRAME_MS = 20


@dataclass
class Run:
    json_lines: bool
    save_audio: Path | None
    speech_sent_at: float | None = None  # when the last frame of the file left the client
    errors: int = 0
    transcripts: int = 0
    last_message_at: float = field(default_factory=time.monotonic)
    _saved: dict[Path, bytes] = field(default_factory=dict)  # speech so far per saved file

    def emit(self, who: str, message: dict[str, Any]) -> None:
        self.last_message_at = time.monotonic()
        kind = message.get("type")
        if kind == "error":
            self.errors += 1
        elif kind == "transcript":
            self.transcripts += 1
        if self.speech_sent_at is not None and kind in ("transcript", "translation", "audio"):
            message["client_latency_ms"] = round((time.monotonic() - self.speech_sent_at) * 1000)
        if self.json_lines:
            print(json.dumps({"connection": who, **message}, ensure_ascii=False), flush=True)
            return
        speaker = message.get("speaker", {}).get("name", "")
        latency = f"  ({message['latency_ms']} ms)" if "latency_ms" in message else ""
        if kind == "transcript":
            line = f"{speaker} [{message['language']}]: {message['text']}{latency}"
        elif kind == "translation":
            line = f"{speaker} → {message['language']}: {message['text']}{latency}"
        elif kind == "revision":
            n = len(message["replaces"])
            line = f"{speaker} revised {message['of']} [{message['language']}] of {n} utterances: {message['text']}"
            line += latency
        elif kind == "audio":
            size, rate = message["bytes"], message["sample_rate"]
            line = f"{speaker} → {message['language']}: audio {size} bytes @ {rate} Hz{latency}"
        elif kind == "welcome":
            engine = message["engine"]["name"]
            line = f"joined room {message['room']!r} as {message['name']} ({message['language']}), engine {engine}"
        elif kind in ("error", "notice"):
            line = f"{kind}: {message.get('code')}: {message.get('message')}"
        elif kind == "participants":
            line = f"{message['who']['name']} {'joined' if message['event'] == 'join' else 'left'}"
        else:
            line = json.dumps(message, ensure_ascii=False)
        print(f"[{who}] {line}", flush=True)

    def save(self, header: dict[str, Any], payload: bytes) -> None:
        if self.save_audio is None:
            return
        self.save_audio.mkdir(parents=True, exist_ok=True)
        path = self.save_audio / f"{header['utterance_id']}-{header['language']}.wav"
        # A slow voice sends an utterance's speech sentence by sentence: one file holds them all.
        self._saved[path] = self._saved.get(path, b"") + payload
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(int(header["sample_rate"]))
            out.writeframes(self._saved[path])


def read_wav(path: Path) -> tuple[bytes, int]:
    """PCM16 mono bytes and the sample rate of a WAV file (any channel count, 8/16/32-bit PCM)."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif width == 4:
        samples = np.frombuffer(raw, "<i4").astype(np.float32) / 2**31
    else:
        raise ValueError(f"{path}: {8 * width}-bit WAV is not supported; convert it to 16-bit PCM")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), rate


async def _reader(ws: Any, who: str, run: Run) -> None:
    pending: dict[str, Any] | None = None
    async for frame in ws:
        if isinstance(frame, bytes):
            if pending is not None:
                run.save(pending, frame)
                pending = None
            continue
        message = json.loads(frame)
        if message.get("type") == "audio":
            pending = message
        run.emit(who, message)


async def _join(url: str, ssl_ctx: ssl.SSLContext | None, join: dict[str, Any], who: str, run: Run) -> Any:
    ws = await websockets.connect(url, ssl=ssl_ctx, max_size=2**24)
    await ws.send(json.dumps(join))
    welcome = json.loads(await ws.recv())
    run.emit(who, welcome)
    if welcome.get("type") != "welcome":
        raise ConnectionError(f"{who}: join refused: {welcome.get('message', welcome)}")
    return ws


async def converse(args: argparse.Namespace) -> int:
    pcm, rate = read_wav(args.wav)
    run = Run(args.json, args.save_audio)
    ssl_ctx = None
    if args.server.startswith("wss://") and args.insecure:
        ssl_ctx = ssl.create_default_context()
        ssl_ctx.check_hostname = False
        ssl_ctx.verify_mode = ssl.CERT_NONE
    url = args.server.rstrip("/") + ("" if args.server.rstrip("/").endswith("/ws/client") else "/ws/client")
    if args.token:
        url += ("&" if "?" in url else "?") + urlencode({"token": args.token})
    secret = {"passcode": args.passcode} if args.passcode else {}
    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []
    try:
        for lang in args.listen:
            join = {"type": "join", "name": f"listener-{lang}", "language": lang, "room": args.room, **secret}
            sockets.append(await _join(url, ssl_ctx, join, f"listen:{lang}", run))
        join = {"type": "join", "name": args.name, "language": args.language, "room": args.room, "sample_rate": rate,
                **secret}  # fmt: skip
        speaker = await _join(url, ssl_ctx, join, "speaker", run)
        sockets.append(speaker)
        names = [f"listen:{lang}" for lang in args.listen] + ["speaker"]
        readers = [asyncio.create_task(_reader(ws, who, run)) for ws, who in zip(sockets, names, strict=True)]
        step = rate * FRAME_MS // 1000 * 2
        started = time.monotonic()
        held_before = False
        for i, offset in enumerate(range(0, len(pcm), step)):
            at = i * FRAME_MS / 1000
            held = not args.press or any(a <= at < b for a, b in args.press)
            if held:
                await speaker.send(pcm[offset : offset + step])
            elif held_before:  # released: the page sends nothing while the button is up
                await speaker.send(json.dumps({"type": "end_utterance"}))
            held_before = held
            if args.realtime:  # pace by the clock, not by sleeps, so drift never accumulates
                await asyncio.sleep(max(0.0, started + (i + 1) * FRAME_MS / 1000 - time.monotonic()))
        run.speech_sent_at = time.monotonic()
        silence = bytes(step)
        for _ in range(0 if args.press else args.tail_ms // FRAME_MS):
            await speaker.send(silence)
            if args.realtime:
                await asyncio.sleep(FRAME_MS / 1000)
        if not args.press or held_before:
            await speaker.send(json.dumps({"type": "end_utterance"}))
        run.last_message_at = time.monotonic()
        deadline = time.monotonic() + args.timeout
        while time.monotonic() - run.last_message_at < args.wait and time.monotonic() < deadline:
            if any(r.done() for r in readers):
                break
            await asyncio.sleep(0.05)
    except websockets.InvalidStatus as exc:  # refused before the WebSocket opened: the body says why
        body = (exc.response.body or b"").decode(errors="replace").strip()
        print(f"error: {exc}{f' ({body})' if body else ''}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError, websockets.WebSocketException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for r in readers:
            r.cancel()
        for ws in sockets:
            await ws.close()
    if run.errors:
        return 1
    return 0 if run.transcripts else 3


def _press(text: str) -> tuple[float, float]:
    try:
        start, end = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START:END in seconds") from None
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"{text!r}: a press ends after it starts")
    return start, end


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m babelfish.client", description=__doc__.split("\n\n")[0])
    p.add_argument("wav", type=Path, help="speech to send (WAV, PCM)")
    p.add_argument("--server", default="ws://localhost:9000", help="server URL (ws:// or wss://)")
    p.add_argument("--name", default="cli", help="speaker name")
    p.add_argument("--language", default="en", help="language spoken in the file (or auto)")
    p.add_argument("--room", default="main")
    p.add_argument("--listen", action="append", default=[], metavar="LANG", help="add a listener in LANG (repeatable)")
    p.add_argument("--save-audio", type=Path, metavar="DIR", help="write received speech as WAV files here")
    p.add_argument("--json", action="store_true", help="print one JSON object per received message")
    p.add_argument("--wait", type=float, default=5.0, help="stop after this many quiet seconds")
    p.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    p.add_argument("--tail-ms", type=int, default=600, help="silence appended after the file (not with --press)")
    p.add_argument("--no-realtime", dest="realtime", action="store_false", help="send as fast as possible")
    p.add_argument(
        "--press",
        type=_press,
        action="append",
        default=[],
        metavar="START:END",
        help="push-to-talk: send only these seconds of the file, each ended by a release (repeatable)",
    )
    p.add_argument(
        "--token", default=os.environ.get("BABELFISH_TOKEN", ""), help="access token (default: $BABELFISH_TOKEN)"
    )
    p.add_argument("--passcode", default="", help="the room's passcode (a new room gets this one)")
    p.add_argument("--insecure", action="store_true", help="accept a self-signed certificate (wss://)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.wav.is_file():
        print(f"error: no such file: {args.wav}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(converse(args))
    except KeyboardInterrupt:
        return 130
    except (ValueError, wave.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
