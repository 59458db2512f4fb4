"""The model's whole state: the kernel, its processes (mm), VMAs and page tables.

:class:`Kernel` is the root: the version rules, every process's :class:`MM`, the shared zero
page, the swap device, pipes and pins. Mechanisms live in their own modules (memory, fork,
gup, mprotect, madvise, swap …) as functions that take the kernel first, like the kernel's
own functions take ``vmf`` or ``mm``.

Addresses are virtual page numbers (vpn). Scenario regions sit at fixed, 2 MiB-aligned
addresses, the same in every process, like the live backend's.
"""

from __future__ import annotations

from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from anonex.kernel.errors import Segfault
from anonex.kernel.flags import LAYOUTS, layout_for
from anonex.kernel.folio import Folio, Page, free_pages_prepare
from anonex.kernel.pgtable import Entry, Pmd, huge_base
from anonex.kernel.versions import Rules
from anonex.versions import CURRENT, KernelVersion

# vm_flags (include/linux/mm.h)
VM_READ = 0x1
VM_WRITE = 0x2
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYSHARE = 0x80
VM_DONTCOPY = 0x20000
VM_HUGETLB = 0x400000
VM_WIPEONFORK = 0x2000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_MERGEABLE = 0x80000000

# enum fault_flag and vm_fault_t (include/linux/mm_types.h). A fault handler returns the
# outcome it produced ("new", "reused", "copied", "swapin", "none"), or VM_FAULT_FALLBACK
# when a huge-page handler leaves the fault to the PTE level.
FAULT_FLAG_WRITE = 0x1
FAULT_FLAG_REMOTE = 0x80
FAULT_FLAG_UNSHARE = 0x400
VM_FAULT_FALLBACK = "fallback"

REGION_BASE_VPN = 0x10000000000 >> 12  # 1 TiB, as the live backend
REGION_STRIDE = 1024  # 4 MiB between regions


ZERO_PFN = 0
HUGE_ZERO_PFN = 1 << 40  # outside the model's allocations


