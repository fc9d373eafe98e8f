"""simpy, imported without its ``importlib.metadata`` lookup.

simpy's ``__init__`` asks ``importlib.metadata`` for its own version, which imports the email
package and scans site-packages: about 12 ms, most of simpy's import and a fifth of a small
run. Nothing here reads ``simpy.__version__``, so while simpy loads (and only if nothing else
imported the real module yet) ``importlib.metadata`` is a stand-in whose ``version()`` says
"not installed"; simpy then skips setting ``__version__``. The real module is untouched and
loads normally for anyone who imports it afterwards.
"""
from __future__ import annotations

import sys


def _load():
    if "simpy" in sys.modules or "importlib.metadata" in sys.modules:
        import simpy
        return simpy
    import importlib
    import types

    class PackageNotFoundError(ModuleNotFoundError):
        pass

    def version(name: str) -> str:
        raise PackageNotFoundError(name)

    shim = types.ModuleType("importlib.metadata")
    vars(shim).update(PackageNotFoundError=PackageNotFoundError, version=version)
    sys.modules["importlib.metadata"] = shim
    importlib.metadata = shim
    try:
        import simpy
    finally:
        if sys.modules.get("importlib.metadata") is shim:
            del sys.modules["importlib.metadata"]
        if getattr(importlib, "metadata", None) is shim:
            del importlib.metadata
    return simpy


simpy = _load()
