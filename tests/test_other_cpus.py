"""What the real models hear holds on other CPUs too: the tests marked `models` run again on the int8 kernels of the
machines this one is not (tests/kernels.py), in a child pytest each.

CI runs on whatever machine it is given, an Intel Xeon one day and an AMD EPYC the next, and a test that asserts
what Whisper heard must pass on both. On an Intel Xeon this runs them on an AMD EPYC's oneDNN (AVX2) and on an Intel
desktop's oneMKL (AVX2); on an AMD EPYC, on oneMKL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from babelfish.engines.cascade.models import resolve_whisper
from tests.kernels import PATHS, environment, native, observed, others, runnable

ROOT = Path(__file__).resolve().parent.parent
MODEL_TESTS_SECONDS = 900  # the marked tests take about 2 minutes on one path (3 on the slowest)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resolve_whisper("", tmp_path_factory.mktemp("data"))[0]


def test_this_cpu_takes_the_path_named_its_own(whisper: Path) -> None:
    assert observed(None, whisper) == (PATHS[native()].backend, PATHS[native()].isa)


@pytest.mark.parametrize("name", runnable())
def test_each_path_is_what_its_variables_select(name: str, whisper: Path) -> None:
    assert observed(name, whisper) == (PATHS[name].backend, PATHS[name].isa)


@pytest.mark.timeout(MODEL_TESTS_SECONDS + 60)
@pytest.mark.parametrize("name", others())
def test_the_model_tests_pass_on_another_cpus_kernels(name: str) -> None:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "models", "tests"]
    try:
        run = subprocess.run(argv, cwd=ROOT, env=environment(name, os.environ), capture_output=True, text=True,
                             timeout=MODEL_TESTS_SECONDS)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the model tests on {name} ran past {MODEL_TESTS_SECONDS} s:\n{str(exc.stdout or '')[-4000:]}")
    summary = run.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert run.returncode == 0, f"on {name} ({PATHS[name].machines}): {summary[0]}\n{run.stdout[-8000:]}"
    assert " passed" in summary[0], summary  # exit 0 with nothing collected would prove nothing
