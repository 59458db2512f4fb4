"""Memory while a search runs: cyclic garbage collection off, a collection now and then.

States are dropped through :meth:`~anonex.explore.checker.model.Model.dispose`, which breaks
their cycles, so reference counting frees them; the little garbage a model leaves in
cycles is collected when two million young objects have piled up.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Young objects (net allocations since the last collection) that trigger a collection.
YOUNG = 2_000_000


def collect_some() -> None:
    """Collect the young generations if enough garbage may have piled up."""
    if gc.get_count()[0] > YOUNG:
        gc.collect(1)


@contextmanager
def no_gc() -> Iterator[None]:
    """Cyclic garbage collection off for the block (and in processes forked in it)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
