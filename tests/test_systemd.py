"""The shipped systemd unit: valid for systemd itself, and consistent with the server and the set-up script."""

from __future__ import annotations

import configparser
import logging
import re
import shutil
import subprocess
import sys

from babelfish import logs
from babelfish.cli import GRACEFUL_SHUTDOWN_SECONDS
from babelfish.writer import CLOSE_TIMEOUT
from tests.serverproc import ROOT

UNIT = ROOT / "babelfish.service"
VENV_PYTHON = "/opt/babelfish/venv/bin/python"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"  # scripts/setup.sh --test


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_systemd_analyze_verify(tmp_path):
    # The unit runs the venv that `scripts/setup.sh --venv /opt/babelfish/venv` makes; verify checks that the
    # command exists, so point it at this interpreter (everything else is verified as shipped).
    text = UNIT.read_text()
    assert f"ExecStart={VENV_PYTHON} -m babelfish " in text
    unit = tmp_path / "babelfish.service"
    unit.write_text(text.replace(VENV_PYTHON, sys.executable))
    out = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    # And it can fail: a bad value is reported.
    unit.write_text(unit.read_text().replace("CPUQuota=200%", "CPUQuota=lots"))
    out = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert "CPU quota" in out.stderr


def test_unit_matches_the_server():
    s = service()
    assert s["Type"] == "notify"  # babelfish.cli sends READY=1 (tests/test_access_server.py checks it arrives)
    assert re.fullmatch(r"\d+G", s["MemoryMax"]) and re.fullmatch(r"\d+%", s["CPUQuota"])
    drain = CLOSE_TIMEOUT + GRACEFUL_SHUTDOWN_SECONDS
    assert int(s["TimeoutStopSec"]) >= 2 * drain  # the drain, then the utterance in flight, before SIGKILL
    assert "--host 127.0.0.1" in s["ExecStart"]
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--venv" in setup and "--venv /opt/babelfish/venv" in UNIT.read_text()


def test_journald_lines_have_no_second_timestamp(tmp_path, monkeypatch):
    path = tmp_path / "journal"
    with path.open("w") as stream:
        st = path.stat()
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logs.under_journald(stream)
        logs.configure("info", stream)
        logging.getLogger("babelfish.x").warning("GET /ws/client?token=bf_secret&room=a")
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # someone else's stream: a terminal, a file
        assert not logs.under_journald(stream)
    assert path.read_text() == "<4>babelfish.x: GET /ws/client?token=***&room=a\n"
    logging.getLogger().handlers.clear()
