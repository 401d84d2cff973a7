"""The browser side: the thin client page, its PWA files, and QR codes for join links.

`make_router()` returns a FastAPI router the app includes (`app.include_router(web.router)`):

- `/` and `/client_thin.html` — the client's entry page (always revalidated, so updates arrive at once)
- `/manifest.json`, `/sw.js` (root scope); `/static/...` (the page's modules, styles, worklet and icons) is mounted
  by the app from `static_files()`
- `/qr.svg?data=<text>` — a QR code drawn by `segno`, for inviting phones into a room
- `/ca.pem` — the local CA certificate when the server made its own (see babelfish.tls), for phones to trust
"""

from __future__ import annotations

import io
import os
from os import PathLike
from pathlib import Path

import segno
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

ROOT = Path(__file__).resolve().parent.parent
QR_MAX_CHARS = 1024  # a join link is ~100 characters; this keeps codes scannable and the endpoint cheap

# The page, its modules and the worker are revalidated on every load (an ETag makes that a 304), so an update never
# meets a browser holding half old and half new modules; the favicon may be cached a day.
NO_CACHE = {"Cache-Control": "no-cache"}
SECURITY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def make_router(static_dir: Path | None = None, root_dir: Path = ROOT, ca_cert: Path | None = None) -> APIRouter:
    """Routes for the web client. `static_dir` defaults to <repo>/static; `ca_cert` enables GET /ca.pem.

    `/static/...` itself is Starlette's StaticFiles, mounted by the app (see `static_files`)."""
    static = (static_dir or root_dir / "static").resolve()
    page = root_dir / "client_thin.html"
    manifest = root_dir / "manifest.json"
    router = APIRouter(tags=["web"])

    def _file(path: Path, media_type: str, headers: dict[str, str]) -> FileResponse:
        if not path.is_file():
            raise HTTPException(404, f"{path.name} is not installed")
        return FileResponse(path, media_type=media_type, headers={**SECURITY, **headers})

    @router.get("/", include_in_schema=False)
    @router.get("/client_thin.html", include_in_schema=False)
    def client_page() -> FileResponse:
        return _file(page, "text/html; charset=utf-8", NO_CACHE)

    @router.get("/manifest.json", include_in_schema=False)
    def web_manifest() -> FileResponse:
        return _file(manifest, "application/manifest+json", NO_CACHE)

    @router.get("/sw.js", include_in_schema=False)
    def service_worker() -> FileResponse:
        # Served from the root so its scope covers "/" and "/client_thin.html".
        return _file(static / "sw.js", "text/javascript; charset=utf-8", {**NO_CACHE, "Service-Worker-Allowed": "/"})

    @router.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return _file(static / "icons" / "icon-192.png", "image/png", {"Cache-Control": "public, max-age=86400"})

    @router.get("/qr.svg", include_in_schema=False)
    def qr_svg(data: str = Query(..., min_length=1, max_length=QR_MAX_CHARS)) -> Response:
        try:
            qr = segno.make(data, error="m", micro=False)
        except segno.DataOverflowError:
            raise HTTPException(413, "too much data for a QR code") from None
        buf = io.BytesIO()
        qr.save(buf, kind="svg", scale=8, border=4, dark="#000", light="#fff", xmldecl=False, svgns=True)
        return Response(
            buf.getvalue(),
            media_type="image/svg+xml",
            headers={
                **SECURITY,
                "Cache-Control": "public, max-age=3600",
                "Content-Security-Policy": "default-src 'none'",
            },
        )

    if ca_cert is not None:

        @router.get("/ca.pem", include_in_schema=False)
        def ca_certificate() -> FileResponse:
            # Public by nature. This MIME type makes Android and iOS offer to install it.
            return _file(
                ca_cert,
                "application/x-x509-ca-cert",
                {"Content-Disposition": 'attachment; filename="babblefish-ca.crt"'},
            )

    return router


class _RevalidatedStaticFiles(StaticFiles):
    """StaticFiles whose answers carry `no-cache`: without it browsers cache by heuristics for hours."""

    def file_response(
        self, full_path: PathLike[str] | str, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update({**SECURITY, **NO_CACHE})
        return response


def static_files(static_dir: Path | None = None) -> StaticFiles:
    """The page's modules, styles and icons under /static (revalidated by ETag, no path escapes)."""
    return _RevalidatedStaticFiles(directory=static_dir or ROOT / "static")
