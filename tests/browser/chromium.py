"""Debian's Chromium for the browser tests and bench/browser_mic.py: where it is, and how it is started."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = os.environ.get("BABELFISH_CHROMIUM", "/usr/bin/chromium")


def chromium_args(capture_wav: Path) -> list[str]:
    """Headless flags; the fake microphone plays `capture_wav` in a loop."""
    return [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={capture_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]  # fmt: skip
