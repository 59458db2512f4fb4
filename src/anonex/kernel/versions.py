"""Every kernel-version boundary the model knows, in one table.

Each :class:`Boundary` names one rule, the first kernel that has it (and the first that no
longer has it, for rules that were later reverted), and the commit or series that brought
it. Mechanisms never compare version numbers themselves; they ask :class:`Rules` by name,
e.g. ``rules.anon_exclusive`` or ``rules.reuse_by_page_count``.

Sources: ``reference/cow-history.md`` (eras G0–G6) and ``reference/kernel-semantics.md``.
Versions marked "inferred" there are kept, and say so in ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonex.versions import KernelVersion


@dataclass(frozen=True, slots=True)
class Boundary:
    """One rule that holds for kernels in ``[since, until)``."""

    name: str
    since: KernelVersion
    commit: str
    summary: str
    until: KernelVersion | None = None
    note: str = ""

    def holds(self, v: KernelVersion) -> bool:
        if v.major_minor < self.since.major_minor:
            return False
        return self.until is None or v.major_minor < self.until.major_minor


def _v(s: str) -> KernelVersion:
    return KernelVersion.parse(s)


BOUNDARIES: tuple[Boundary, ...] = (
    Boundary("ksm_reuse", _v("5.1"), 'f0953a1bbaca? "mm: reuse only-pte-mapped KSM page in '
             'do_wp_page()"', "a write fault may reuse a KSM page mapped by one PTE with "
             "refcount 1 (reuse_ksm_page)", until=_v("5.9"),
             note="removed by 1a0cf26323c8 \"mm/ksm: Remove reuse_ksm_page()\""),
    Boundary("gup_forces_cow_break", _v("5.8"), '17839856fd58 "gup: document and work around '
             '\'COW can break either way\' issue"', "every GUP in a COW mapping is done as "
             "FOLL_WRITE, so R/O GUP breaks COW too", until=_v("5.9"),
             note="reverted by a308c71bf1e6 \"mm/gup: Remove enfornced COW mechanism\""),
    Boundary("thp_wp_split_fallback", _v("5.8"), "\"mm: thp: change CoW semantics for anon-THP\"",
             "a write to a shared PMD THP splits the PMD and copies one 4 KiB page"),
    Boundary("reuse_by_page_count", _v("5.9"), '09854ba94c6a "mm: do_wp_page() simplification"',
             "PTE write-fault reuse needs page_count == 1 (any extra reference copies)"),
    Boundary("remote_faults_to_caller", _v("5.9"), 'bce617edecad "mm: do page fault accounting '
             'in handle_mm_fault"', "faults GUP takes on another mm count against the "
             "calling thread (before: the target task)"),
    Boundary("fork_copies_pinned", _v("5.9"), '70e806e4e645 "mm: Do early cow for pinned pages '
             'during fork() for ptes"', "fork gives the child a copy of maybe-pinned pages of "
             "an mm with MMF_HAS_PINNED (has_pinned)"),
    Boundary("hugetlb_fork_copies_pinned", _v("5.12"), '4eae4efa2c29 "hugetlb: do early cow '
             'when page pinned on src mm"', "the same for hugetlb", note="version inferred"),
    Boundary("cow_fixes_part1", _v("5.18"), '"mm: COW fixes part 1: fix the COW security issue '
             'for THP and swap"', "page_count reuse also for PMD THP and do_swap_page; "
             "lru_add_drain and swapcache freeing in do_wp_page", note="version inferred"),
    Boundary("anon_exclusive", _v("5.19"), '6c287605fd56 "mm: remember exclusively mapped '
             'anonymous pages with PG_anon_exclusive"', "PG_anon_exclusive, try_dup/try_share, "
             "unshare faults for R/O pins, the swap-entry exclusive bit"),
    Boundary("foll_force_exclusive", _v("6.0"), '5535be309971 "mm/gup: fix FOLL_FORCE COW '
             'security issue and remove FOLL_COW"', "a FOLL_FORCE write to a R/O PTE is allowed "
             "only on an exclusive anon page"),
    Boundary("mprotect_upgrade_exclusive", _v("6.0"), '64fe24a3e05e "mm/mprotect: try avoiding '
             'write faults for exclusive anonymous pages when changing protection"',
             "mprotect(PROT_WRITE) maps exclusive anon pages writable at once"),
    Boundary("mprotect_upgrade_clean", _v("6.2"), '"mm/mprotect: allow clean exclusive anon '
             'pages to be writable"', "the mprotect upgrade no longer needs a dirty PTE"),
    Boundary("madv_collapse", _v("6.1"), '"mm/madvise: introduce MADV_COLLAPSE sync hugepage '
             'collapse"', "MADV_COLLAPSE copies a PTE-mapped range into a new THP"),
    Boundary("ro_longterm_unshare_any", _v("6.2"), '"mm/gup: reliable R/O long-term pinning in '
             'COW mappings"', "a R/O FOLL_LONGTERM pin unshares any page of a COW mapping "
             "(zero page, pagecache)"),
    Boundary("swp_exclusive_all_arches", _v("6.3"), '"support __HAVE_ARCH_PTE_SWP_EXCLUSIVE on '
             'all architectures with swap PTEs"', "every arch keeps the exclusive bit in swap "
             "PTEs (x86 has it since 5.19)", note="version from memory"),
    Boundary("odirect_foll_pin", _v("6.3"), '"block: convert bio_iov_iter_get_pages to '
             'iov_iter_extract_pages" (for-6.3/dio)', "O_DIRECT takes FOLL_PIN instead of "
             "FOLL_GET", note="version inferred from branch names"),
    Boundary("mthp", _v("6.8"), '"mm: thp: support allocation of anonymous multi-size THP"',
             "anonymous folios of orders between 0 and PMD (mTHP), PTE-mapped"),
    Boundary("no_large_folio_refcount_reuse", _v("6.9"), '"mm: prohibit the last subpage from '
             'reusing the entire large folio"', "wp_can_reuse_anon_folio refuses large folios"),
    Boundary("kpageflags_from_head", _v("6.10"), 'dee3d0bef2b0 "proc: rewrite '
             'stable_page_flags()"', "kpageflags reads the folio head's flags for every page"),
    Boundary("writable_swapin_on_read", _v("6.11"), 'c18160dba5ff "mm: map exclusive swapped-in '
             'pages writable on read faults"', "a read swap-in of an exclusive entry maps the "
             "page writable"),
    Boundary("split_zero_remap", _v("6.12"), 'b1f202060afe "mm: remap unused subpages to '
             'shared zeropage when splitting isolated thp"', "splitting an anon large folio "
             "maps its zero-filled pages to the shared zero page", note="version inferred"),
    Boundary("mthp_swapin", _v("6.12"), '242d12c98174 "mm: support large folios swap-in for '
             'sync io devices"', "a synchronous device swaps a contiguous, unshared range back "
             "in as one mTHP", note="version inferred"),
    Boundary("owner_2_rename", _v("6.12"), '"mm: rename PG_mappedtodisk to PG_owner_2"',
             "PG_anon_exclusive = PG_owner_2 = PG_mappedtodisk; KPF_OWNER_2 (bit 34)"),
    Boundary("thp_zero_wp_alloc", _v("6.13"), '1ced09e0331f "mm: allocate THP on hugezeropage '
             'wp-fault"', "a write to the huge zero page gets a new THP instead of a split and "
             "a 4 KiB copy", note="version inferred"),
    Boundary("mm_id_large_reuse", _v("6.15"), '1da190f4d0a6 "mm: Copy-on-Write (COW) reuse '
             'support for PTE-mapped THP"', "PTE-mapped large folios are reused through "
             "MM-ID ownership tracking"),
    Boundary("device_exclusive_mapped", _v("6.15"), '"mm/rmap: implement make_device_exclusive() '
             'using folio_walk instead of rmap walk"', "device-exclusive entries keep the "
             "rmap and the flag"),
    Boundary("swapin_sync_bypass", _v("4.15"), '0bcac06f27d7 "mm, swap: skip swapcache for '
             'swapin of synchronous device"', "zram swap-in of an entry with one user skips "
             "the swap cache", until=_v("6.19"), note="removed after 6.18 (swap table phase II)"),
)

_BY_NAME = {b.name: b for b in BOUNDARIES}


class Rules:
    """The rules in force on one kernel version, as attributes named like the boundaries
    (plain instance attributes: the model asks for them on every step)."""

    def __init__(self, version: KernelVersion) -> None:
        self.version = version
        self._on = frozenset(b.name for b in BOUNDARIES if b.holds(version))
        for name in _BY_NAME:
            setattr(self, name, name in self._on)

    def __getattr__(self, name: str) -> bool:
        # only reached for names that are not boundaries (the others are set above)
        raise AttributeError(f"no kernel rule named {name!r}")

    def __repr__(self) -> str:
        return f"Rules({self.version})"


def boundary_versions() -> list[KernelVersion]:
    """Every version where some rule changes, plus the oldest era (5.4), sorted."""
    vs = {KernelVersion(5, 4)}
    for b in BOUNDARIES:
        vs.add(KernelVersion(b.since.major, b.since.minor))
        if b.until is not None:
            vs.add(KernelVersion(b.until.major, b.until.minor))
    return sorted(v for v in vs if v >= KernelVersion(5, 4))
