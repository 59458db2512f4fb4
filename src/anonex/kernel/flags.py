"""Page flags: the ``enum pageflags`` bit layout, aliases and compound policies.

Models include/linux/page-flags.h. One table (:data:`PAGEFLAGS`) gives each flag its bit and
its compound-page policy; the aliases share a bit (``PG_anon_exclusive`` is ``PG_owner_2``,
which is also ``PG_mappedtodisk``; ``PG_swapcache`` is ``PG_owner_priv_1``). The policies
decide which ``struct page`` of a folio an accessor acts on:

* ``PF_ANY``: the page given (small, head or tail);
* ``PF_HEAD``: always the head;
* ``PF_NO_TAIL``: tests read the head, modifications on a tail are a VM_BUG;
* ``PF_NO_COMPOUND``: modifications on any compound page are a VM_BUG;
* ``PF_SECOND``: the second page of a large folio (VM_BUG unless given the head).

``PG_anon_exclusive`` means "this anon page is mapped by exactly one page-table entry of one
process and may be made writable without further checks"; THP keeps it per page, hugetlb on
the head only, a PMD mapping uses the head's bit for the whole PMD. It is cleared only through
``folio_try_dup_anon_rmap_*`` (fork) and ``folio_try_share_anon_rmap_*`` (swap, migration,
KSM), which refuse while the folio may be pinned, and implicitly when the page is freed.
The accessors check the ``VM_BUG_ON_PGFLAGS`` conditions and raise :class:`KernelBug`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Literal

from anonex.kernel.errors import KernelBug

if TYPE_CHECKING:
    from anonex.kernel.folio import Page


class Policy(Enum):
    PF_ANY = "PF_ANY"
    PF_HEAD = "PF_HEAD"
    PF_NO_TAIL = "PF_NO_TAIL"
    PF_NO_COMPOUND = "PF_NO_COMPOUND"
    PF_SECOND = "PF_SECOND"


@dataclass(frozen=True)
class Layout:
    """One era's ``enum pageflags``: every flag's bit and policy, aliases included.

    ``name`` says where PG_anon_exclusive lives: ``owner_2`` (6.12+ rename),
    ``mappedtodisk`` (merged in 5.19, PG_has_hwpoisoned moved to PG_waiters), ``slab`` (the
    v1 RFC: an alias of PG_slab, never merged) or ``none`` (before 5.19: no such flag).
    """

    name: str
    flags: tuple[tuple[str, int, Policy], ...]
    aliases: tuple[tuple[str, str, Policy], ...]
    bit: dict[str, int] = field(default_factory=dict, compare=False)
    policy: dict[str, Policy] = field(default_factory=dict, compare=False)
    #: the bit PG_anon_exclusive uses (-1 if this layout has none)
    anon_exclusive: int = field(default=-1, compare=False)
    #: ``PAGE_FLAGS_CHECK_AT_PREP``: free_pages_prepare() clears all these bits
    prep_mask: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        for name, b, pol in self.flags:
            self.bit[name] = b
            self.policy[name] = pol
        for alias, base, pol in self.aliases:
            self.bit[alias] = self.bit[base]
            self.policy[alias] = pol
        object.__setattr__(self, "anon_exclusive", self.bit.get("anon_exclusive", -1))
        object.__setattr__(self, "prep_mask", (1 << (max(b for _, b, _ in self.flags) + 1)) - 1)


_A, _H, _NT, _NC, _S = (Policy.PF_ANY, Policy.PF_HEAD, Policy.PF_NO_TAIL, Policy.PF_NO_COMPOUND,
                        Policy.PF_SECOND)

# enum pageflags for 6.14+ (6.18). Bits past PG_mlocked depend on the config; these are the
# host's (no CONFIG_MEMORY_FAILURE: PG_young 21, PG_idle 22).
_FLAGS_6_18 = (
    ("locked", 0, _NT), ("writeback", 1, _NT), ("referenced", 2, _H), ("uptodate", 3, _NT),
    ("dirty", 4, _H), ("lru", 5, _H), ("head", 6, _A), ("waiters", 7, _H), ("active", 8, _H),
    ("workingset", 9, _H), ("owner_priv_1", 10, _A), ("owner_2", 11, _A), ("arch_1", 12, _A),
    ("reserved", 13, _NC), ("private", 14, _A), ("private_2", 15, _A), ("reclaim", 16, _NT),
    ("swapbacked", 17, _NT), ("unevictable", 18, _H), ("dropbehind", 19, _H),
    ("mlocked", 20, _NT), ("young", 21, _A), ("idle", 22, _A),
)
# enum pageflags of the 5.x kernels (5.17–5.19 order): PG_slab still a flag, PG_head at 16,
# PG_mappedtodisk its own slot.
_FLAGS_5_X = (
    ("locked", 0, _NT), ("referenced", 1, _H), ("uptodate", 2, _H), ("dirty", 3, _H),
    ("lru", 4, _H), ("active", 5, _H), ("workingset", 6, _H), ("waiters", 7, _H),
    ("error", 8, _NT), ("slab", 9, _NT), ("owner_priv_1", 10, _A), ("arch_1", 11, _A),
    ("reserved", 12, _NC), ("private", 13, _A), ("private_2", 14, _A), ("writeback", 15, _NT),
    ("head", 16, _A), ("mappedtodisk", 17, _NT), ("reclaim", 18, _NT),
    ("swapbacked", 19, _NT), ("unevictable", 20, _H), ("mlocked", 21, _NT),
    ("young", 22, _A), ("idle", 23, _A),
)
_COMMON_5_X = (("readahead", "reclaim", _NC), ("swapcache", "owner_priv_1", _NT),
               ("checked", "owner_priv_1", _NC), ("large_rmappable", "workingset", _S),
               ("partially_mapped", "reclaim", _S))

LAYOUTS: dict[str, Layout] = {
    "owner_2": Layout("owner_2", _FLAGS_6_18, (
        ("readahead", "reclaim", _NC), ("swapcache", "owner_priv_1", _NT),
        ("checked", "owner_priv_1", _NC), ("anon_exclusive", "owner_2", _A),
        ("mappedtodisk", "owner_2", _NT), ("has_hwpoisoned", "active", _S),
        ("large_rmappable", "workingset", _S), ("partially_mapped", "reclaim", _S))),
    "mappedtodisk": Layout("mappedtodisk", _FLAGS_5_X, (
        *_COMMON_5_X, ("anon_exclusive", "mappedtodisk", _A),
        ("has_hwpoisoned", "waiters", _S))),
    "slab": Layout("slab", _FLAGS_5_X, (
        *_COMMON_5_X, ("anon_exclusive", "slab", _A), ("has_hwpoisoned", "mappedtodisk", _S))),
    "none": Layout("none", _FLAGS_5_X, (
        *_COMMON_5_X, ("has_hwpoisoned", "mappedtodisk", _S))),
}
CURRENT_LAYOUT: Layout = LAYOUTS["owner_2"]

#: Every flag name some layout has, aliases included: what the accessors below accept, so
#: that a misspelt name fails the type check (and, for an untyped caller, raises KeyError).
# --- generated by tools/gen_flags.py: names; do not edit ---
PageFlagName = Literal[
    "locked", "writeback", "referenced", "uptodate", "dirty", "lru", "head", "waiters", "active",
    "workingset", "owner_priv_1", "owner_2", "arch_1", "reserved", "private", "private_2",
    "reclaim", "swapbacked", "unevictable", "dropbehind", "mlocked", "young", "idle", "readahead",
    "swapcache", "checked", "anon_exclusive", "mappedtodisk", "has_hwpoisoned", "large_rmappable",
    "partially_mapped", "error", "slab",
]
# --- end of generated block ---
_ANY_LAYOUT: frozenset[str] = frozenset(n for lay in LAYOUTS.values() for n in lay.bit)

# The current layout's table, for callers that do not care about eras.
PAGEFLAGS = _FLAGS_6_18
BIT: dict[str, int] = CURRENT_LAYOUT.bit
POLICY: dict[str, Policy] = CURRENT_LAYOUT.policy
PAGE_FLAGS_CHECK_AT_PREP = CURRENT_LAYOUT.prep_mask


def layout_for(version_has_flag: bool, owner_2_renamed: bool) -> Layout:
    """The layout a kernel version uses by default."""
    if not version_has_flag:
        return LAYOUTS["none"]
    return LAYOUTS["owner_2" if owner_2_renamed else "mappedtodisk"]


def flag_names(word: int, layout: Layout = CURRENT_LAYOUT) -> list[str]:
    """The primary names of the bits set in a flag word (aliases not repeated)."""
    return [name for name, bit, _ in layout.flags if word >> bit & 1]


def page_flag_names(page: Page) -> list[str]:
    """The flags of *page* with the names that apply to it: ``anon_exclusive`` on an anon
    page, ``swapcache`` on a swap-backed one."""
    lay = page.folio.layout
    names = flag_names(page.flags, lay)
    if page.folio.anon and lay.anon_exclusive >= 0:
        base = next(n for n, b, _ in lay.flags if b == lay.anon_exclusive)
        names = ["anon_exclusive" if n == base else n for n in names]
    if "owner_priv_1" in names and page.folio.swap is not None:
        names = ["swapcache" if n == "owner_priv_1" else n for n in names]
    return names


def _target(page: Page, name: PageFlagName, modify: bool) -> Page:
    """The struct page an accessor of flag *name* acts on, with the policy's checks."""
    pol = page.folio.layout.policy[name]
    folio = page.folio
    if pol is Policy.PF_ANY:
        return page
    if pol is Policy.PF_HEAD:
        return folio.pages[0]
    if pol is Policy.PF_NO_TAIL:
        if modify and page.index != 0:
            raise KernelBug(f"VM_BUG_ON_PGFLAGS(PageTail) modifying PG_{name}", page.name)
        return folio.pages[0]
    if pol is Policy.PF_NO_COMPOUND:
        if modify and folio.order > 0:
            raise KernelBug(f"VM_BUG_ON_PGFLAGS(PageCompound) modifying PG_{name}", page.name)
        return page
    if page.index != 0 or folio.order == 0:
        raise KernelBug(f"VM_BUG_ON_PGFLAGS(!PageHead) for PF_SECOND PG_{name}", page.name)
    return folio.pages[1]


