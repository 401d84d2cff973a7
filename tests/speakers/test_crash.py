"""kill -9 in the middle of a conversation: every speaker the room was told about is still known after a restart."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import websockets

from tests.serverproc import ROOT, ServerProcess
from tests.voices import pcm16, voices


async def turn(ws: websockets.ClientConnection, audio: np.ndarray, settle: float = 2.0) -> list[dict]:
    """Send one clip (faster than real time, within the burst allowance), end it, collect its transcripts."""
    pcm = pcm16(audio)
    for i in range(0, len(pcm), 6400):
        await ws.send(pcm[i : i + 6400])
    await ws.send(json.dumps({"type": "end_utterance"}))
    got: list[dict] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=settle if got else deadline - time.monotonic())
        except TimeoutError:
            break
        if isinstance(raw, str) and (msg := json.loads(raw))["type"] == "transcript":
            got.append(msg)
    assert got, "no transcript in time"
    return got


async def join(url: str, name: str) -> websockets.ClientConnection:
    ws = await websockets.connect(url)
    await ws.send(json.dumps({"type": "join", "name": name, "language": "en", "audio": False}))
    assert json.loads(await ws.recv())["type"] == "welcome"
    return ws


def speakers_cli(data: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "babelfish", "speakers", "--data-dir", str(data), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_kill_9_mid_conversation_keeps_every_speaker(tmp_path: Path) -> None:
    v = voices()
    data = tmp_path / "data"
    srv = ServerProcess(data, "--speaker-embedder", "resemblyzer").start(timeout=240)
    try:

        async def before() -> tuple[str, str]:
            ws = await join(srv.ws_url, "Kitchen")
            reader = {m["speaker"]["id"] for m in await turn(ws, v["librivox"][0])}
            other = {m["speaker"]["id"] for m in await turn(ws, v["dhd"][1])}
            assert len(reader) == 1 and len(other) == 1 and reader != other
            # renamed from the CLI while the server runs; then the server dies mid-conversation, no goodbye
            speakers_cli(data, "rename", next(iter(other)), "Dave")
            await ws.send(pcm16(v["librivox"][2])[:32000])
            srv.kill()
            return next(iter(reader)), next(iter(other))

        reader, dave = asyncio.run(before())
        srv.start(timeout=240)

        async def after() -> None:
            ws = await join(srv.ws_url, "Hall tablet")  # another device: the voices, not the phone, are known
            again = await turn(ws, v["dhd"][2])
            assert {(m["speaker"]["id"], m["speaker"]["name"]) for m in again} == {(dave, "Dave")}
            back = await turn(ws, v["librivox"][3])
            assert {(m["speaker"]["id"], m["speaker"]["name"]) for m in back} == {(reader, "Kitchen")}
            await ws.close()

        asyncio.run(after())
    finally:
        srv.kill()
    listing = speakers_cli(data, "list")
    assert reader in listing and dave in listing and "Dave" in listing
