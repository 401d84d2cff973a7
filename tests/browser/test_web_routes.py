"""babelfish.web and babelfish.tls without a browser: routes, headers, limits, certificates."""

from __future__ import annotations

import ipaddress
import json
import ssl
import struct
from pathlib import Path

import pytest
from cryptography import x509
from fastapi import FastAPI
from fastapi.testclient import TestClient

from babelfish import tls
from babelfish.web import QR_MAX_CHARS, ROOT, make_router, static_files


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    ca = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    app = FastAPI()
    app.include_router(make_router(ca_cert=ca))
    app.mount("/static", static_files())
    return TestClient(app)


def test_page_manifest_and_worker(client: TestClient) -> None:
    for path in ("/", "/client_thin.html"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-cache"  # updates reach users at the next load
        assert "AudioWorklet" in r.text
    m = client.get("/manifest.json")
    assert m.headers["content-type"] == "application/manifest+json"
    manifest = json.loads(m.text)
    assert manifest["name"] == "BabbleFish Translator" and manifest["display"] == "standalone"
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["service-worker-allowed"] == "/"
    assert "javascript" in sw.headers["content-type"]


@pytest.mark.parametrize("size", [192, 512])
def test_icons_are_real_pngs_of_the_declared_size(client: TestClient, size: int) -> None:
    r = client.get(f"/static/icons/icon-{size}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", r.content[16:24]) == (size, size)


def test_page_modules_are_javascript_and_revalidated(client: TestClient) -> None:
    """Module scripts need a JavaScript type; `no-cache` keeps a browser from mixing old and new modules."""
    for path in ("/static/js/main.js", "/static/js/capture-worklet.js", "/static/client.css"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "no-cache" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript", "text/css"}
        again = client.get(path, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304  # revalidation costs a round trip, not the file


def test_static_files_cannot_escape(client: TestClient) -> None:
    assert client.get("/static/../babelfish/web.py").status_code == 404
    assert client.get("/static/%2e%2e/babelfish/web.py").status_code == 404
    assert client.get("/static/nope.png").status_code == 404


def test_qr_code(client: TestClient) -> None:
    r = client.get("/qr.svg", params={"data": "https://192.168.1.20:9000/?room=kitchen"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.text.lstrip().startswith("<svg") and "<path" in r.text
    assert client.get("/qr.svg", params={"data": "x" * (QR_MAX_CHARS + 1)}).status_code == 422
    assert client.get("/qr.svg").status_code == 422


def test_ca_certificate_download(client: TestClient) -> None:
    r = client.get("/ca.pem")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-x509-ca-cert"


def test_manifest_icons_exist() -> None:
    manifest = json.loads((ROOT / "manifest.json").read_text())
    for icon in manifest["icons"]:
        assert (ROOT / icon["src"]).is_file()


def test_self_signed_certificate_is_made_once_and_reused(tmp_path: Path) -> None:
    cert, key = tls.ensure_certificate(tmp_path)
    assert cert.parent == tmp_path / "tls" and (cert.stat().st_mode & 0o077) != 0o077
    assert key.stat().st_mode & 0o077 == 0  # the private key is private
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)  # uvicorn can load it
    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    for ip in tls.lan_addresses():
        assert ip in san.get_values_for_type(x509.IPAddress)
    before = cert.read_bytes(), key.read_bytes()
    assert tls.ensure_certificate(tmp_path) == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == before  # reused, so phones keep their exception


def test_certificate_is_reissued_under_the_same_ca_when_broken(tmp_path: Path) -> None:
    cert, key = tls.ensure_certificate(tmp_path)
    ca_before = tls.ca_certificate_path(tmp_path).read_bytes()
    key.write_text("garbage")
    tls.ensure_certificate(tmp_path)
    assert tls.ca_certificate_path(tmp_path).read_bytes() == ca_before  # a phone that trusts the CA still does
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)


def test_configured_certificate_is_used_as_is(tmp_path: Path) -> None:
    c, k = tmp_path / "c.pem", tmp_path / "k.pem"
    c.write_text("x")
    k.write_text("y")
    assert tls.ensure_certificate(tmp_path, c, k) == (c, k)
    assert not (tmp_path / "tls").exists()
    with pytest.raises(tls.TLSConfigError):
        tls.ensure_certificate(tmp_path, c, None)
    with pytest.raises(tls.TLSConfigError):
        tls.ensure_certificate(tmp_path, c, tmp_path / "missing.pem")