def test_page_flag(page: Page, name: PageFlagName) -> bool:
    """``PageX(page)`` for flag *name*, through its compound policy (False for a flag the
    page's layout does not have; KeyError for a name no layout has)."""
    bit = page.folio.layout.bit.get(name)
    if bit is None:
        if name not in _ANY_LAYOUT:
            raise KeyError(f"no page flag named {name!r}")
        return False
    return bool(_target(page, name, False).flags >> bit & 1)


def set_page_flag(page: Page, name: PageFlagName) -> None:
    """``SetPageX(page)``."""
    t = _target(page, name, True)
    t.flags |= 1 << page.folio.layout.bit[name]


def clear_page_flag(page: Page, name: PageFlagName) -> None:
    """``ClearPageX(page)``."""
    t = _target(page, name, True)
    t.flags &= ~(1 << page.folio.layout.bit[name])


def PageSlab(page: Page) -> bool:
    """``PageSlab()``; under the v1 layout an anon page's bit is PG_anon_exclusive, so anon
    pages are excluded (the RFC's ``!PageAnon(page) &&``)."""
    lay = page.folio.layout
    if "slab" not in lay.bit:
        return False
    if lay.name == "slab" and page.folio.anon:
        return False
    return bool(page.folio.pages[0].flags >> lay.bit["slab"] & 1)


