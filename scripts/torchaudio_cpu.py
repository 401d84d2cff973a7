"""Make torchaudio importable beside our CPU torch (run by setup.sh after pip).

PyPI's newest torchaudio (2.11) is a CUDA build compiled against torch 2.11; beside torch 2.13.0+cpu its compiled
library cannot load (`libc10_cuda.so` missing, and another torch ABI), so `import torchaudio` and with it
`import pyannote.audio` fail. There is no CPU torchaudio for torch 2.13 on PyPI. torchaudio runs without its compiled
library when none is there (it supports that for pex deployments), and everything pyannote's embedding models use
from it (Kaldi fbank, MFCC, resample) is pure Python on top of torch. So when the library fails to load, this sets it
aside (renamed *.so.disabled) and checks that `import pyannote.audio` then works.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path


def _imports(module: str) -> tuple[bool, str]:
    env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "false"}
    run = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, env=env)
    return run.returncode == 0, (run.stderr.strip().splitlines() or [""])[-1]


def main() -> int:
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or spec.origin is None:
        return 0  # not installed: nothing to do
    ok, why = _imports("torchaudio")
    if not ok:
        lib = Path(spec.origin).parent / "lib"
        for so in sorted(lib.glob("*.so")):
            so.rename(so.with_name(so.name + ".disabled"))
        print(f"[setup] torchaudio's compiled library does not load beside this torch ({why}); set it aside")
    if importlib.util.find_spec("pyannote") is not None:
        ok, why = _imports("pyannote.audio")
        if not ok:
            print(f"[setup] ERROR: pyannote.audio still does not import: {why}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
