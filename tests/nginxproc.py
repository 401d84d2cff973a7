"""The shipped nginx config (nginx/babelfish.conf) in front of a real server, on free loopback ports, with TLS."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from babelfish.tls import ensure_certificate
from tests.serverproc import ROOT, ServerProcess

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # installed by scripts/setup.sh --test; not skipped if missing
ACCESS_LOG = "nginx-access.log"  # under the workdir: the shipped config's access log, its format as shipped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(workdir: Path, site: str) -> tuple[subprocess.Popen[bytes], int]:
    """A shipped site config (`site`, its upstream already pointed at our servers) with our certificate and loopback
    ports, under a private prefix; its access log in `workdir`, in the format we ship. Returns nginx and its HTTPS port
    once that port answers."""
    cert, key = ensure_certificate(workdir / "tls")
    https_port, http_port = free_port(), free_port()
    site = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", site)
    site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl").replace(
        "listen 80;", f"listen 127.0.0.1:{http_port};"
    )
    site = site.replace("/var/log/nginx/access.log", str(workdir / ACCESS_LOG))
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"pid {workdir}/nginx.pid; error_log {workdir}/error.log; daemon off;\n"
        "events {}\n"
        f"http {{ access_log off; client_body_temp_path {workdir}; proxy_temp_path {workdir};\n{site}\n}}\n"
    )
    check = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(workdir)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(workdir)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", https_port)) == 0:
                return nginx, https_port
        if nginx.poll() is not None:
            break
        time.sleep(0.05)
    nginx.kill()
    nginx.wait(10)
    raise RuntimeError(f"nginx did not start: {(workdir / 'error.log').read_text(errors='replace')[-2000:]}")


@contextmanager
def nginx_in_front(workdir: Path, *server_args: str) -> Iterator[tuple[int, ServerProcess]]:
    """Start the server (with `server_args`) and nginx before it; yield nginx's HTTPS port and the server."""
    srv = ServerProcess(workdir / "data", *server_args).start()
    nginx: subprocess.Popen[bytes] | None = None
    try:
        site = (ROOT / "nginx" / "babelfish.conf").read_text()
        site = site.replace("server 127.0.0.1:9000;", f"server 127.0.0.1:{srv.port};")
        nginx, https_port = start_nginx(workdir, site)
        yield https_port, srv
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        srv.stop()
