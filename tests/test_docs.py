"""The README's configuration table and set-up commands stay true to the code."""

from pathlib import Path

from babelfish.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`--{name.replace('_', '-')}`" in readme, name
        assert f"`BABELFISH_{name.upper()}`" in readme, name


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh --test && python -m pytest" in readme
    assert "bash scripts/setup.sh --test\n" in ci and "python -m pytest" in ci
    assert "bash scripts/setup.sh && python server_cpu.py" in readme
