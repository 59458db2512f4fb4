"""Migration (kernel/migrate.py): exclusivity through the migration entry kinds."""

from __future__ import annotations

from .conftest import model_run
from .modelkit import ok


def test_migration_keeps_exclusivity_through_entry_kinds() -> None:
    """kernel-semantics §15.21: exclusive pages stay exclusive, shared stay shared, a
    read-only exclusive page stays read-only and is reused on write; pinned pages stay."""
    t = model_run("""
P0: mmap A anon 4
P0: write A "x"
P0: fork P1
P0: write A[0] "w"
P0: dio-write A[1] -> v
P0: pin A[3] -> h
P0: migrate A
expect P0 A[0] exclusive
expect P0 A[1] exclusive
expect not P0 A[2] exclusive
expect P0 A[2] same P1 A[2]
expect mapcount P0 A[2] == 2
expect P0 A[3] exclusive
P0: write A[1] "y" @w
expect @w reused
P0: dma-read h -> d
expect d == "x"
""")
    ok(t)
    before, after = t.steps[5].obs, t.steps[6].obs
    for i in range(3):
        assert before[("P0", "A", i)].page != after[("P0", "A", i)].page  # moved
    assert before[("P0", "A", 3)].page == after[("P0", "A", 3)].page  # pinned: stays
    assert after[("P0", "A", 0)].extra["pte_write"]
    assert not after[("P0", "A", 1)].extra["pte_write"]
