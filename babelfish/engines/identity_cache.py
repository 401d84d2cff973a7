"""A small LRU keyed by object identity, for work done once per utterance and reused by a later stage.

Audio arrays and utterances are not hashable (and equal audio is not the same utterance), so entries are keyed by
`id()`. Each entry holds its key object, so that id cannot be reused by a new object while the entry lives.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class IdentityLRU(Generic[K, V]):
    """The values of the last `size` keys; thread-safe (engines run stages on several worker threads)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[int, tuple[K, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            hit = self._items.get(id(key))
            if hit is None or hit[0] is not key:
                return None
            self._items.move_to_end(id(key))
            return hit[1]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[id(key)] = (key, value)
            self._items.move_to_end(id(key))
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
