"""The per-CPU LRU add batch: mm/swap.c ``lru_cache_add()`` and ``lru_add_drain()``.

A page the kernel allocates for a fault reaches the LRU through a per-CPU batch (a pagevec of
15 pages on 5.x) that holds one reference to it until the batch is drained. Kernels 5.9 to
5.17 count that reference in ``do_wp_page()`` (reuse needs ``page_count == 1``) without
draining first, so a write fault soon after the page was allocated copies it; 5.18's
d4c470970d45 ("mm: optimize do_wp_page() for fresh pages in local LRU pagevecs") drains the
local batch first. Nothing else the model does counts the reference without a drain before
it, so the model keeps the batch only on those kernels (``Kernel.lru_batch_refs``).

The model assumes one CPU for every process (the live backend pins its actors to one), and
drains where the kernel does: ``lru_add_drain()`` in ``exit_mmap()``, ``unmap_region()``
(munmap, and mremap's unmap of the old range), ``zap_page_range()`` (MADV_DONTNEED),
MADV_PAGEOUT, and at the end of swap readahead; ``lru_add_drain_all()`` in ksmd's scan,
page migration and MADV_COLLAPSE; a large folio flushes the batch when it joins it; the
batch drains itself when its 15th page arrives.

Which pages a batch holds at a given moment also depends on every other page any process
faults on that CPU, so on a real kernel the outcome of a write soon after a fault is a
matter of timing (5.10.223 copied or reused the same page from one run to the next). The
scenario backends make it deterministic: the live backend drains every CPU's batch before
each step (``move_pages(2)`` of no pages), and the model backend drains its batch there too.
The explorer's actions do not: it explores what a program that faults and writes back to
back on one CPU gets.
"""

from __future__ import annotations

from anonex.kernel.folio import Folio
from anonex.kernel.state import Kernel

PAGEVEC_SIZE = 15


def lru_cache_add(k: Kernel, folio: Folio) -> None:
    """``lru_cache_add()`` / ``folio_add_lru()``: the folio joins the local batch."""
    if not k.lru_batch_refs:
        return
    if folio.large:
        lru_add_drain(k)
        return
    k.lru_pending.append(folio)
    if len(k.lru_pending) >= PAGEVEC_SIZE:
        lru_add_drain(k)


def lru_add_drain(k: Kernel) -> None:
    """``lru_add_drain()`` (one CPU, so also ``lru_add_drain_all()``): every batched
    folio moves to the LRU and the batch drops its references."""
    if k.lru_pending:
        k.lru_pending = []


def lru_batch_ref(k: Kernel, folio: Folio) -> int:
    """The reference the local batch holds on *folio* (0 or 1)."""
    return int(folio in k.lru_pending) if k.lru_pending else 0
