"""What a sweep does not change, computed once per workload object.

A sweep (or any loop over the Python API) simulates one parsed workload under many clusters
and options; its policy layout and its split into micro-batches depend only on the workload
and a few plan inputs, not on the cluster's bandwidths. They are kept per workload object (by
identity, dropped when the workload is), keyed by those inputs. Warnings the computation gave
are given again on every use, so a cached call says exactly what a fresh one would.
"""
from __future__ import annotations

import warnings

# the C module (the weakref module around it is 2.6 M instructions to import, a run's 1%)
from _weakref import ref

_CACHE: dict[int, dict] = {}
#: the weak reference that drops a workload's slot when the workload goes (kept alive here)
_REFS: dict[int, ref] = {}


def _dropper(wid: int):
    # the dicts held by the closure: at interpreter shutdown the module's globals are None
    # by the time a last workload goes
    cache, refs = _CACHE, _REFS

    def drop(_gone: ref) -> None:
        cache.pop(wid, None)
        refs.pop(wid, None)
    return drop


def per_workload(workload, key: tuple, compute):
    """``compute()``, memoized for this workload object and ``key``."""
    wid = id(workload)
    slot = _CACHE.get(wid)
    if slot is None:
        slot = _CACHE[wid] = {}
        _REFS[wid] = ref(workload, _dropper(wid))
    hit = slot.get(key)
    if hit is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = compute()
        hit = slot[key] = (value, [(w.message, w.category) for w in caught])
    value, said = hit
    for message, category in said:
        warnings.warn(message, category, stacklevel=3)
    return value
