"""What the handshake gate costs and what it saves.

    python bench/bench_access.py [--root PATH] [--connections 200]

Starts `server_cpu.py` from `--root` (default: this checkout; point it at an older checkout to compare) with the test
engine, then measures:

- handshake + join: N WebSockets opened one after another, each joining and closing; median and p95 ms. With
  access control the server checks the Origin, a token and the per-address windows first (`--access token`).
- oversized request heads: 8 requests at once, each with a 10 MB header; the server's resident memory before and at
  its peak, and what the clients got back.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import websockets.sync.client as ws_client

ROOT = Path(__file__).resolve().parent.parent


def start(root: Path, data: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, "server_cpu.py", "--engine", "test", "--host", "127.0.0.1", "--port", "0",
         "--log-level", "warning", "--data-dir", str(data), *args],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if "Server ready" in line:
            return proc, int(line.rsplit(":", 1)[1].strip("/\n"))
    proc.kill()
    raise RuntimeError("server did not start")


def handshakes(port: int, n: int, query: str = "") -> list[float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        with ws_client.connect(f"ws://127.0.0.1:{port}/ws/client{query}", open_timeout=10) as ws:
            ws.send(json.dumps({"type": "join", "name": f"b{i}", "language": "en", "room": "bench"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
        times.append((time.perf_counter() - t0) * 1000)
    return times


def big_heads(proc: subprocess.Popen[bytes], port: int) -> tuple[float, float, list[str]]:
    ps = psutil.Process(proc.pid)
    before, peak, answers = ps.memory_info().rss / 2**20, [0.0], []

    def one() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000_000 + b"\r\n\r\n")
                answers.append(s.recv(40).split(b"\r\n")[0].decode())
        except OSError as exc:
            answers.append(type(exc).__name__)

    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak.append(ps.memory_info().rss / 2**20)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    time.sleep(0.5)
    done.set()
    watcher.join()
    return before, max(peak), sorted(set(answers))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=ROOT)
    p.add_argument("--connections", type=int, default=200)
    args = p.parse_args()
    n = args.connections
    gated = (args.root / "babelfish" / "gate.py").exists()  # a checkout from before the gate has no such limits
    limits = ["--max-joins-per-minute", str(n + 10), "--max-rooms-per-minute", str(n + 10)] if gated else []
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start(args.root, Path(tmp), *limits)
        try:
            t = handshakes(port, n)
            print(f"handshake+join, open: median {statistics.median(t):.1f} ms, p95 {sorted(t)[int(0.95 * n)]:.1f} ms")
            before, peak, answers = big_heads(proc, port)
            print(f"8 × 10 MB header: rss {before:.0f} MiB → peak {peak:.0f} MiB; answers {answers}")
        finally:
            proc.terminate()
            proc.wait(10)
        if gated:
            token = subprocess.run(
                [sys.executable, "-m", "babelfish", "tokens", "--data-dir", tmp, "create", "bench"],
                cwd=args.root, capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            proc, port = start(args.root, Path(tmp), "--access", "token", *limits)
            try:
                t = handshakes(port, n, f"?token={token}")
                p95 = sorted(t)[int(0.95 * n)]
                print(f"handshake+join, token: median {statistics.median(t):.1f} ms, p95 {p95:.1f} ms")
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