def excl_bit_set(page: Page) -> bool:
    """The raw PG_anon_exclusive bit of this struct page (no checks, no redirection)."""
    b = page.folio.layout.anon_exclusive
    return b >= 0 and bool(page.flags >> b & 1)


# ---------------------------------------------------------------------------------------------
# PG_anon_exclusive accessors (bottom of page-flags.h)


def PageAnonNotKsm(page: Page) -> bool:
    """``PageAnonNotKsm()``: anon and not KSM (folio->mapping flags == ANON)."""
    f = page.folio
    return f.anon and not f.ksm


def PageAnonExclusive(page: Page) -> bool:
    """``PageAnonExclusive()`` (include/linux/page-flags.h).

    VM_BUG on a non-anon page; hugetlb reads the head's bit for any page.
    """
    if not page.folio.anon:
        raise KernelBug("VM_BUG_ON_PGFLAGS(!PageAnon(page)) in PageAnonExclusive", page.name)
    if page.folio.hugetlb:
        page = page.folio.pages[0]
    return excl_bit_set(page)


def _check_set_clear(page: Page, what: str) -> None:
    if not PageAnonNotKsm(page):
        raise KernelBug(f"VM_BUG_ON_PGFLAGS(!PageAnonNotKsm(page)) in {what}", page.name)
    if page.folio.hugetlb and page.index != 0:
        raise KernelBug(f"VM_BUG_ON_PGFLAGS(PageHuge(page) && !PageHead(page)) in {what}",
                        page.name)


