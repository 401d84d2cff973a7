"""`python -m babelfish COMMAND ...`: the admin commands, each in its own module.

With no command (or an option first) it runs the server, like `python server_cpu.py`.
"""

from __future__ import annotations

import importlib
import sys

# command -> module with a `main(argv: list[str]) -> int`. Imported only when asked for: no work at import time.
COMMANDS: dict[str, str] = {
    "serve": "babelfish.cli",
    "fetch-models": "babelfish.fetch_models",
    "tokens": "babelfish.tokens",
    "speakers": "babelfish.speakers.cli",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        args = ["serve", *args]
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}; commands: {', '.join(sorted(COMMANDS))}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
