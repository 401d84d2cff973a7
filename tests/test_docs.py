"""The README's configuration table and set-up commands stay true to the code."""

import json
import re
from pathlib import Path
from typing import get_args

from babelfish import protocol as proto
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


# --- docs/protocol.md against babelfish/protocol.py ---------------------------------------------------


def _doc_examples() -> list[dict]:
    """Every message example in docs/protocol.md: ```json blocks and inline `{"type": ...}` spans."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    spans = re.findall(r"```json\n(.*?)```", text, re.S) + re.findall(r"`(\{\"type\"[^`]*\})`", text)
    examples = []
    for raw in spans:
        try:
            examples.append(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"docs/protocol.md: example is not JSON ({exc}):\n{raw}") from None
    return examples


def test_protocol_doc_shows_every_server_message_as_typed():
    examples = _doc_examples()
    for model in get_args(proto.ServerMessage):
        kind = model.model_fields["type"].default
        shown = [e for e in examples if e.get("type") == kind]
        assert shown, f"docs/protocol.md has no example of {kind!r}"
        for example in shown:
            model.model_validate(example)  # right names, types and nesting
        documented = set().union(*(e.keys() for e in shown))
        assert documented == set(model.model_fields), (
            f"{kind}: documented {documented}, typed {set(model.model_fields)}"
        )


def test_protocol_doc_examples_from_clients_are_accepted():
    for example in _doc_examples():
        if example["type"] in {"join", "end_utterance", "ping", "rename_speaker"}:
            proto.parse_client_message(json.dumps(example), 4096)


def test_protocol_doc_lists_every_error_and_notice_code():
    text = (ROOT / "docs" / "protocol.md").read_text()
    table = text[text.index("## 5. Errors") :]
    first_column = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    rows = {code for cell in first_column for code in re.findall(r"`(\w+)`", cell)}
    assert rows == set(get_args(proto.ErrorCode))
    for code in get_args(proto.NoticeCode):
        assert f"`{code}`" in text, code


def test_deployment_guide_quotes_what_the_server_prints():
    """The troubleshooting section quotes log lines; each must still be printed by the code (or by uvicorn)."""
    import uvicorn

    guide = (ROOT / "docs" / "deployment.md").read_text()
    sources = "".join(p.read_text() for p in (ROOT / "babelfish").rglob("*.py"))
    sources += "".join(p.read_text() for p in Path(uvicorn.__file__).parent.rglob("*.py"))
    quoted = {
        "Port 9000 is already in use on 0.0.0.0": "is already in use on",
        "[ERROR] invalid settings": "[ERROR] invalid settings",
        "refused websocket /ws/client from": "refused %s %s from %s: %s",
        "wrong passcode for room 'team' from": "wrong passcode for room %r from %s",
        "needs its passcode, and this one is wrong or missing": "needs its passcode, and this one is wrong or missing",
        "this server needs an access token": "this server needs an access token",
        "it reads too slowly (send queue full)": "it reads too slowly (send queue full)",
        "draining clients before shutdown": "draining clients before shutdown",
        "Invalid HTTP request received.": "Invalid HTTP request received.",
        "with --access open: anyone who can reach port 9000": "with --access open: anyone who can reach port %d",
    }
    for in_guide, in_code in quoted.items():
        assert in_guide in guide, in_guide
        assert in_code in sources, in_code