def SetPageAnonExclusive(page: Page) -> None:
    """``SetPageAnonExclusive()``: VM_BUG on KSM, non-anon and hugetlb tail pages."""
    _check_set_clear(page, "SetPageAnonExclusive")
    page.flags |= 1 << page.folio.layout.anon_exclusive


def ClearPageAnonExclusive(page: Page) -> None:
    """``ClearPageAnonExclusive()``: the same checks as the setter; atomic."""
    _check_set_clear(page, "ClearPageAnonExclusive")
    page.flags &= ~(1 << page.folio.layout.anon_exclusive)


def __ClearPageAnonExclusive(page: Page) -> None:
    """``__ClearPageAnonExclusive()``: non-atomic, for freeing paths; KSM pages allowed."""
    if not page.folio.anon:
        raise KernelBug("VM_BUG_ON_PGFLAGS(!PageAnon(page)) in __ClearPageAnonExclusive",
                        page.name)
    if page.folio.hugetlb and page.index != 0:
        raise KernelBug("VM_BUG_ON_PGFLAGS(PageHuge(page) && !PageHead(page)) in "
                        "__ClearPageAnonExclusive", page.name)
    page.flags &= ~(1 << page.folio.layout.anon_exclusive)


# ---------------------------------------------------------------------------------------------
# PageX / SetPageX / ClearPageX for every other flag (PAGEFLAG() in page-flags.h), through the
# compound policy of the page's layout.

# --- generated by tools/gen_flags.py: accessors; do not edit ---
def PageLocked(page: Page) -> bool:
    """``PageLocked()``: test PG_locked."""
    return test_page_flag(page, "locked")


def SetPageLocked(page: Page) -> None:
    """``SetPageLocked()``: set PG_locked."""
    set_page_flag(page, "locked")


def ClearPageLocked(page: Page) -> None:
    """``ClearPageLocked()``: clear PG_locked."""
    clear_page_flag(page, "locked")


def PageWriteback(page: Page) -> bool:
    """``PageWriteback()``: test PG_writeback."""
    return test_page_flag(page, "writeback")


def SetPageWriteback(page: Page) -> None:
    """``SetPageWriteback()``: set PG_writeback."""
    set_page_flag(page, "writeback")


def ClearPageWriteback(page: Page) -> None:
    """``ClearPageWriteback()``: clear PG_writeback."""
    clear_page_flag(page, "writeback")


def PageReferenced(page: Page) -> bool:
    """``PageReferenced()``: test PG_referenced."""
    return test_page_flag(page, "referenced")


def SetPageReferenced(page: Page) -> None:
    """``SetPageReferenced()``: set PG_referenced."""
    set_page_flag(page, "referenced")


def ClearPageReferenced(page: Page) -> None:
    """``ClearPageReferenced()``: clear PG_referenced."""
    clear_page_flag(page, "referenced")


def PageUptodate(page: Page) -> bool:
    """``PageUptodate()``: test PG_uptodate."""
    return test_page_flag(page, "uptodate")


def SetPageUptodate(page: Page) -> None:
    """``SetPageUptodate()``: set PG_uptodate."""
    set_page_flag(page, "uptodate")


def ClearPageUptodate(page: Page) -> None:
    """``ClearPageUptodate()``: clear PG_uptodate."""
    clear_page_flag(page, "uptodate")


def PageDirty(page: Page) -> bool:
    """``PageDirty()``: test PG_dirty."""
    return test_page_flag(page, "dirty")


def SetPageDirty(page: Page) -> None:
    """``SetPageDirty()``: set PG_dirty."""
    set_page_flag(page, "dirty")


