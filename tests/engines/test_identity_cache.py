"""The identity-keyed LRU the engines keep per-utterance work in."""

import numpy as np

from babelfish.engines.identity_cache import IdentityLRU


def test_keyed_by_identity_not_equality():
    cache: IdentityLRU[np.ndarray, str] = IdentityLRU(4)
    a, same_samples = np.zeros(10), np.zeros(10)
    cache.put(a, "a")
    assert cache.get(a) == "a"
    assert cache.get(same_samples) is None  # equal audio is another utterance


def test_least_recently_used_goes_first():
    cache: IdentityLRU[object, int] = IdentityLRU(2)
    a, b, c = object(), object(), object()
    cache.put(a, 1)
    cache.put(b, 2)
    assert cache.get(a) == 1  # a is now the most recent
    cache.put(c, 3)
    assert (cache.get(a), cache.get(b), cache.get(c)) == (1, None, 3) and len(cache) == 2


def test_an_entry_keeps_its_key_alive_so_its_id_is_not_reused():
    cache: IdentityLRU[list[int], str] = IdentityLRU(2)
    cache.put([1, 2], "x")  # no other reference to the list: only the cache holds it
    assert [cache.get(obj) for obj in ([1, 2], [3])] == [None, None]
    assert len(cache) == 1
