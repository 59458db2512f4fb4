"""The pure decoders the live backend uses: pagemap entries, kpageflags bits, page tags."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonex.live.observe import exclusive_of, pfn_runs, smaps_anon_huge
from anonex.live.pagedata import PAGE, page_bytes, tag_of, tags_of
from anonex.procfs import kpageflags as kpf
from anonex.procfs import pagemap as pm
from anonex.scenario.ast import join_tags

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


def test_exclusive_of_small_and_special_pages() -> None:
    small = kpf.encode(["ANON", "MMAP", "OWNER_2"])
    assert exclusive_of(small) == (True, "page")
    assert exclusive_of(kpf.encode(["ANON", "MMAP"])) == (False, "page")
    assert exclusive_of(kpf.encode(["MMAP", "ZERO_PAGE"])) == (False, "not anon")
    assert exclusive_of(kpf.encode(["ANON", "KSM", "OWNER_2"])) == (False, "ksm")
    assert exclusive_of(kpf.encode(["OWNER_2", "MMAP"]))[0] is False  # PG_mappedtodisk


def test_exclusive_of_large_folios() -> None:
    tail = kpf.encode(["ANON", "MMAP", "THP", "COMPOUND_TAIL", "OWNER_2"])
    head_excl = kpf.encode(["ANON", "MMAP", "THP", "COMPOUND_HEAD", "OWNER_2"])
    head_shared = kpf.encode(["ANON", "MMAP", "THP", "COMPOUND_HEAD"])
    # PTE-mapped: kpageflags mirrors the head (6.10+): the page's own bit is unknown
    assert exclusive_of(tail) == (None, "head-mirror: unknown")
    # ... but per-page flags (5.19-6.9) are the truth
    assert exclusive_of(tail, head_mirror=False) == (True, "page")
    # PMD-mapped: the head's bit describes the mapping, whatever the tail word says
    assert exclusive_of(tail, head=head_excl) == (True, "pmd head")
    assert exclusive_of(tail, head=head_shared) == (False, "pmd head")
    huge_tail = kpf.encode(["ANON", "MMAP", "HUGE", "COMPOUND_TAIL"])
    huge_head = kpf.encode(["ANON", "MMAP", "HUGE", "COMPOUND_HEAD", "OWNER_2"])
    assert exclusive_of(huge_tail, head=huge_head) == (True, "hugetlb head")


def test_pfn_runs() -> None:
    assert pfn_runs([]) == []
    assert pfn_runs([5, 3, 4, 9, 4, 10, 20]) == [(3, 3), (9, 2), (20, 1)]


def test_smaps_anon_huge() -> None:
    text = (b"10000000000-10000200000 rw-p 00000000 00:00 0 \n"
            b"Size:               2048 kB\n"
            b"AnonHugePages:      2048 kB\n"
            b"VmFlags: rd wr mr mw me ac hg\n"
            b"10000400000-10000410000 rw-p 00000000 00:00 0 \n"
            b"AnonHugePages:         0 kB\n"
            b"7f00-8000 r--p 00000000 fd:00 123   /usr/lib/x-y.so\n")
    assert smaps_anon_huge(text) == [(0x10000000000, 0x10000200000, 2 << 20),
                                      (0x10000400000, 0x10000410000, 0), (0x7F00, 0x8000, 0)]


def test_pagemap_scan_encoding() -> None:
    assert pm.PAGEMAP_SCAN == 0xC0606610  # _IOWR('f', 16, struct pm_scan_arg)
    arg = pm.encode_scan_arg(0x1000, 0x3000, 0xABC, 7, category_mask=pm.PAGE_IS_HUGE)
    fields = struct.unpack("<12Q", arg)
    assert fields[0] == 96 and fields[2:4] == (0x1000, 0x3000)
    assert fields[5:7] == (0xABC, 7) and fields[9] == pm.PAGE_IS_HUGE
    assert fields[11] == pm.PAGE_IS_HUGE  # return mask
    data = struct.pack("<6Q", 0x1000, 0x2000, pm.PAGE_IS_HUGE, 0x4000, 0x5000, 0)
    assert pm.decode_regions(data, 2) == [(0x1000, 0x2000, pm.PAGE_IS_HUGE),
                                          (0x4000, 0x5000, 0)]


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
    assert join_tags(["a", "a", "a"]) == "a"
    assert join_tags(["a", "b", ""]) == "a,b,"
    assert join_tags([]) == ""
    assert tags_of(page_bytes("x") + page_bytes("y")) == ["x", "y"]