def ClearPageDirty(page: Page) -> None:
    """``ClearPageDirty()``: clear PG_dirty."""
    clear_page_flag(page, "dirty")


def PageLRU(page: Page) -> bool:
    """``PageLRU()``: test PG_lru."""
    return test_page_flag(page, "lru")


def SetPageLRU(page: Page) -> None:
    """``SetPageLRU()``: set PG_lru."""
    set_page_flag(page, "lru")


def ClearPageLRU(page: Page) -> None:
    """``ClearPageLRU()``: clear PG_lru."""
    clear_page_flag(page, "lru")


def PageHead(page: Page) -> bool:
    """``PageHead()``: test PG_head."""
    return test_page_flag(page, "head")


def SetPageHead(page: Page) -> None:
    """``SetPageHead()``: set PG_head."""
    set_page_flag(page, "head")


def ClearPageHead(page: Page) -> None:
    """``ClearPageHead()``: clear PG_head."""
    clear_page_flag(page, "head")


def PageWaiters(page: Page) -> bool:
    """``PageWaiters()``: test PG_waiters."""
    return test_page_flag(page, "waiters")


def SetPageWaiters(page: Page) -> None:
    """``SetPageWaiters()``: set PG_waiters."""
    set_page_flag(page, "waiters")


def ClearPageWaiters(page: Page) -> None:
    """``ClearPageWaiters()``: clear PG_waiters."""
    clear_page_flag(page, "waiters")


def PageActive(page: Page) -> bool:
    """``PageActive()``: test PG_active."""
    return test_page_flag(page, "active")


def SetPageActive(page: Page) -> None:
    """``SetPageActive()``: set PG_active."""
    set_page_flag(page, "active")


def ClearPageActive(page: Page) -> None:
    """``ClearPageActive()``: clear PG_active."""
    clear_page_flag(page, "active")


def PageWorkingset(page: Page) -> bool:
    """``PageWorkingset()``: test PG_workingset."""
    return test_page_flag(page, "workingset")


def SetPageWorkingset(page: Page) -> None:
    """``SetPageWorkingset()``: set PG_workingset."""
    set_page_flag(page, "workingset")


def ClearPageWorkingset(page: Page) -> None:
    """``ClearPageWorkingset()``: clear PG_workingset."""
    clear_page_flag(page, "workingset")


def PageOwnerPriv1(page: Page) -> bool:
    """``PageOwnerPriv1()``: test PG_owner_priv_1."""
    return test_page_flag(page, "owner_priv_1")


def SetPageOwnerPriv1(page: Page) -> None:
    """``SetPageOwnerPriv1()``: set PG_owner_priv_1."""
    set_page_flag(page, "owner_priv_1")


def ClearPageOwnerPriv1(page: Page) -> None:
    """``ClearPageOwnerPriv1()``: clear PG_owner_priv_1."""
    clear_page_flag(page, "owner_priv_1")


def PageOwner2(page: Page) -> bool:
    """``PageOwner2()``: test PG_owner_2."""
    return test_page_flag(page, "owner_2")


def SetPageOwner2(page: Page) -> None:
    """``SetPageOwner2()``: set PG_owner_2."""
    set_page_flag(page, "owner_2")


def ClearPageOwner2(page: Page) -> None:
    """``ClearPageOwner2()``: clear PG_owner_2."""
    clear_page_flag(page, "owner_2")


def PageArch1(page: Page) -> bool:
    """``PageArch1()``: test PG_arch_1."""
    return test_page_flag(page, "arch_1")


def SetPageArch1(page: Page) -> None:
    """``SetPageArch1()``: set PG_arch_1."""
    set_page_flag(page, "arch_1")


def ClearPageArch1(page: Page) -> None:
    """``ClearPageArch1()``: clear PG_arch_1."""
    clear_page_flag(page, "arch_1")


def PageReserved(page: Page) -> bool:
    """``PageReserved()``: test PG_reserved."""
    return test_page_flag(page, "reserved")


def SetPageReserved(page: Page) -> None:
    """``SetPageReserved()``: set PG_reserved."""
    set_page_flag(page, "reserved")


