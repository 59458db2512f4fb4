"""The pure decoders the live backend uses: pagemap entries, kpageflags bits, page tags."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonex.live.observe import exclusive_of
from anonex.live.pagedata import PAGE, combine, page_bytes, tag_of, tags_of
from anonex.procfs import kpageflags as kpf
from anonex.procfs import pagemap as pm

# -- pagemap -------------------------------------------------------------------------------


def test_pagemap_bit_positions() -> None:
    assert pm.PM_PRESENT == 1 << 63
    assert pm.PM_SWAP == 1 << 62
    assert pm.PM_FILE == 1 << 61
    assert pm.PM_MMAP_EXCLUSIVE == 1 << 56
    assert pm.PM_SOFT_DIRTY == 1 << 55
    assert pm.PM_PFN_MASK == (1 << 55) - 1


def test_present_entry_decodes() -> None:
    raw = (1 << 63) | (1 << 56) | 0x3B34
    e = pm.decode(raw)
    assert e.state == "present"
    assert e.pfn == 0x3B34
    assert e.mmap_exclusive
    assert not e.file
    assert e.swap_type is None and e.swap_offset is None


def test_swap_entry_decodes() -> None:
    raw = (1 << 62) | (0x1234 << 5) | 3
    e = pm.decode(raw)
    assert e.state == "swapped"
    assert e.pfn is None
    assert e.swap_type == 3
    assert e.swap_offset == 0x1234
    assert not e.mmap_exclusive


def test_empty_entry_is_none() -> None:
    e = pm.decode(0)
    assert e.state == "none"
    assert e.pfn is None and e.swap_type is None


def test_decode_bytes_is_little_endian_and_ordered() -> None:
    data = struct.pack("<QQQ", (1 << 63) | 7, 0, (1 << 62) | (9 << 5))
    entries = pm.decode_bytes(data)
    assert [e.state for e in entries] == ["present", "none", "swapped"]
    assert entries[0].pfn == 7
    assert entries[2].swap_offset == 9


@given(pfn=st.integers(0, (1 << 55) - 1), excl=st.booleans(), file=st.booleans())
def test_present_roundtrip(pfn: int, excl: bool, file: bool) -> None:
    e = pm.decode(pm.encode_present(pfn, mmap_exclusive=excl, file=file))
    assert (e.state, e.pfn, e.mmap_exclusive, e.file) == ("present", pfn, excl, file)


@given(typ=st.integers(0, 31), off=st.integers(0, (1 << 50) - 1))
def test_swap_roundtrip(typ: int, off: int) -> None:
    e = pm.decode(pm.encode_swap(typ, off))
    assert (e.state, e.swap_type, e.swap_offset) == ("swapped", typ, off)
    assert not e.mmap_exclusive


# -- kpageflags ----------------------------------------------------------------------------


def test_kpf_bits_match_the_kernel_abi() -> None:
    expected = {"LOCKED": 0, "LRU": 5, "MMAP": 11, "ANON": 12, "SWAPCACHE": 13,
                "SWAPBACKED": 14, "COMPOUND_HEAD": 15, "COMPOUND_TAIL": 16, "HUGE": 17,
                "KSM": 21, "THP": 22, "ZERO_PAGE": 24, "PGTABLE": 26, "OWNER_2": 34,
                "SOFTDIRTY": 40, "ARCH_3": 42, "ANON_EXCLUSIVE": 47, "MMAP_EXCLUSIVE": 63}
    for name, b in expected.items():
        assert kpf.bit(name) == b, name


def test_kpf_table_is_one_consistent_table() -> None:
    bits = [row.bit for row in kpf.KPF_TABLE]
    assert len(bits) == len(set(bits))
    names = [row.name for row in kpf.KPF_TABLE]
    assert len(names) == len(set(names))
    assert bits == sorted(bits)
    for row in kpf.KPF_TABLE:
        assert row.meaning
        assert (row.letter is None) == (row.tool_name is None)
        assert row.kind == ("public" if row.bit < 32 else "hacker" if row.bit < 47 else "tool")


def test_page_types_letters() -> None:
    letters = {row.name: row.letter for row in kpf.KPF_TABLE}
    assert letters["ANON"] == "a"
    assert letters["OWNER_2"] == "d"
    assert letters["ANON_EXCLUSIVE"] == "d"
    assert letters["ZERO_PAGE"] == "z"
    assert letters["THP"] == "t"
    assert letters["KSM"] == "x"
    assert letters["MMAP_EXCLUSIVE"] == "1"
    row = kpf.info(34)
    assert row is not None and row.tool_name == "owner_2"
    assert kpf.info(30) is None


def test_encode_names_roundtrip() -> None:
    w = kpf.encode(["ANON", "MMAP", "OWNER_2"])
    assert w == (1 << 12) | (1 << 11) | (1 << 34)
    assert kpf.names(w) == ["MMAP", "ANON", "OWNER_2"]
    assert kpf.names(1 << 30) == ["BIT30"]
    with pytest.raises(KeyError):
        kpf.encode(["NOPE"])


def test_anon_exclusive_needs_anon_and_not_ksm() -> None:
    assert kpf.anon_exclusive(kpf.encode(["ANON", "OWNER_2"]))
    assert not kpf.anon_exclusive(kpf.encode(["ANON"]))
    assert not kpf.anon_exclusive(kpf.encode(["OWNER_2"]))  # pagecache: PG_mappedtodisk
    assert not kpf.anon_exclusive(kpf.encode(["ANON", "KSM", "OWNER_2"]))


def test_letters_string() -> None:
    s = kpf.letters(kpf.encode(["ANON", "MMAP"]))
    assert "a" in s and "M" in s
    assert set(s) <= {"a", "M", "_"}


def test_exclusive_of_large_folios() -> None:
    small = kpf.encode(["ANON", "MMAP", "OWNER_2"])
    assert exclusive_of(small, "small") is True
    assert exclusive_of(kpf.encode(["ANON", "MMAP"]), "small") is False
    assert exclusive_of(kpf.encode(["MMAP", "ZERO_PAGE"]), "small") is False
    thp_tail = kpf.encode(["ANON", "MMAP", "THP", "COMPOUND_TAIL", "OWNER_2"])
    assert exclusive_of(thp_tail, "small") is None  # head-mirroring: unknown
    huge = kpf.encode(["ANON", "MMAP", "HUGE", "COMPOUND_HEAD", "OWNER_2"])
    assert exclusive_of(huge, "hugetlb") is True
    assert exclusive_of(kpf.encode(["ANON", "KSM", "OWNER_2"]), "small") is False


# -- page tags -----------------------------------------------------------------------------


def test_page_bytes_and_tag() -> None:
    b = page_bytes("héllo")
    assert len(b) == PAGE
    assert b.startswith("héllo".encode())
    assert b[len("héllo".encode()):] == b"\0" * (PAGE - len("héllo".encode()))
    assert tag_of(b) == "héllo"
    assert tag_of(b"\0" * PAGE) == ""
    with pytest.raises(ValueError):
        page_bytes("x" * PAGE)


def test_combine_rule() -> None:
    assert combine(["a", "a", "a"]) == "a"
    assert combine(["a", "b", ""]) == "a,b,"
    assert combine([]) == ""
    assert tags_of(page_bytes("x") + page_bytes("y")) == ["x", "y"]
