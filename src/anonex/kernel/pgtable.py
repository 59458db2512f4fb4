"""Page-table entries: present PTEs and the non-present kinds.

Models the entry types of arch/x86/include/asm/pgtable*.h and include/linux/swapops.h that
matter for exclusivity:

* :class:`Pte`: a present entry mapping one page, with the write and dirty bits; ``special``
  marks the shared zero page (``pte_mkspecial``), which has no rmap and no refcount.
* :class:`SwapPte`: a swap entry; ``exclusive`` is ``_PAGE_SWP_EXCLUSIVE`` (x86: bit 3),
  which carries PG_anon_exclusive while the page is unmapped.
* :class:`MigrationPte`: ``readable`` (maybe shared), ``readable_exclusive`` or ``writable``
  (both exclusive); the entry, not the page, holds exclusivity during migration.
* :class:`DeviceExclusivePte`: 6.15+ device-exclusive entry; the page stays mapped in rmap
  and keeps its flag.

* :class:`Pmd`: a present PMD (THP) or huge PTE (hugetlb) mapping a whole 2 MiB folio.

No entry (``None`` in a page table) is ``pte_none``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from anonex.kernel.folio import Folio, Page

HPAGE_PMD_ORDER = 9  # x86-64 (and arm64 with 4 KiB pages): a PMD maps 2 MiB
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER  # small pages under one PMD


def huge_base(vpn: int) -> int:
    """The first vpn of the 2 MiB-aligned range holding *vpn*."""
    return vpn & ~(HPAGE_PMD_NR - 1)


MigrationKind = Literal["readable", "readable_exclusive", "writable"]


@mypyc_attr(acyclic=True)  # in no reference cycle: not tracked by the collector
class Pte:
    """A present PTE."""

    __slots__ = ("dirty", "page", "special", "write")

    def __init__(self, page: Page, write: bool = False, dirty: bool = False,
                 special: bool = False) -> None:
        self.page = page
        self.write = write
        self.dirty = dirty
        self.special = special


@mypyc_attr(acyclic=True)
class SwapPte:
    """A swap entry (type 0, ``slot`` the offset) with the exclusive marker."""

    __slots__ = ("exclusive", "slot")

    def __init__(self, slot: int, exclusive: bool) -> None:
        self.slot = slot
        self.exclusive = exclusive


@mypyc_attr(acyclic=True)
class MigrationPte:
    """A migration entry pointing at the page being migrated."""

    __slots__ = ("kind", "page")

    def __init__(self, page: Page, kind: MigrationKind) -> None:
        self.page = page
        self.kind = kind


@mypyc_attr(acyclic=True)
class DeviceExclusivePte:
    """A device-exclusive entry (``SWP_DEVICE_EXCLUSIVE``)."""

    __slots__ = ("page",)

    def __init__(self, page: Page) -> None:
        self.page = page


@mypyc_attr(acyclic=True)
class Pmd:
    """A present PMD mapping a whole 2 MiB folio: a THP, or a hugetlb page (``hugetlb``)."""

    __slots__ = ("dirty", "folio", "write")

    def __init__(self, folio: Folio, write: bool = False, dirty: bool = False) -> None:
        self.folio = folio
        self.write = write
        self.dirty = dirty


Entry = Pte | SwapPte | MigrationPte | DeviceExclusivePte
