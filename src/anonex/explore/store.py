"""The stores of seen states now live with the generic checker
(:mod:`anonex.explore.checker.store`); this name stays for existing imports."""

from anonex.explore.checker.store import FingerprintStore, StateStore, Store, make_store

__all__ = ["FingerprintStore", "StateStore", "Store", "make_store"]
