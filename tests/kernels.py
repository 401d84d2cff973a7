"""The int8 kernels Whisper and the MT models run on, and how to run another CPU's kernels on this one.

CTranslate2 multiplies int8 matrices with Intel's oneMKL on a GenuineIntel CPU and with oneDNN on any other (AMD),
and runs Whisper's convolutions with oneDNN on both, each library at the widest instructions the CPU has. The paths
round differently (AVX2's 8-bit multiply-add saturates at 16 bits), so a one-word turn or a burst of noise can
decode to other words on another machine: a test that held on an Intel Xeon once failed on an AMD EPYC. Both
libraries take environment variables that select or cap them, read when they first run, so one machine can run the
other machines' paths for tests and benchmarks (their words, not their speed: the timings are this CPU's).

Set a path's variables before the process first loads a model (`apply`, or a child's `environment`).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KernelPath:
    name: str
    machines: str  # the CPUs that take it by themselves
    env: dict[str, str]
    backend: str  # CTranslate2's int8 GEMM backend, as its log names it
    isa: str  # the widest instructions the libraries may use: "AVX2" or "AVX512"


PATHS = {
    p.name: p
    for p in (
        KernelPath("mkl-avx512", "Intel CPUs with AVX-512 (Xeon Scalable)", {"CT2_USE_MKL": "1"}, "MKL", "AVX512"),
        KernelPath("mkl-avx2", "Intel CPUs without AVX-512 or AVX-VNNI (Haswell to Comet Lake)",
                   {"CT2_USE_MKL": "1", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, "MKL",
                   "AVX2"),
        KernelPath("dnnl-avx2", "AMD CPUs up to Zen 3 (EPYC 7002/7003, Ryzen 5000)",
                   {"CT2_USE_MKL": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"}, "DNNL", "AVX2"),
        KernelPath("dnnl-avx512", "AMD CPUs since Zen 4 (EPYC 9004, Ryzen 7000)", {"CT2_USE_MKL": "0"}, "DNNL",
                   "AVX512"),
    )
}  # fmt: skip

# Every variable that steers the same choices: a path clears those it does not set (a shell's or CI's own would
# otherwise pick another path unseen). DNNL_MAX_CPU_ISA is oneDNN's older name for its cap.
_KEYS = {key for p in PATHS.values() for key in p.env} | {"DNNL_MAX_CPU_ISA", "CT2_FORCE_CPU_ISA", "MKL_CBWR"}


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(vendor, flags) of the first CPU in /proc/cpuinfo; empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", frozenset()
    vendor, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key.strip() == "flags":
            flags = frozenset(value.split())
            break
    return vendor, flags


def supported() -> bool:
    """An x86-64 CPU with AVX2 on Linux: where the paths below exist (ARM runs other kernels)."""
    return platform.machine() in ("x86_64", "AMD64") and "avx2" in _cpuinfo()[1]


def native() -> str | None:
    """The path this CPU takes when nothing is set (CTranslate2 uses oneMKL only on GenuineIntel); None off x86-64
    with AVX2. An Intel CPU with AVX-VNNI but not AVX-512 (Alder Lake on) takes a fifth path, named mkl-avx2 here."""
    if not supported():
        return None
    vendor, flags = _cpuinfo()
    lib = "mkl" if vendor == "GenuineIntel" else "dnnl"
    return f"{lib}-{'avx512' if 'avx512f' in flags else 'avx2'}"


def runnable() -> list[str]:
    """The paths this CPU can run: a cap only lowers the instructions, and oneMKL runs Intel's kernels on Intel CPUs
    only: on an AMD EPYC with AVX-512 its log names no instruction set, with MKL_ENABLE_INSTRUCTIONS or without (a
    generic path, not an Intel machine's)."""
    if not supported():
        return []
    vendor, flags = _cpuinfo()
    return [
        name
        for name, p in PATHS.items()
        if (p.isa == "AVX2" or "avx512f" in flags) and (p.backend != "MKL" or vendor == "GenuineIntel")
    ]


def others() -> list[str]:
    """The AVX2 paths this CPU does not take by itself, where another machine's words differ most from its own (on
    this project's Xeon, with AVX-512 VNNI, the two AVX-512 paths gave the same words)."""
    mine = native()
    return [name for name in runnable() if name != mine and PATHS[name].isa == "AVX2"]


def environment(name: str | None, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with path `name`'s variables set and every other one that steers the choice removed (None: none set,
    the CPU's own path)."""
    return {**{k: v for k, v in base.items() if k not in _KEYS}, **(PATHS[name].env if name else {})}


def apply(name: str) -> KernelPath:
    """Run this process on path `name` (before it loads a model); returns the path."""
    for key in _KEYS:
        os.environ.pop(key, None)
    os.environ.update(PATHS[name].env)
    return PATHS[name]


def select(parser: argparse.ArgumentParser, name: str | None) -> str | None:
    """A benchmark's `--kernels NAME`: refused unless this CPU runs it; none given, this CPU's own path. Applied (before
    any model loads, so a server started after inherits it; stray variables cleared too); returns the path's name
    (None off x86-64 with AVX2)."""
    if name and name not in runnable():
        parser.error(f"--kernels: this CPU runs {', '.join(runnable()) or 'none of them'}")
    name = name or native()
    if name:
        apply(name)
    return name


def kernels_line(name: str | None) -> str:
    """What a benchmark prints first: the kernels its numbers come from."""
    if name is None:
        return "kernels: this CPU's own (not an x86-64 CPU with AVX2: none of tests/kernels.py's paths)"
    if name == native():
        return f"kernels: {name}, this CPU's own ({PATHS[name].machines})"
    return f"kernels: {name}, as on {PATHS[name].machines} (emulated here: its words, this CPU's speed)"


# Loads Whisper and decodes a second of silence: the libraries log what they chose when they first run.
_PROBE = """
import sys
import numpy as np
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=1)
segments, _ = model.transcribe(np.zeros(16000, np.float32), language="en", beam_size=1, vad_filter=False)
list(segments)
"""
# oneMKL: "... Intel(R) Advanced Vector Extensions 2 (Intel(R) AVX2) enabled processors" or "... (Intel(R) AVX-512)
# ..."; oneDNN: "onednn_verbose,info,cpu,isa:Intel AVX2" or "...isa:Intel AVX-512 with ...".
_ISA = {
    "oneMKL": re.compile(r"MKL_VERBOSE oneMKL.*?\(Intel\(R\) (AVX-512|AVX2)\)"),
    "oneDNN": re.compile(r"cpu,isa:Intel (AVX-512|AVX2)"),
}


def expected(name: str) -> tuple[str, dict[str, str]]:
    """What `observed` should find on path `name`: oneDNN runs Whisper's convolutions on every path."""
    path = PATHS[name]
    return path.backend, {"oneDNN": path.isa} | ({"oneMKL": path.isa} if path.backend == "MKL" else {})


def observed(name: str | None, model: Path, timeout: float = 120) -> tuple[str, dict[str, str]]:
    """(int8 GEMM backend, the instructions each library that ran reported) in a child process on path `name` (None:
    with none of the variables): what the environment really selected."""
    env = {**environment(name, os.environ), "CT2_VERBOSE": "1", "MKL_VERBOSE": "1", "ONEDNN_VERBOSE": "1"}
    run = subprocess.run([sys.executable, "-c", _PROBE, str(model)], env=env, capture_output=True, text=True,
                         timeout=timeout)  # fmt: skip
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"the probe on {name or 'this CPU'} failed:\n{log[-3000:]}"
    backend = re.search(r"GEMM_S8 backend: (\w+)", log)
    isas = {lib: found.group(1).replace("AVX-512", "AVX512") for lib, rx in _ISA.items() if (found := rx.search(log))}
    return (backend.group(1) if backend else "?", isas)
