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

from enum import Enum
from typing import TYPE_CHECKING

from anonex.kernel.errors import KernelBug

if TYPE_CHECKING:
    from anonex.kernel.folio import Page


class Policy(Enum):
    PF_ANY = "PF_ANY"
    PF_HEAD = "PF_HEAD"
    PF_NO_TAIL = "PF_NO_TAIL"
    PF_NO_COMPOUND = "PF_NO_COMPOUND"
    PF_SECOND = "PF_SECOND"


# (name, bit, policy) in enum pageflags order for 6.14+ (6.18). Bits past PG_mlocked depend
# on the config; these are the host's (no CONFIG_MEMORY_FAILURE: PG_young 21, PG_idle 22).
PAGEFLAGS: tuple[tuple[str, int, Policy], ...] = (
    ("locked", 0, Policy.PF_NO_TAIL),
    ("writeback", 1, Policy.PF_NO_TAIL),
    ("referenced", 2, Policy.PF_HEAD),
    ("uptodate", 3, Policy.PF_NO_TAIL),
    ("dirty", 4, Policy.PF_HEAD),
    ("lru", 5, Policy.PF_HEAD),
    ("head", 6, Policy.PF_ANY),
    ("waiters", 7, Policy.PF_HEAD),
    ("active", 8, Policy.PF_HEAD),
    ("workingset", 9, Policy.PF_HEAD),
    ("owner_priv_1", 10, Policy.PF_ANY),
    ("owner_2", 11, Policy.PF_ANY),
    ("arch_1", 12, Policy.PF_ANY),
    ("reserved", 13, Policy.PF_NO_COMPOUND),
    ("private", 14, Policy.PF_ANY),
    ("private_2", 15, Policy.PF_ANY),
    ("reclaim", 16, Policy.PF_NO_TAIL),
    ("swapbacked", 17, Policy.PF_NO_TAIL),
    ("unevictable", 18, Policy.PF_HEAD),
    ("dropbehind", 19, Policy.PF_HEAD),
    ("mlocked", 20, Policy.PF_NO_TAIL),
    ("young", 21, Policy.PF_ANY),
    ("idle", 22, Policy.PF_ANY),
)

# Aliases: (alias, flag whose bit it shares, the alias's own policy).
ALIASES: tuple[tuple[str, str, Policy], ...] = (
    ("readahead", "reclaim", Policy.PF_NO_COMPOUND),
    ("swapcache", "owner_priv_1", Policy.PF_NO_TAIL),
    ("checked", "owner_priv_1", Policy.PF_NO_COMPOUND),
    ("anon_exclusive", "owner_2", Policy.PF_ANY),
    ("mappedtodisk", "owner_2", Policy.PF_NO_TAIL),
    ("has_hwpoisoned", "active", Policy.PF_SECOND),
    ("large_rmappable", "workingset", Policy.PF_SECOND),
    ("partially_mapped", "reclaim", Policy.PF_SECOND),
)

BIT: dict[str, int] = {name: bit for name, bit, _ in PAGEFLAGS}
POLICY: dict[str, Policy] = {name: pol for name, _, pol in PAGEFLAGS}
for _alias, _base, _pol in ALIASES:
    BIT[_alias] = BIT[_base]
    POLICY[_alias] = _pol

PG_anon_exclusive = BIT["anon_exclusive"]
PG_swapcache = BIT["swapcache"]
PG_swapbacked = BIT["swapbacked"]
PG_head = BIT["head"]

# free_pages_prepare() clears every flag bit (PAGE_FLAGS_CHECK_AT_PREP), so the
# anon-exclusive bit goes with the rest when a page is freed.
PAGE_FLAGS_CHECK_AT_PREP = (1 << (max(BIT.values()) + 1)) - 1


def flag_names(word: int) -> list[str]:
    """The primary names of the bits set in a flag word (aliases not repeated)."""
    return [name for name, bit, _ in PAGEFLAGS if word >> bit & 1]


def _target(page: Page, name: str, modify: bool) -> Page:
    """The struct page an accessor of flag *name* acts on, with the policy's checks."""
    pol = POLICY[name]
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


def test_page_flag(page: Page, name: str) -> bool:
    """``PageX(page)`` for flag *name*, through its compound policy."""
    return bool(_target(page, name, False).flags >> BIT[name] & 1)


def set_page_flag(page: Page, name: str) -> None:
    """``SetPageX(page)``."""
    t = _target(page, name, True)
    t.flags |= 1 << BIT[name]


def clear_page_flag(page: Page, name: str) -> None:
    """``ClearPageX(page)``."""
    t = _target(page, name, True)
    t.flags &= ~(1 << BIT[name])


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
    return bool(page.flags >> PG_anon_exclusive & 1)


def _check_set_clear(page: Page, what: str) -> None:
    if not PageAnonNotKsm(page):
        raise KernelBug(f"VM_BUG_ON_PGFLAGS(!PageAnonNotKsm(page)) in {what}", page.name)
    if page.folio.hugetlb and page.index != 0:
        raise KernelBug(f"VM_BUG_ON_PGFLAGS(PageHuge(page) && !PageHead(page)) in {what}",
                        page.name)


def SetPageAnonExclusive(page: Page) -> None:
    """``SetPageAnonExclusive()``: VM_BUG on KSM, non-anon and hugetlb tail pages."""
    _check_set_clear(page, "SetPageAnonExclusive")
    page.flags |= 1 << PG_anon_exclusive


def ClearPageAnonExclusive(page: Page) -> None:
    """``ClearPageAnonExclusive()``: the same checks as the setter; atomic."""
    _check_set_clear(page, "ClearPageAnonExclusive")
    page.flags &= ~(1 << PG_anon_exclusive)


def __ClearPageAnonExclusive(page: Page) -> None:
    """``__ClearPageAnonExclusive()``: non-atomic, for freeing paths; KSM pages allowed."""
    if not page.folio.anon:
        raise KernelBug("VM_BUG_ON_PGFLAGS(!PageAnon(page)) in __ClearPageAnonExclusive",
                        page.name)
    if page.folio.hugetlb and page.index != 0:
        raise KernelBug("VM_BUG_ON_PGFLAGS(PageHuge(page) && !PageHead(page)) in "
                        "__ClearPageAnonExclusive", page.name)
    page.flags &= ~(1 << PG_anon_exclusive)
