"""The int8 kernels Whisper and the MT models run on, and how to run another CPU's kernels on this one.

CTranslate2 multiplies int8 matrices with Intel's oneMKL on a GenuineIntel CPU and with oneDNN on any other (AMD),
each at the widest instruction set the CPU has. The paths round differently (AVX2's 8-bit multiply-add saturates
at 16 bits, AVX-512 VNNI's does not), so a one-word turn or a burst of noise can decode to other words on another
machine: a test that held on an Intel Xeon once failed on an AMD EPYC. Both libraries take an environment
variable that selects or caps them, and CTranslate2 reads it when it first multiplies, so one machine can run the
other machines' paths for tests and benchmarks (their words, not their speed: the timings are this CPU's).

Set a path's `env` before the process first loads a model (`apply`, or a child process's environment).
"""

from __future__ import annotations

import os
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
    isa: str  # the widest instructions the library may use: "AVX2" or "AVX512"


PATHS = {
    p.name: p
    for p in (
        KernelPath("mkl-avx512", "Intel CPUs with AVX-512 (Xeon since Skylake-SP)", {"CT2_USE_MKL": "1"}, "MKL",
                   "AVX512"),
        KernelPath("mkl-avx2", "Intel CPUs without AVX-512 (most desktops and laptops)",
                   {"CT2_USE_MKL": "1", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}, "MKL", "AVX2"),
        KernelPath("dnnl-avx2", "AMD CPUs up to Zen 3 (EPYC 7002/7003, Ryzen 5000)",
                   {"CT2_USE_MKL": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"}, "DNNL", "AVX2"),
        KernelPath("dnnl-avx512", "AMD CPUs since Zen 4 (EPYC 9004, Ryzen 7000)", {"CT2_USE_MKL": "0"}, "DNNL",
                   "AVX512"),
    )
}  # fmt: skip


def _cpuinfo() -> tuple[str, set[str]]:
    """(vendor, flags) of the first CPU in /proc/cpuinfo."""
    vendor, flags = "", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    return vendor, flags


def has_avx512() -> bool:
    return "avx512f" in _cpuinfo()[1]


def native() -> str:
    """The path this CPU takes when nothing is set (CTranslate2 uses MKL only on GenuineIntel)."""
    vendor, flags = _cpuinfo()
    lib = "mkl" if vendor == "GenuineIntel" else "dnnl"
    return f"{lib}-{'avx512' if 'avx512f' in flags else 'avx2'}"


def runnable() -> list[str]:
    """The paths this CPU can run: a cap can only lower the instruction set."""
    return [name for name, p in PATHS.items() if p.isa == "AVX2" or has_avx512()]


def others() -> list[str]:
    """The AVX2 paths this CPU does not take by itself: where another machine's words differ most from its own
    (between two AVX-512 paths, VNNI's exact sums gave the same words)."""
    mine = native()
    return [name for name in runnable() if name != mine and PATHS[name].isa == "AVX2"]


_KEYS = {key for p in PATHS.values() for key in p.env}


def environment(name: str | None, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with path `name`'s variables set and the other paths' removed (None: none set, the CPU's own path)."""
    return {**{k: v for k, v in base.items() if k not in _KEYS}, **(PATHS[name].env if name else {})}


def apply(name: str) -> KernelPath:
    """Run this process on path `name` (before it loads a model); returns the path."""
    for key in _KEYS - PATHS[name].env.keys():
        os.environ.pop(key, None)
    os.environ.update(PATHS[name].env)
    return PATHS[name]


# Loads Whisper and decodes a second of silence: the libraries log what they chose at their first use.
_PROBE = """
import sys
import numpy as np
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=1)
segments, _ = model.transcribe(np.zeros(16000, np.float32), language="en", beam_size=1, vad_filter=False)
list(segments)
"""


def observed(name: str | None, model: Path, timeout: float = 120) -> tuple[str, str]:
    """(GEMM backend, instruction set) that CTranslate2 and its library report in a child process on path `name`
    (None: with none of the variables): what the environment really selected."""
    env = {**environment(name, os.environ), "CT2_VERBOSE": "1", "MKL_VERBOSE": "1", "ONEDNN_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(model)], env=env, capture_output=True, text=True,
                         timeout=timeout, check=True)  # fmt: skip
    log = out.stdout + out.stderr
    backend = re.search(r"GEMM_S8 backend: (\w+)", log)
    # oneMKL: "... Intel(R) Advanced Vector Extensions 2 (Intel(R) AVX2) enabled processors" or "... (Intel(R)
    # AVX-512) ..."; oneDNN: "onednn_verbose,info,cpu,isa:Intel AVX2" or "...isa:Intel AVX-512 ..."
    isa = re.search(r"(?:MKL_VERBOSE oneMKL.*?\(Intel\(R\) |cpu,isa:Intel )(AVX-512|AVX2)", log)
    return (backend.group(1) if backend else "?", isa.group(1).replace("AVX-512", "AVX512") if isa else "?")


def kernels_line(name: str | None) -> str:
    """What a benchmark prints first: the kernels its numbers come from."""
    if name is None or name == native():
        mine = native()
        return f"kernels: {mine}, this CPU's own ({PATHS[mine].machines})"
    return f"kernels: {name}, as on {PATHS[name].machines} (emulated here: its words, this CPU's speed)"