def is_cow_mapping(vm_flags: int) -> bool:
    """``is_cow_mapping()``: private and may become writable."""
    return (vm_flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE


@mypyc_attr(acyclic=True)  # in no reference cycle: not tracked by the collector
@dataclass(slots=True)
class VMA:
    """A ``vm_area_struct``: ``[start, start + npages)`` in vpn."""

    start: int
    npages: int
    flags: int
    anon_vma: bool = False
    #: ``vma->swap_readahead_info``: the last swap fault's vpn, the window, readahead hits
    ra: tuple[int, int, int] = (0, 0, 0)

    @property
    def end(self) -> int:
        return self.start + self.npages


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class MM:
    """An ``mm_struct`` with its process name: VMAs and one flat page table (vpn → entry)."""

    name: str
    vmas: list[VMA]
    ptes: dict[int, Entry]
    has_pinned: bool  # MMF_HAS_PINNED (mm->has_pinned in 5.9–5.13)
    pmds: dict[int, Pmd]  # huge_base(vpn) -> PMD mapping
    # 2 MiB ranges whose PTE table MADV_DONTNEED emptied and left (before 6.14's PT reclaim)
    kept_ptables: frozenset[int]

    # written out (the dataclass keeps it) rather than default factories, which mypyc
    # would run as interpreted code on every copy the explorer makes
    def __init__(self, name: str, vmas: list[VMA] | None = None,
                 ptes: dict[int, Entry] | None = None, has_pinned: bool = False,
                 pmds: dict[int, Pmd] | None = None,
                 kept_ptables: frozenset[int] = frozenset()) -> None:
        self.name = name
        self.vmas = [] if vmas is None else vmas
        self.ptes = {} if ptes is None else ptes
        self.has_pinned = has_pinned
        self.pmds = {} if pmds is None else pmds
        self.kept_ptables = kept_ptables

    def pmd_at(self, vpn: int) -> Pmd | None:
        """The PMD mapping *vpn*, if a huge mapping covers it."""
        return self.pmds.get(huge_base(vpn)) if self.pmds else None
    def find_vma(self, vpn: int) -> VMA | None:
        for v in self.vmas:
            if v.start <= vpn < v.end:
                return v
        return None

    def vma_or_fault(self, vpn: int) -> VMA:
        v = self.find_vma(vpn)
        if v is None:
            raise Segfault(f"{self.name}: no mapping at page {vpn:#x}")
        return v


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class PageRef:
    """A reference a pipe or a pin holds on one page, and where it was taken."""

    page: Page
    mm: str
    vpn: int


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class Pipe:
    """A pipe holding FOLL_GET references from vmsplice; shared by the processes that hold
    its file descriptors."""

    refs: list[PageRef]
    holders: set[str]


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class Pin:
    """A set of FOLL_PIN references (an io_uring fixed buffer, or any pin_user_pages user)."""

    refs: list[PageRef]
    holders: set[str]
    gup_flags: int


@mypyc_attr(acyclic=True)
@dataclass(slots=True)
class SwapSlot:
    """One swap slot: the data written out, its swap count, and its swap-cache folio."""

    data: list[str]
    count: int = 0
    cache: Folio | None = None


SWAPFILE_CLUSTER = 512  # slots per swap cluster (mm/swapfile.c, x86-64 with THP)
KSM_MAX_PAGE_SHARING = 256  # mappings of one KSM page (mm/ksm.c default)


# An ordinary Python class even when mypyc compiles this module: the explorer copies it
# attribute by attribute (anonex.explore.clone), without running __init__.
@mypyc_attr(native_class=False)
class Kernel:
    """The model's root object."""

    def __init__(self, version: KernelVersion = CURRENT, layout: str | None = None,
                 rules: Rules | None = None) -> None:
        self.version = version
        self.rules = Rules(version) if rules is None else rules
        # a scenario's `layout` applies to kernels that have the flag at all (5.19+)
        self.layout = LAYOUTS[layout] if layout and self.rules.anon_exclusive else layout_for(
            self.rules.anon_exclusive, self.rules.owner_2_rename)
        self.injected: set[str] = set()  # armed fault injections (see backend "inject")
        self.mms: dict[str, MM] = {}
        self.next_pfn = 1
        self.zero_folio = Folio(ZERO_PFN, 0, self.layout)
        self.zero_folio.zero = True
        self._huge_zero: Folio | None = None
        self.thp_use_zero_page = True  # /sys/kernel/mm/transparent_hugepage/use_zero_page
        self.pipes: dict[str, Pipe] = {}
        self.pins: dict[str, Pin] = {}
        self.swap: dict[int, SwapSlot] = {}
        # swap_alloc_nonfull_first (6.18): cluster 0 after the header slot; before, the
        # first free cluster (SWAPFILE_CLUSTER slots each)
        self.next_slot = 1 if self.rules.swap_alloc_nonfull_first else SWAPFILE_CLUSTER
        self.regions: dict[str, int] = {}  # region name -> base vpn
        self.freed: list[Folio] = []  # folios freed since the last invariant check
        self.nr_faults = 0  # handle_mm_fault() calls, for fault counts of GUP users
        self.ksm_mms: list[str] = []  # mms registered with KSM, in ksm_enter order
        self.ksm_use_zero_pages = False  # /sys/kernel/mm/ksm/use_zero_pages
        self.ksm_max_page_sharing = KSM_MAX_PAGE_SHARING  # /sys/kernel/mm/ksm/...
        # the per-CPU LRU add batch, where do_wp_page counts its reference (see lru.py)
        self.lru_batch_refs = self.rules.reuse_by_page_count and \
            not self.rules.lru_add_drain_in_wp
        self.lru_pending: list[Folio] = []
        # mTHP orders enabled in madvise mode (hugepages-64kB/enabled = madvise); mTHP
        # exists from 6.8
        self.mthp_orders: frozenset[int] = frozenset({4}) if self.rules.mthp else frozenset()

    @property
    def zero_page(self) -> Page:
        return self.zero_folio.pages[0]

    @property
    def huge_zero_folio(self) -> Folio:
        """The huge zero page (allocated on first use, never freed)."""
        if self._huge_zero is None:
            f = Folio(HUGE_ZERO_PFN, 9, self.layout)
            f.zero = True
            self._huge_zero = f
        return self._huge_zero

    def region_vpn(self, region: str) -> int:
        if region not in self.regions:
            self.regions[region] = REGION_BASE_VPN + REGION_STRIDE * len(self.regions)
        return self.regions[region]

    # -- allocation and references ------------------------------------------------------

    def alloc_folio(self, order: int = 0) -> Folio:
        """``folio_alloc()``: a new folio with one reference and clear flags."""
        f = Folio(self.next_pfn, order, self.layout)
        self.next_pfn += 1 << order
        f.refcount = 1
        return f

    def folio_get(self, folio: Folio, n: int = 1) -> None:
        if folio.zero:
            return
        folio.refcount += n

    def folio_put(self, folio: Folio, n: int = 1) -> None:
        """``folio_put()``: drop references; the last one frees the folio."""
        if folio.zero:
            return
        folio.refcount -= n
        if folio.refcount == 0:
            if self.lru_pending and folio in self.lru_pending:
                self.lru_pending.remove(folio)  # the model drops the batch's reference too
            free_pages_prepare(folio, keep_exclusive="free-keeps-flag" in self.injected)
            self.freed.append(folio)
