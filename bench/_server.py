"""Start `server_cpu.py` as a subprocess for benchmarks and wait for its ready line."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(*args: str, timeout: float = 120.0) -> tuple[subprocess.Popen[str], int, float]:
    """The process, its port, and seconds from launch to the ready line."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "server_cpu.py", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"\[OK\] Server ready for clients at \S+:(\d+)/", line)
        if match:
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, int(match.group(1)), time.monotonic() - started
        if time.monotonic() - started > timeout:
            break
    proc.kill()
    raise RuntimeError("server did not become ready")
