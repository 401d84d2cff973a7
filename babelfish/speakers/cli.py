"""`python -m babelfish speakers list | rename ID NAME | forget ID | export FILE | import FILE [--replace]`.

Works on the data dir's store directly, also while the server runs (the server picks the change up before
its next utterance). Settings come from `BABELFISH_*` variables, `--data-dir` overrides the data dir. With a Redis URL
(`--redis-url` or BABELFISH_REDIS_URL) it works on the cluster's shared store in Redis instead, which must answer.
Without one, on a data dir whose store joined a cluster (its `speakers/redis-joined` marker), it refuses unless
`--local` is given: a change made only to that server's local copy would be undone by the cluster (a voice forgotten
there stays in Redis and comes back).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from redis.exceptions import RedisError

from babelfish.config import Settings
from babelfish.speakers import backup, embedder
from babelfish.store.base import Store
from babelfish.store.sqlite import SqliteStore, database_path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m babelfish speakers", description="Known voices: list, name, forget, "
                                "back up and restore.")  # fmt: skip
    p.add_argument("--data-dir", type=Path, help="the server's data dir (default: BABELFISH_DATA_DIR or ./data)")
    p.add_argument("--redis-url", help="a cluster's Redis (default: BABELFISH_REDIS_URL): its shared speaker store")
    p.add_argument("--local", action="store_true", help="on a data dir that joined a cluster, work on this server's "
                   "local copy only (the cluster's Redis may undo it)")  # fmt: skip
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every known speaker")
    rename = sub.add_parser("rename", help="give a speaker a name")
    rename.add_argument("id")
    rename.add_argument("name")
    forget = sub.add_parser("forget", help="delete a speaker's voice data everywhere (store and automatic backups)")
    forget.add_argument("id")
    export = sub.add_parser("export", help="write a backup (the original deployment's JSON format)")
    export.add_argument("file", type=Path)
    restore = sub.add_parser("import", help="restore a backup; a bad file is refused and nothing changes")
    restore.add_argument("file", type=Path)
    restore.add_argument("--replace", action="store_true", help="drop every speaker not in the file")
    return p


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M") if t else "-"


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("redis_url", args.redis_url)) if v}
    settings = Settings(**overrides)
    store: Store
    if settings.redis_url:
        # The shared store itself: an admin change must reach every server, so no local fallback here.
        from babelfish.store.redis_store import RedisStore

        store = RedisStore(settings.redis_url)
    else:
        path = database_path(settings.data_dir)
        if (path.parent / "redis-joined").exists() and not args.local:
            print("[ERROR] this data dir's speaker store is a copy of a cluster's (Redis) store; a change here alone "
                  "would be undone by the cluster. Give --redis-url (or BABELFISH_REDIS_URL) to change the cluster's "
                  "store, or --local to work on this copy anyway. Nothing changed.", file=sys.stderr)  # fmt: skip
            return 2
        store = SqliteStore(path)
    try:
        return _run(args, settings, store)
    except (RedisError, OSError) as exc:
        print(f"[ERROR] the speaker store did not answer, nothing changed: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _run(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    if args.action == "list":
        records = store.speakers()
        if not records:
            print("no known speakers")
        for r in records:
            print(f"{r.id}\t{r.name}\tvia {r.via or '-'}\t{r.samples} utterance(s)\tlast heard {_when(r.updated)}"
                  f"\t{r.embedder}")  # fmt: skip
        return 0
    if args.action == "rename":
        name = " ".join(args.name.split())
        if not name or len(name) > settings.max_name_chars:
            print(f"[ERROR] a name is 1-{settings.max_name_chars} characters", file=sys.stderr)
            return 2
        if not store.rename(args.id, name):
            print(f"[ERROR] no speaker {args.id!r} (see: python -m babelfish speakers list)", file=sys.stderr)
            return 1
        print(f"{args.id} is now {name!r}")
        return 0
    if args.action == "forget":
        found = store.forget(args.id)
        purged = backup.purge(backup.backup_dir(settings.data_dir), args.id)
        if not found and not purged:
            print(f"[ERROR] no speaker {args.id!r}", file=sys.stderr)
            return 1
        print(f"forgot {args.id}: removed from the store and from {purged} automatic backup(s)")
        return 0
    if args.action == "export":
        records = store.speakers()
        backup.write_json_atomic(args.file, backup.to_json(records))
        print(f"wrote {len(records)} speaker(s) to {args.file} (voice embeddings: biometric data, keep it safe)")
        return 0
    # import
    target = embedder.expected(settings) or embedder.expected(settings.model_copy(update={"speaker_embedder": "auto"}))
    assert target is not None
    try:
        records = backup.read_backup(args.file, *target)
    except backup.BadBackup as exc:
        print(f"[ERROR] not imported, nothing changed: {exc}", file=sys.stderr)
        return 1
    store.put_all(records, replace=args.replace)
    print(f"imported {len(records)} speaker(s) from {args.file}" + (" (replacing all others)" if args.replace else ""))
    return 0
