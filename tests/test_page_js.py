"""The page's pure logic (static/js: addresses, backoff, the connection state machine, the message reducer) under
node's own test runner. The test files are tests/js/*.test.js; `npm test` (package.json) runs the same thing."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.serverproc import ROOT

NODE = shutil.which("node")


def test_page_logic_under_node() -> None:
    assert NODE, "no node: bash scripts/setup.sh --test installs Debian's nodejs"
    files = sorted((ROOT / "tests" / "js").glob("*.test.js"))
    assert files
    run = subprocess.run(
        [NODE, "--test", "--test-reporter=tap", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    passed = re.search(r"^# pass (\d+)", out, re.M)
    assert passed and int(passed.group(1)) >= len(files), out[-2000:]


def test_service_worker_caches_every_page_file() -> None:
    """The page is modules now: one missing from the worker's list and the installed app breaks offline."""
    shell = set(re.findall(r'"\./([^"]+)"', (ROOT / "static" / "sw.js").read_text()))
    page_files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "static").rglob("*") if p.suffix in {".js", ".css"}}
    assert page_files - {"static/sw.js"} <= shell, sorted(page_files - shell)
    assert all((ROOT / p).is_file() for p in shell if p), sorted(p for p in shell if p and not (ROOT / p).is_file())


def test_every_module_import_resolves() -> None:
    """No bundler checks imports: a renamed module must fail here, not in a user's browser."""
    js = ROOT / "static" / "js"
    for module in js.glob("*.js"):
        for target in re.findall(r'^import\s+(?:[^"\']*from\s+)?["\'](\.[^"\']+)["\']', module.read_text(), re.M):
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports missing {target}"
