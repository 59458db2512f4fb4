"""fork (kernel/fork.py): PG_anon_exclusive cleared and PTEs write-protected, pinned
pages copied for the child, MADV_DONTFORK and MADV_WIPEONFORK VMAs."""

from __future__ import annotations

from anonex.kernel.folio import GUP_PIN_COUNTING_BIAS

from .conftest import model_run
from .modelkit import model_state, obs, ok


def test_fork_clears_flag_and_write_protects_both() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
expect P0 A[0] same P1 A[0]
expect not P0 A[0] exclusive
expect mapcount P0 A[0] == 2
""")
    ok(t)
    for p in ("P0", "P1"):
        assert not obs(t, 2, p).extra["pte_write"]
    assert obs(t, 2, "P0").extra["refcount"] == 2


def test_pinned_page_is_copied_for_child_at_fork() -> None:
    """Prediction 6: child gets a copy; parent keeps a writable exclusive page."""
    t = model_run("""
P0: mmap A anon 2
P0: write A "x"
P0: pin A[0] -> buf
P0: fork P1
expect not P0 A[0] same P1 A[0]
expect P0 A[0] exclusive
expect P1 A[0] exclusive
expect mapcount P0 A[0] == 1
expect P0 A[1] same P1 A[1]
expect not P0 A[1] exclusive
P0: write A[0] "y" @w
expect @w faults == 0
P1: read A[0] -> c
expect c == "x"
""")
    ok(t)
    o = obs(t, 3, "P0")
    assert o.extra["refcount"] == 1 + GUP_PIN_COUNTING_BIAS


def test_child_does_not_inherit_has_pinned() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\nP0: pin A -> b\nP0: fork P1\n')
    assert be.k.mms["P0"].has_pinned and not be.k.mms["P1"].has_pinned


def test_dontfork_and_wipeonfork() -> None:
    """Prediction 18."""
    t = model_run("""
P0: mmap A anon 1
P0: mmap B anon 1
P0: write A "a"
P0: write B "b"
P0: madvise A dontfork
P0: madvise B wipeonfork
P0: fork P1
expect P0 A[0] exclusive
expect P0 B[0] exclusive
expect mapcount P0 A[0] == 1
expect P1 A[0] none
P1: read B[0] -> w
expect w == ""
expect P1 B[0] zero
""")
    ok(t)
    bad = model_run('P0: mmap A anon 1\nP0: madvise A dontfork\nP0: fork P1\nP1: read A[0] -> v\n')
    assert bad.verdict == "fail"
    assert "SIGSEGV" in bad.reason or "no mapping" in bad.reason
