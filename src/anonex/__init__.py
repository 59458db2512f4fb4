"""anonex: an executable model of Linux anonymous-page exclusivity (PG_anon_exclusive).

The package is layered one way: scenario text is parsed (:mod:`anonex.scenario`), run on a
backend (the model in :mod:`anonex.kernel` at some kernel version, or the running kernel in
:mod:`anonex.live`), the backend's observations are judged, and the verdicts are printed by
:mod:`anonex.report`.
"""

from anonex._compiled import MODE as BUILD

__version__ = "0.1.0"
__all__ = ["BUILD", "__version__"]
