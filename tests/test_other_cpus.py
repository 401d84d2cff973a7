"""What the real models hear holds on other CPUs too: the tests marked `models` run again on the int8 kernels of the
machines this one is not (tests/kernels.py), in a child pytest each.

CI runs on whatever machine it is given, an Intel Xeon one day and an AMD EPYC the next, and a test that asserts
what Whisper heard must pass on both. On an Intel Xeon this runs them on an AMD EPYC's oneDNN (AVX2) and on an Intel
CPU's oneMKL without AVX-512; on an AMD CPU with AVX-512, on oneDNN's AVX2 (oneMKL's choices on AMD are not checked).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from babelfish.engines.cascade.models import resolve_whisper
from tests.kernels import PATHS, environment, expected, native, observed, others, runnable, supported

if not supported():
    pytest.skip("the kernel paths are x86-64 Linux ones, with AVX2", allow_module_level=True)

pytestmark = pytest.mark.models  # `-m "not models"` leaves it out with the rest (the child ignores this file)

ROOT = Path(__file__).resolve().parent.parent
MODEL_TESTS_SECONDS = 900  # the marked tests take about 110 s on an emulated path (70 s on its own)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resolve_whisper("", tmp_path_factory.mktemp("data"))[0]


def test_this_cpu_takes_the_path_named_its_own(whisper: Path) -> None:
    mine = native()
    assert mine is not None and observed(None, whisper) == expected(mine)


@pytest.mark.parametrize("name", runnable())
def test_each_path_is_what_its_variables_select(name: str, whisper: Path) -> None:
    """Every library that ran (oneMKL or oneDNN for the int8 GEMM, oneDNN for the convolutions) at the path's
    instructions."""
    assert observed(name, whisper) == expected(name)


@pytest.mark.timeout(MODEL_TESTS_SECONDS + 60)
@pytest.mark.parametrize("name", others())
def test_the_model_tests_pass_on_another_cpus_kernels(name: str) -> None:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "models", "tests",
            f"--ignore={Path(__file__).relative_to(ROOT)}"]  # fmt: skip
    env = {**environment(name, os.environ), "PYTHONUNBUFFERED": "1"}
    # A session of its own: on a timeout the servers its tests started go with it.
    child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace", start_new_session=True)  # fmt: skip
    try:
        out, _ = child.communicate(timeout=MODEL_TESTS_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
            os.killpg(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        pytest.fail(f"the model tests on {name} ran past {MODEL_TESTS_SECONDS} s:\n{out[-4000:]}")
    summary = (out.strip().splitlines() or ["(no output)"])[-1]
    assert child.returncode == 0, f"on {name} ({PATHS[name].machines}): {summary}\n{out[-8000:]}"
    assert " passed" in summary, summary  # exit 0 with every test skipped would prove nothing
