"""Which speaker store a server uses: the local SQLite file alone, or (with `--redis-url`) the cluster's shared one."""

from __future__ import annotations

from babelfish.config import Settings
from babelfish.store.base import Store
from babelfish.store.sqlite import SqliteStore, database_path


def open_store(settings: Settings) -> Store:
    local = SqliteStore(database_path(settings.data_dir))
    if not settings.redis_url:
        return local
    from babelfish.store.redis_store import RedisStore
    from babelfish.store.shared import SharedStore

    return SharedStore(RedisStore(settings.redis_url), local, database_path(settings.data_dir).parent)
