"""A real `redis-server` as a subprocess on a loopback port, for tests and benchmarks: start, stop, kill, restart."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"  # installed by scripts/setup.sh --test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """No persistence: a restart comes back empty, as a crashed cache would. The port stays across restarts."""

    def __init__(self, workdir: Path, port: int = 0, password: str | None = None, extra: tuple[str, ...] = ()) -> None:
        """`extra`: more redis-server arguments; "{port}" in them is the port (e.g. a TLS port, with "--port 0")."""
        self.workdir, self.port, self.password = workdir, port or free_port(), password
        self.extra = extra
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisProcess:
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        args += [a.replace("{port}", str(self.port)) for a in self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
