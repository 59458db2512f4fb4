"""Dead fields: parts of a state that no rule of the explored kernel version reads.

A field is dead in a search when, at that kernel version and with the bound's operations,
no model path decides anything on it and no property looks at it: it is only set, or
copied into another instance of itself (a PTE's dirty bit into the child's at fork, into
the PTEs of a split PMD). Two states that differ only in dead fields then have the same
actions, the same successors up to those fields and the same findings, so the state key
leaves the fields out (:attr:`anonex.explore.canon.Layout.dead`) and the search stores one
state where it stored several: the dead variable reduction of SPIN, decided per kernel
version from the version table. Violations, their shortest paths and the sometimes
properties reached are those of the search without it (``tests/test_explore_reduce.py``
compares both on several bounds and versions).

:data:`READERS` names every place of the model that reads each field and the rule under
which it matters; a test scans the model for reads of the fields and fails when it finds
one not listed here, so a new reader cannot make the reduction unsound unnoticed.
"""

from __future__ import annotations

from anonex.kernel.versions import Rules

DIRTY = "dirty"  # Pte.dirty and Pmd.dirty
HAS_PINNED = "has_pinned"  # MM.has_pinned (MMF_HAS_PINNED)
FIELDS = (DIRTY, HAS_PINNED)

# field -> {module.function: when the read decides something ("" for a copy into the same
# field of another entry, which decides nothing)}
READERS: dict[str, dict[str, str]] = {
    DIRTY: {
        "mprotect.can_change_pte_writable": "6.0-6.1 upgrade only dirty PTEs "
                                            "(mprotect_upgrade_exclusive, not _clean)",
        "mprotect.can_change_pmd_writable": "the same for PMDs",
        "ksm.write_protect_page": "a KSM merge (ksm-scan)",
        "gup.can_follow_write_pte": "FOLL_FORCE before foll_force_exclusive (force-write)",
        "fork.copy_present_pte": "",
        "hugetlb.copy_hugetlb_pmd": "",
        "thp.split_huge_pmd": "",
        "thp.copy_huge_pmd": "",
        "thp.split_folio": "",
        "model._obs": "",  # what the model backend reports; the explorer never observes
    },
    HAS_PINNED: {
        "rmap.folio_needs_cow_for_dma": "fork's early COW of maybe-pinned pages "
                                        "(fork_copies_pinned, hugetlb_fork_copies_pinned, "
                                        "anon_exclusive)",
    },
}


def dead_fields(rules: Rules, ops: frozenset[str]) -> frozenset[str]:
    """The fields of :data:`FIELDS` no reader of :data:`READERS` can use in a search at
    *rules* with the operations *ops*."""
    dead = set()
    dirty_read = (
        (rules.mprotect_upgrade_exclusive and not rules.mprotect_upgrade_clean)
        or "ksm-scan" in ops
        or ("force-write" in ops and not rules.foll_force_exclusive))
    if not dirty_read:
        dead.add(DIRTY)
    if not (rules.fork_copies_pinned or rules.hugetlb_fork_copies_pinned
            or rules.anon_exclusive):
        dead.add(HAS_PINNED)
    return frozenset(dead)
