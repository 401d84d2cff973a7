"""`python server_cpu.py` as a subprocess, for tests and benchmarks: start, wait for the ready line, stop, kill."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(rb"\[OK\] Server ready for clients at \S+:(\d+)/")


class ServerProcess:
    """The real server. Port 0 picks a free port on the first start; restarts reuse it."""

    def __init__(self, data_dir: Path, *args: str, port: int = 0, log: Path | None = None, root: Path = ROOT) -> None:
        self.data_dir, self.args, self.port = data_dir, args, port
        self.root = root  # the checkout whose server_cpu.py runs (benchmarks compare against another)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = log or data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0  # launch → ready line, for benchmarks

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/client"

    def start(self, timeout: float = 120) -> ServerProcess:
        args = [*self.args]
        if "--engine" not in args:
            args += ["--engine", "test"]
        offset = self.log.stat().st_size if self.log.exists() else 0
        started = time.monotonic()
        with self.log.open("ab") as out:  # a file, not a pipe: nothing blocks if nobody reads it
            self.proc = subprocess.Popen(
                [sys.executable, "server_cpu.py", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), *args],
                cwd=self.root, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        while time.monotonic() - started < timeout:
            with self.log.open("rb") as f:
                f.seek(offset)
                match = READY.search(f.read())
            if match:
                self.port = int(match.group(1))
                self.ready_seconds = time.monotonic() - started
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self, timeout: float = 30) -> int | None:
        """A polite shutdown (SIGTERM: the server sends `draining` to every client first); the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # a server that hangs in shutdown must not outlive its test
            proc.wait(10)
            raise

    def kill(self) -> None:
        """A crash, not a polite shutdown."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
