"""The shipped nginx config in front of a real server: HTTPS page and WSS conversation through the proxy."""

import json
import re
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from babelfish.tls import ensure_certificate
from tests.serverproc import ROOT, ServerProcess

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # installed by scripts/setup.sh --test; not skipped if missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxied(tmp_path):
    srv = ServerProcess(tmp_path / "data").start()
    port = srv.port
    cert, key = ensure_certificate(tmp_path / "tls")
    https_port, http_port = free_port(), free_port()
    site = (ROOT / "nginx" / "babelfish.conf").read_text()
    site = site.replace("server 127.0.0.1:9000;", f"server 127.0.0.1:{port};")
    site = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", site)
    site = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", site)
    site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl").replace(
        "listen 80;", f"listen 127.0.0.1:{http_port};"
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; daemon off;\n"
        "events {}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path};\n{site}\n}}\n"
    )
    check = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.PIPE)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", https_port)) == 0:
                break
        time.sleep(0.05)
    yield https_port
    nginx.terminate()
    nginx.wait(10)
    srv.stop()


def test_conversation_through_nginx(proxied, librivox):
    base = f"https://127.0.0.1:{proxied}"
    page = httpx.get(base + "/", verify=False)
    assert page.status_code == 200 and "BabbleFish" in page.text
    assert httpx.get(base + "/metrics", verify=False).status_code == 200  # local: allowed
    wav = librivox["sense_and_sensibility_01_austen_64kb-0880"][0]
    out = subprocess.run(
        [sys.executable, "-m", "babelfish.client", str(wav), "--server", f"wss://127.0.0.1:{proxied}", "--insecure",
         "--language", "en", "--listen", "de", "--json", "--wait", "1.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    kinds = {(m["connection"], m["type"]) for m in map(json.loads, out.stdout.splitlines())}
    assert {("speaker", "transcript"), ("listen:de", "translation"), ("listen:de", "audio")} <= kinds
