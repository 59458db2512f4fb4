"""Every kernel-version boundary the model knows, in one table.

Each :class:`Boundary` names one rule, the first kernel that has it (and the first that no
longer has it, for rules that were later reverted), and the commit or series that brought
it. Mechanisms never compare version numbers themselves; they ask :class:`Rules` by name,
e.g. ``rules.anon_exclusive`` or ``rules.reuse_by_page_count``.

Sources: ``reference/cow-history.md`` (eras G0–G6) and ``reference/kernel-semantics.md``.
Versions marked "inferred" there are kept, and say so in ``note``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anonex.versions import KernelVersion


@dataclass(frozen=True, slots=True)
class Boundary:
    """One rule that holds for kernels in ``[since, until)``.

    A mainline release is ``since``/``until`` (compared by major.minor: every 6.18.y is
    6.18); a stable series that got the change later is named in ``backports`` (for
    ``since``) or ``until_backports`` (for ``until``) as the first release of that series
    that has it, e.g. ``5.10.9``. ``--kernel 5.10`` is the mainline 5.10.0; ``5.10.9`` has
    every backport up to 5.10.9. ``cves`` names the vulnerabilities the change fixed, so
    that a search for a CVE lands on the rules that close it.
    """

    name: str
    since: KernelVersion
    commit: str
    summary: str
    until: KernelVersion | None = None
    note: str = ""
    backports: tuple[KernelVersion, ...] = ()
    until_backports: tuple[KernelVersion, ...] = ()
    modelled: bool = True  # False: recorded for readers, no model rule reads it
    cves: tuple[str, ...] = ()

    def holds(self, v: KernelVersion) -> bool:
        if not _reached(v, self.since, self.backports):
            return False
        return self.until is None or not _reached(v, self.until, self.until_backports)

    def points(self) -> list[KernelVersion]:
        """Every version at which this rule starts or stops holding."""
        out = [KernelVersion(self.since.major, self.since.minor), *self.backports]
        if self.until is not None:
            out += [KernelVersion(self.until.major, self.until.minor), *self.until_backports]
        return out


def _reached(v: KernelVersion, mainline: KernelVersion,
             backports: tuple[KernelVersion, ...]) -> bool:
    """Whether kernel *v* has a change merged in *mainline* and backported to the stable
    releases *backports* (each the first release of its series to have it)."""
    if v.major_minor >= mainline.major_minor:
        return True
    return any(b.major_minor == v.major_minor and (v.patch or 0) >= (b.patch or 0)
               for b in backports)


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
             note="reverted by a308c71bf1e6 \"mm/gup: Remove enfornced COW mechanism\"",
             cves=("CVE-2020-29374",)),
    Boundary("thp_wp_split_fallback", _v("5.8"), "\"mm: thp: change CoW semantics for anon-THP\"",
             "a write to a shared PMD THP splits the PMD and copies one 4 KiB page"),
    Boundary("reuse_by_page_count", _v("5.9"), '09854ba94c6a "mm: do_wp_page() simplification"',
             "PTE write-fault reuse needs page_count == 1 (any extra reference copies)",
             note="closes CVE-2020-29374 for PTEs without forcing COW in GUP",
             cves=("CVE-2020-29374",)),
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
             "lru_add_drain and swapcache freeing in do_wp_page", note="version inferred",
             cves=("CVE-2020-29374",)),
    Boundary("anon_exclusive", _v("5.19"), '6c287605fd56 "mm: remember exclusively mapped '
             'anonymous pages with PG_anon_exclusive"', "PG_anon_exclusive, try_dup/try_share, "
             "unshare faults for R/O pins, the swap-entry exclusive bit"),
    Boundary("foll_force_exclusive", _v("6.0"), '5535be309971 "mm/gup: fix FOLL_FORCE COW '
             'security issue and remove FOLL_COW"', "a FOLL_FORCE write to a R/O PTE is allowed "
             "only on an exclusive anon page", cves=("CVE-2022-2590",)),
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
    Boundary("swapcache_map_large", _v("6.10"), '"mm: swap: entirely map large folios found '
             'in swapcache" (Chuanhua Han, Barry Song)', "a fault that finds a large folio in "
             "the swap cache maps all of it when the surrounding PTEs are its swap entries",
             note="version inferred; measured on 7.2.13 (a child's read of one page maps the "
             "16 pages of the mTHP its parent's swap-in left in the swap cache)"),
    Boundary("pt_reclaim_dontneed", _v("6.14"), '"mm: pgtable: reclaim empty PTE page in '
             'madvise(MADV_DONTNEED)" (Qi Zheng, CONFIG_PT_RECLAIM)', "MADV_DONTNEED frees "
             "the PTE tables it empties, so a later fault in an empty 2 MiB range can map a "
             "THP (or the huge zero page) by PMD again",
             note="version inferred; found by anonex fuzz: after split + MADV_DONTNEED of a THP "
             "a read fault maps a small zero page on 5.10.223, 6.1.187 and 6.12.117 and the "
             "huge zero page on 6.18.44 and 7.2.13"),
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
             "the swap cache", until=_v("7.0"),
             note='removed by f1879e8a0c60 "mm, swap: never bypass the swap cache even for '
             'SWP_SYNCHRONOUS_IO" (swap table phase II, 7.0): measured, 7.2.13 maps a shared '
             'swap-in read-only and 6.18.44 does not'),
    Boundary("swapin_through_cache", _v("7.0"), 'f1879e8a0c60 "mm, swap: never bypass the swap '
             'cache even for SWP_SYNCHRONOUS_IO", 4b34f1d82c65 "mm, swap: free the swap cache '
             'after folio is mapped"', "every swap-in goes through the swap cache; on a "
             "synchronous device the cache is dropped once the page is mapped, and a large "
             "folio comes back whatever the entries' swap counts (no readahead there)"),
    Boundary("lru_add_drain_in_wp", _v("5.18"), 'd4c470970d45 "mm: optimize do_wp_page() for '
             'fresh pages in local LRU pagevecs"', "do_wp_page drains the local LRU pagevec "
             "before counting references, so a fresh page's pagevec reference no longer "
             "forces a copy",
             note="before it (5.9..5.17) a page added to the LRU since the last drain holds "
             "one more reference; the model keeps those pages in Kernel.lru_pending"),
    Boundary("gup_fast_fork_seqcount", _v("5.11"), '57efa1fe5957 "mm/gup: prevent gup_fast '
             'from racing with COW during fork"', "fork write-protects under "
             "mm->write_protect_seq and gup_fast falls back to the slow path when fork ran "
             "meanwhile", backports=(_v("5.10.4"),),
             note="closes a race between threads; the model's steps are atomic, so no model "
             "rule reads it (a sequential scenario cannot observe it)", modelled=False),
    Boundary("pinned_not_swapcached", _v("5.11"), 'feb889fb40fa "mm: don\'t put pinned pages '
             'into the swap cache"', "reclaim skips maybe-pinned anon pages instead of adding "
             "them to the swap cache and unmapping them", backports=(_v("5.10.9"),),
             note="before it, a pinned page was unmapped and kept in the swap cache, and a "
             "write after swap-in copied it away from the pin (page_count reuse)"),
    Boundary("kpageflags_ksm_every_anon", _v("6.10"), 'dee3d0bef2b0 "proc: rewrite '
             'stable_page_flags()"', "kpageflags sets KPF_KSM on every anonymous page (it "
             "tests one bit of the folio's mapping, which every anon mapping has)",
             until=_v("7.2"), until_backports=(_v("6.18.44"),),
             note='fixed by 81401cebfc15 "fs/proc: fix KPF_KSM reported for all anonymous '
             'pages" (7.2-rc3, Cc: stable): 6.18.44 has the fix (measured; the first 6.18.y '
             'with it is not verified), 6.12.117 still has the bug (read in its source)'),
    Boundary("collapse_readonly_ptes", _v("6.18"), '"mm: enable khugepaged anonymous collapse on '
             'non-writable regions" (Dev Jain)', "collapse no longer needs a writable PTE in "
             "the range (SCAN_PAGE_RO is gone), so MADV_COLLAPSE of a fully shared range works",
             note="version inferred: 6.12.117 has SCAN_PAGE_RO (its mm/khugepaged.c) and "
             "fails with EINVAL (measured), 6.18.44 collapses (measured)"),
    Boundary("swap_alloc_nonfull_first", _v("6.18"), '"mm, swap: prefer nonfull over free '
             'clusters" (Kairui Song, Aug 2025)', "the swap allocator fills partly used "
             "clusters (cluster 0, after the header slot) before taking a free one; before, "
             "a fresh device's first allocation took the first free cluster (slot 512)",
             note="observable through mTHP swap-in alignment: 6.12.117 swaps a split THP's "
             "pages back in as a 64 KiB folio, 6.18.44 as small pages (measured)"),
    Boundary("khugepaged_mthp", _v("7.2"), '"khugepaged: mTHP support" (Nico Pache)',
             "khugepaged collapses to enabled mTHP sizes too",
             note="the model has no khugepaged and the live backend keeps it quiet: not "
             "observable by the library", modelled=False),
)

_BY_NAME = {b.name: b for b in BOUNDARIES}


class Rules:
    """The rules in force on one kernel version, as attributes named like the boundaries
    (plain instance attributes: the model asks for them on every step). The attributes are
    declared below, one per row of the table, so that a misspelt rule fails the type check;
    a test keeps the declarations and the table in step."""

    # --- generated from BOUNDARIES by tools/gen_rules.py: do not edit by hand ---
    ksm_reuse: bool
    gup_forces_cow_break: bool  # fixes CVE-2020-29374
    thp_wp_split_fallback: bool
    reuse_by_page_count: bool  # fixes CVE-2020-29374
    remote_faults_to_caller: bool
    fork_copies_pinned: bool
    hugetlb_fork_copies_pinned: bool
    cow_fixes_part1: bool  # fixes CVE-2020-29374
    anon_exclusive: bool
    foll_force_exclusive: bool  # fixes CVE-2022-2590
    mprotect_upgrade_exclusive: bool
    mprotect_upgrade_clean: bool
    madv_collapse: bool
    ro_longterm_unshare_any: bool
    swp_exclusive_all_arches: bool
    odirect_foll_pin: bool
    mthp: bool
    no_large_folio_refcount_reuse: bool
    kpageflags_from_head: bool
    writable_swapin_on_read: bool
    split_zero_remap: bool
    mthp_swapin: bool
    swapcache_map_large: bool
    pt_reclaim_dontneed: bool
    owner_2_rename: bool
    thp_zero_wp_alloc: bool
    mm_id_large_reuse: bool
    device_exclusive_mapped: bool
    swapin_sync_bypass: bool
    swapin_through_cache: bool
    lru_add_drain_in_wp: bool
    gup_fast_fork_seqcount: bool
    pinned_not_swapcached: bool
    kpageflags_ksm_every_anon: bool
    collapse_readonly_ptes: bool
    swap_alloc_nonfull_first: bool
    khugepaged_mthp: bool
    # --- end of generated block ---

    def __init__(self, version: KernelVersion,
                 overrides: Mapping[str, bool] | None = None) -> None:
        """*overrides*: rules that hold or not whatever the version says (a kernel's own
        answers, or one rule flipped to see what it decides)."""
        self.version = version
        on = {b.name for b in BOUNDARIES if b.holds(version)}
        for name, value in (overrides or {}).items():
            if name not in _BY_NAME:
                raise ValueError(f"no kernel rule named {name!r}")
            (on.add if value else on.discard)(name)
        self._on = frozenset(on)
        self.overrides = dict(overrides or {})
        for name in _BY_NAME:
            setattr(self, name, name in self._on)

    if not TYPE_CHECKING:  # hidden from mypy, which would then accept any name
        def __getattr__(self, name: str) -> bool:
            # only reached for names that are not boundaries (the others are set above)
            raise AttributeError(f"no kernel rule named {name!r}")

    def __repr__(self) -> str:
        extra = "".join(f", {n}={v}" for n, v in sorted(self.overrides.items()))
        return f"Rules({self.version}{extra})"


def boundary_versions() -> list[KernelVersion]:
    """Every version where the modelled rules change (stable backports included), plus the
    oldest era (5.4), sorted."""
    vs = {KernelVersion(5, 4)}
    for b in BOUNDARIES:
        if b.modelled:
            vs.update(b.points())
    out: list[KernelVersion] = []
    for v in sorted(v for v in vs if v >= KernelVersion(5, 4)):
        # a mainline release whose only change came to the series before as a backport
        # (5.11 after 5.10.9) runs the same rules: keep the first
        if not out or Rules(v)._on != Rules(out[-1])._on:
            out.append(v)
    return out
