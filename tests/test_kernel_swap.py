"""Swap (kernel/swap.py, kernel/vmscan.py, do_swap_page in kernel/memory.py):
exclusivity through the swap entry, fork of swap entries, swap-in."""

from __future__ import annotations

from .conftest import model_run
from .modelkit import obs, ok


def test_swap_roundtrip_keeps_exclusivity_in_entry() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: madvise A pageout
expect P0 A[0] swapped
P0: read A[0] -> v @r
expect @r swapin
expect P0 A[0] exclusive
P0: write A "y" @w
expect @w faults == 0
""")
    ok(t)
    assert obs(t, 2, "P0").extra["swp_exclusive"] is True


def test_fork_of_swap_entry_drops_exclusive_bit() -> None:
    """Prediction 11: both entries non-exclusive; parent copies, child then reuses."""
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: madvise A pageout
P0: fork P1
P0: read A[0] -> v @r
expect @r swapin
expect not P0 A[0] exclusive
P0: write A "p" @w
expect @w copied
P1: read A[0] -> c
expect c == "x"
P1: write A "c" @cw
expect @cw reused
expect P1 A[0] exclusive
""")
    ok(t)
    assert obs(t, 3, "P0").extra["swp_exclusive"] is False
    assert obs(t, 3, "P1").extra["swp_exclusive"] is False


def test_writable_swapin_on_read_since_6_11() -> None:
    text = """
P0: mmap A anon 1
P0: write A "x"
P0: madvise A pageout
P0: read A[0] -> v
P0: write A "y" @w
expect @w faults == {}
"""
    ok(model_run(text.format(0), "6.11"))
    ok(model_run(text.format(1), "6.10"))


def test_pinned_page_is_not_swapped() -> None:
    """Prediction 9: try_to_unmap fails for a maybe-pinned page."""
    t = model_run("""
P0: mmap A anon 2
P0: write A "d"
P0: pin A[0] -> h
P0: madvise A pageout
expect P0 A[0] present
expect P0 A[0] exclusive
expect P0 A[1] swapped
""")
    ok(t)


def test_mthp_swapin_brings_back_whole_folio_since_6_12() -> None:
    text = """
P0: mmap A anon 16
P0: madvise A hugepage
P0: write A "m"
P0: madvise A pageout
P0: read A[3] -> v @r
expect @r swapin
expect P0 A[15] {state}
"""
    ok(model_run(text.format(state="present"), "6.12"))
    ok(model_run(text.format(state="swapped"), "6.11"))