def ClearPageReserved(page: Page) -> None:
    """``ClearPageReserved()``: clear PG_reserved."""
    clear_page_flag(page, "reserved")


def PagePrivate(page: Page) -> bool:
    """``PagePrivate()``: test PG_private."""
    return test_page_flag(page, "private")


def SetPagePrivate(page: Page) -> None:
    """``SetPagePrivate()``: set PG_private."""
    set_page_flag(page, "private")


def ClearPagePrivate(page: Page) -> None:
    """``ClearPagePrivate()``: clear PG_private."""
    clear_page_flag(page, "private")


def PagePrivate2(page: Page) -> bool:
    """``PagePrivate2()``: test PG_private_2."""
    return test_page_flag(page, "private_2")


def SetPagePrivate2(page: Page) -> None:
    """``SetPagePrivate2()``: set PG_private_2."""
    set_page_flag(page, "private_2")


def ClearPagePrivate2(page: Page) -> None:
    """``ClearPagePrivate2()``: clear PG_private_2."""
    clear_page_flag(page, "private_2")


def PageReclaim(page: Page) -> bool:
    """``PageReclaim()``: test PG_reclaim."""
    return test_page_flag(page, "reclaim")


def SetPageReclaim(page: Page) -> None:
    """``SetPageReclaim()``: set PG_reclaim."""
    set_page_flag(page, "reclaim")


def ClearPageReclaim(page: Page) -> None:
    """``ClearPageReclaim()``: clear PG_reclaim."""
    clear_page_flag(page, "reclaim")


def PageSwapBacked(page: Page) -> bool:
    """``PageSwapBacked()``: test PG_swapbacked."""
    return test_page_flag(page, "swapbacked")


def SetPageSwapBacked(page: Page) -> None:
    """``SetPageSwapBacked()``: set PG_swapbacked."""
    set_page_flag(page, "swapbacked")


def ClearPageSwapBacked(page: Page) -> None:
    """``ClearPageSwapBacked()``: clear PG_swapbacked."""
    clear_page_flag(page, "swapbacked")


def PageUnevictable(page: Page) -> bool:
    """``PageUnevictable()``: test PG_unevictable."""
    return test_page_flag(page, "unevictable")


def SetPageUnevictable(page: Page) -> None:
    """``SetPageUnevictable()``: set PG_unevictable."""
    set_page_flag(page, "unevictable")


def ClearPageUnevictable(page: Page) -> None:
    """``ClearPageUnevictable()``: clear PG_unevictable."""
    clear_page_flag(page, "unevictable")


def PageDropbehind(page: Page) -> bool:
    """``PageDropbehind()``: test PG_dropbehind."""
    return test_page_flag(page, "dropbehind")


def SetPageDropbehind(page: Page) -> None:
    """``SetPageDropbehind()``: set PG_dropbehind."""
    set_page_flag(page, "dropbehind")


def ClearPageDropbehind(page: Page) -> None:
    """``ClearPageDropbehind()``: clear PG_dropbehind."""
    clear_page_flag(page, "dropbehind")


def PageMlocked(page: Page) -> bool:
    """``PageMlocked()``: test PG_mlocked."""
    return test_page_flag(page, "mlocked")


def SetPageMlocked(page: Page) -> None:
    """``SetPageMlocked()``: set PG_mlocked."""
    set_page_flag(page, "mlocked")


def ClearPageMlocked(page: Page) -> None:
    """``ClearPageMlocked()``: clear PG_mlocked."""
    clear_page_flag(page, "mlocked")


def PageYoung(page: Page) -> bool:
    """``PageYoung()``: test PG_young."""
    return test_page_flag(page, "young")


def SetPageYoung(page: Page) -> None:
    """``SetPageYoung()``: set PG_young."""
    set_page_flag(page, "young")


def ClearPageYoung(page: Page) -> None:
    """``ClearPageYoung()``: clear PG_young."""
    clear_page_flag(page, "young")


def PageIdle(page: Page) -> bool:
    """``PageIdle()``: test PG_idle."""
    return test_page_flag(page, "idle")


def SetPageIdle(page: Page) -> None:
    """``SetPageIdle()``: set PG_idle."""
    set_page_flag(page, "idle")


