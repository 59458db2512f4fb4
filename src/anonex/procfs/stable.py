"""What the kernel would export for a model page: ``stable_page_flags()`` and kpagecount.

Models fs/proc/page.c for the flags the model keeps. Since 6.10 (the ``stable_page_flags``
rewrite) every flag bit of a page of a large folio is read from the folio's head, so bit 34
(KPF_OWNER_2, PG_anon_exclusive on anon pages) of a tail mirrors the head; before, each page
exported its own bits. From 6.10 until its fix, KPF_KSM is set on every anon page.
Bits the model does not track (LRU, UPTODATE, REFERENCED, ACTIVE …)
stay clear, so compare model and live words only on the bits the model knows
(:data:`MODELLED`).
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.folio import Page
from anonex.kernel.versions import Rules
from anonex.procfs import kpageflags as kpf

# page flag -> KPF bit, for the flags copied straight from the flag word
_COPIED: tuple[tuple[str, str], ...] = (
    ("locked", "LOCKED"), ("referenced", "REFERENCED"), ("uptodate", "UPTODATE"),
    ("dirty", "DIRTY"), ("lru", "LRU"), ("active", "ACTIVE"), ("writeback", "WRITEBACK"),
    ("reclaim", "RECLAIM"), ("swapbacked", "SWAPBACKED"), ("unevictable", "UNEVICTABLE"),
    ("reserved", "RESERVED"), ("mlocked", "MLOCKED"), ("mappedtodisk", "OWNER_2"),
    ("private", "PRIVATE"), ("private_2", "PRIVATE_2"), ("owner_priv_1", "OWNER_PRIVATE"),
    ("arch_1", "ARCH"),
)

MODELLED = frozenset(kpf.bit(n) for n in (
    "MMAP", "ANON", "SWAPCACHE", "SWAPBACKED", "COMPOUND_HEAD", "COMPOUND_TAIL", "HUGE", "KSM",
    "THP", "ZERO_PAGE", "OWNER_2"))


def stable_page_flags(page: Page, rules: Rules) -> int:
    """The kpageflags word of *page* (fs/proc/page.c ``stable_page_flags``)."""
    folio = page.folio
    if folio.zero:
        return 1 << kpf.bit("ZERO_PAGE")
    src = folio.pages[0] if rules.kpageflags_from_head else page
    lay = folio.layout
    word = 0
    for flag, name in _COPIED:
        b = lay.bit.get(flag)
        if b is not None and src.flags >> b & 1:
            word |= 1 << kpf.bit(name)
    # ≤6.9 PG_slab was a flag; the v1 RFC reports KPF_SLAB only if PageSlab(), which
    # excludes anon pages whose bit means PG_anon_exclusive
    if "slab" in lay.bit and (pf.PageSlab(page) or (lay.name != "slab" and
                                                     src.flags >> lay.bit["slab"] & 1)):
        word |= 1 << kpf.bit("SLAB")
    if folio.mapcount_total() > 0 or any(p.mapcount for p in folio.pages):
        word |= 1 << kpf.bit("MMAP")
    if folio.anon:
        word |= 1 << kpf.bit("ANON")
        # 6.10 until the fix (7.2, 6.18.44): KPF_KSM tested a bit every anon mapping has
        if folio.ksm or rules.kpageflags_ksm_every_anon:
            word |= 1 << kpf.bit("KSM")
    # PG_swapcache is PG_owner_priv_1; it means swap cache only with PG_swapbacked
    if folio.swap is not None:
        word |= 1 << kpf.bit("SWAPCACHE")
        word &= ~(1 << kpf.bit("OWNER_PRIVATE"))
    if folio.large:
        word |= 1 << kpf.bit("COMPOUND_HEAD" if page.index == 0 else "COMPOUND_TAIL")
        if folio.hugetlb:
            word |= 1 << kpf.bit("HUGE")
        elif folio.anon:
            word |= 1 << kpf.bit("THP")
    return word


def kpagecount(page: Page) -> int:
    """``/proc/kpagecount`` with CONFIG_PAGE_MAPCOUNT: the page's precise mapcount."""
    if page.folio.zero:
        return 0
    return page.mapcount + page.folio.entire_mapcount
