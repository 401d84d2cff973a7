"""Logging for the server: one handler for our lines and uvicorn's, secrets scrubbed, journald-aware.

Under systemd (stderr is the journal: JOURNAL_STREAM names it) lines carry no timestamp of their own (the journal
stamps every line) and start with a syslog priority like `<4>`, so `journalctl -p warning` filters by level.
Access tokens and passcodes travel in URLs (`?token=`, `?passcode=`): uvicorn's access and WebSocket lines would print
them, so every line goes through `redact` first. Audio never reaches a log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import TextIO

SECRET_RE = re.compile(r"((?:token|passcode)=)[^&\s\"'#]+", re.IGNORECASE)
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def redact(text: str) -> str:
    return SECRET_RE.sub(r"\1***", text)


class Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JournalFormatter(Redacting):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in text.splitlines())  # a traceback keeps its level on every line


def under_journald(stream: TextIO = sys.stderr) -> bool:
    """True when `stream` is connected to the journal (systemd sets JOURNAL_STREAM=<device>:<inode> for it)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def configure(level: str, stream: TextIO = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    if under_journald(stream):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