def ClearPageIdle(page: Page) -> None:
    """``ClearPageIdle()``: clear PG_idle."""
    clear_page_flag(page, "idle")


def PageReadahead(page: Page) -> bool:
    """``PageReadahead()``: test PG_readahead."""
    return test_page_flag(page, "readahead")


def SetPageReadahead(page: Page) -> None:
    """``SetPageReadahead()``: set PG_readahead."""
    set_page_flag(page, "readahead")


def ClearPageReadahead(page: Page) -> None:
    """``ClearPageReadahead()``: clear PG_readahead."""
    clear_page_flag(page, "readahead")


def PageSwapCache(page: Page) -> bool:
    """``PageSwapCache()``: test PG_swapcache."""
    return test_page_flag(page, "swapcache")


def SetPageSwapCache(page: Page) -> None:
    """``SetPageSwapCache()``: set PG_swapcache."""
    set_page_flag(page, "swapcache")


def ClearPageSwapCache(page: Page) -> None:
    """``ClearPageSwapCache()``: clear PG_swapcache."""
    clear_page_flag(page, "swapcache")


def PageChecked(page: Page) -> bool:
    """``PageChecked()``: test PG_checked."""
    return test_page_flag(page, "checked")


def SetPageChecked(page: Page) -> None:
    """``SetPageChecked()``: set PG_checked."""
    set_page_flag(page, "checked")


def ClearPageChecked(page: Page) -> None:
    """``ClearPageChecked()``: clear PG_checked."""
    clear_page_flag(page, "checked")


def PageMappedToDisk(page: Page) -> bool:
    """``PageMappedToDisk()``: test PG_mappedtodisk."""
    return test_page_flag(page, "mappedtodisk")


def SetPageMappedToDisk(page: Page) -> None:
    """``SetPageMappedToDisk()``: set PG_mappedtodisk."""
    set_page_flag(page, "mappedtodisk")


def ClearPageMappedToDisk(page: Page) -> None:
    """``ClearPageMappedToDisk()``: clear PG_mappedtodisk."""
    clear_page_flag(page, "mappedtodisk")


def PageHasHWPoisoned(page: Page) -> bool:
    """``PageHasHWPoisoned()``: test PG_has_hwpoisoned."""
    return test_page_flag(page, "has_hwpoisoned")


def SetPageHasHWPoisoned(page: Page) -> None:
    """``SetPageHasHWPoisoned()``: set PG_has_hwpoisoned."""
    set_page_flag(page, "has_hwpoisoned")


def ClearPageHasHWPoisoned(page: Page) -> None:
    """``ClearPageHasHWPoisoned()``: clear PG_has_hwpoisoned."""
    clear_page_flag(page, "has_hwpoisoned")


def PageLargeRmappable(page: Page) -> bool:
    """``PageLargeRmappable()``: test PG_large_rmappable."""
    return test_page_flag(page, "large_rmappable")


def SetPageLargeRmappable(page: Page) -> None:
    """``SetPageLargeRmappable()``: set PG_large_rmappable."""
    set_page_flag(page, "large_rmappable")


def ClearPageLargeRmappable(page: Page) -> None:
    """``ClearPageLargeRmappable()``: clear PG_large_rmappable."""
    clear_page_flag(page, "large_rmappable")


def PagePartiallyMapped(page: Page) -> bool:
    """``PagePartiallyMapped()``: test PG_partially_mapped."""
    return test_page_flag(page, "partially_mapped")


def SetPagePartiallyMapped(page: Page) -> None:
    """``SetPagePartiallyMapped()``: set PG_partially_mapped."""
    set_page_flag(page, "partially_mapped")


def ClearPagePartiallyMapped(page: Page) -> None:
    """``ClearPagePartiallyMapped()``: clear PG_partially_mapped."""
    clear_page_flag(page, "partially_mapped")


def PageError(page: Page) -> bool:
    """``PageError()``: test PG_error."""
    return test_page_flag(page, "error")


def SetPageError(page: Page) -> None:
    """``SetPageError()``: set PG_error."""
    set_page_flag(page, "error")


def ClearPageError(page: Page) -> None:
    """``ClearPageError()``: clear PG_error."""
    clear_page_flag(page, "error")
# --- end of generated block ---
