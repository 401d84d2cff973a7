"""Access tokens: issued and revoked by the operator, kept hashed in `<data_dir>/tokens.json`.

    python -m babelfish tokens create NAME [--operator]   # prints the token once; only its hash is stored
    python -m babelfish tokens list
    python -m babelfish tokens revoke NAME

Tokens are 256-bit random strings, so a plain SHA-256 is enough to store them (a slow password hash guards
guessable secrets; these are not guessable). The running server re-reads the file when it changes: a revoked token
is refused from the next connection on, and the server closes the connections already open with it within a few
seconds (babelfish.gate.close_revoked), without a restart. An operator token also opens `/metrics` from afar.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

FILENAME = "tokens.json"
NAME_RE = re.compile(r"^[\w.@-]{1,64}$")
PREFIX = "bf_"  # recognisable in a config file or a secret scanner


@dataclass(frozen=True)
class Token:
    name: str
    sha256: str
    created: str  # ISO 8601, UTC
    operator: bool = False


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """The token file. Reads are cached until the file's mtime/size/inode change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, Token] = {}

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> TokenStore:
        return cls(data_dir / FILENAME)

    def _tokens(self) -> dict[str, Token]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._by_hash = None, {}
            return self._by_hash
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            data = json.loads(self.path.read_text())
            self._by_hash = {t["sha256"]: Token(**t) for t in data.get("tokens", [])}
            self._stamp = stamp
        return self._by_hash

    def check(self, secret: str) -> Token | None:
        """The token `secret` names, or None if it is unknown or revoked."""
        if not secret or len(secret) > 256:
            return None
        return self._tokens().get(_digest(secret))  # a dict lookup by hash: no timing leak about the secret

    def in_force(self, token: Token) -> bool:
        """Whether `token` (found by `check` earlier) is still valid: not revoked since."""
        return token.sha256 in self._tokens()

    def list(self) -> list[Token]:
        return sorted(self._tokens().values(), key=lambda t: t.name)

    def create(self, name: str, operator: bool = False) -> str:
        if not NAME_RE.match(name):
            raise ValueError("a token name is 1-64 letters, digits or . _ @ -")
        if any(t.name == name for t in self.list()):
            raise ValueError(f"a token named {name!r} exists; revoke it first")
        secret = PREFIX + secrets.token_urlsafe(32)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._save([*self.list(), Token(name, _digest(secret), created, operator)])
        return secret

    def revoke(self, name: str) -> bool:
        tokens = self.list()
        kept = [t for t in tokens if t.name != name]
        if len(kept) == len(tokens):
            return False
        self._save(kept)
        return True

    def _save(self, tokens: Sequence[Token]) -> None:  # not `list[...]`: in this class `list` is the method
        """Atomically, readable by the owner only: a reader never sees half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:  # mkstemp creates the file 0600
                json.dump({"version": 1, "tokens": [asdict(t) for t in tokens]}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None


def main(argv: list[str]) -> int:
    from babelfish.config import Settings  # the same BABELFISH_DATA_DIR the server reads

    p = argparse.ArgumentParser(prog="python -m babelfish tokens", description="Manage access tokens.")
    p.add_argument("--data-dir", type=Path, default=None, help="server data dir (default: BABELFISH_DATA_DIR or data)")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="issue a token and print it (only once)")
    create.add_argument("name")
    create.add_argument("--operator", action="store_true", help="may also read /metrics from other machines")
    sub.add_parser("list", help="names of the tokens in force")
    revoke = sub.add_parser("revoke", help="revoke a token: its open connections close too")
    revoke.add_argument("name")
    args = p.parse_args(argv)
    store = TokenStore.in_data_dir(args.data_dir or Settings().data_dir)
    try:
        if args.action == "create":
            secret = store.create(args.name, args.operator)
            print(secret)
            print(
                f"token {args.name!r} created{' (operator)' if args.operator else ''}; it is shown only now. "
                f"Page link: https://<server>/#token={secret}",
                file=sys.stderr,
            )
        elif args.action == "list":
            for t in store.list():
                print(f"{t.name}\t{t.created}\t{'operator' if t.operator else 'user'}")
        elif not store.revoke(args.name):
            print(f"no token named {args.name!r}", file=sys.stderr)
            return 1
        else:
            print(f"token {args.name!r} revoked", file=sys.stderr)
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
