"""``anonex page-types`` beyond the golden outputs: parsing, decoding, errors, JSON,
exclusivity, chunking. All on the saved fixtures (no root needed)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonex.pagetypes import decode as dc
from anonex.pagetypes import kpage, proc
from anonex.pagetypes import names as nm
from anonex.pagetypes.cli import main
from anonex.pagetypes.errors import PageTypesError
from anonex.pagetypes.fmt import Num, Text, format_rows
from anonex.procfs import kpageflags as kpf

FIX = Path(__file__).parent / "fixtures" / "page-types"
GOLDEN = FIX / "golden"
SLICE = str(FIX / "slice.kpageflags")
DUMPS = ["-F", SLICE, "--kpagecount", str(FIX / "slice.kpagecount"),
         "--kpagecgroup", str(FIX / "slice.kpagecgroup")]
PROC = ["-p", "4242", "--maps", str(FIX / "proc.maps"), "--pagemap", str(FIX / "proc.pagemap")]


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(args, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def golden_rows(name: str) -> list[tuple[int, int]]:
    rows = []
    for line in (GOLDEN / f"{name}.txt").read_text().splitlines():
        m = re.match(r"0x([0-9a-f]{16})\t +(\d+) ", line)
        if m:
            rows.append((int(m.group(1), 16), int(m.group(2))))
    return rows


# -- names and specs ---------------------------------------------------------------------------


def test_the_symbolic_columns_are_page_types_named_bits() -> None:
    assert nm.WIDTH == 43
    assert nm.symbolic(0) == "_" * 43
    assert nm.symbolic(1 << 12) == "____________a" + "_" * 30
    assert nm.long_names((1 << 12) | (1 << 47)) == "anonymous,anon_exclusive"
    with pytest.raises(nm.UnnamedBit, match="bit 42"):
        nm.symbolic(1 << 42)


@pytest.mark.parametrize(("token", "bits"), [
    ("a", 1 << 6),  # the first name in bit order: active
    ("anon", 1 << 12),
    ("anon_", 1 << 47),
    ("swap", 1 << 13),  # swapcache, not swap
    ("c", (1 << 15) | (1 << 16)),
    ("compound", (1 << 15) | (1 << 16)),
    ("compound_t", 1 << 16),
    ("0x10", 0x10),
    ("16", 16),
    ("020", 16),
    ("", 0),
])
def test_flag_names_are_prefixes_in_bit_order(token: str, bits: int) -> None:
    assert nm.parse_flag_name(token, token) == bits


@pytest.mark.parametrize(("spec", "mask", "bits"), [
    ("anon,ksm", (1 << 12) | (1 << 21), nm.ALL_BITS),
    ("anon,thp=thp", (1 << 12) | (1 << 22), 1 << 22),
    ("anon,~thp", (1 << 12) | (1 << 22), 1 << 12),
    ("=anon,mmap", nm.ALL_BITS, (1 << 12) | (1 << 11)),
    ("~ksm", 1 << 21, 0),
])
def test_the_four_bits_spec_forms(spec: str, mask: int, bits: int) -> None:
    assert nm.parse_bits_spec(spec) == (mask, bits)


@pytest.mark.parametrize(("spec", "rng"), [
    ("5", (5, 1)), ("0x10+4", (16, 4)), ("10,20", (10, 10)), (",8", (0, 8)), ("+8", (0, 8)),
    ("7,", (7, nm.U64 - 7)), ("7+", (7, nm.U64 - 7)), ("3,3", (3, 0)),
])
def test_the_address_spec_forms(spec: str, rng: tuple[int, int]) -> None:
    assert nm.parse_addr_spec(spec) == rng


# -- decoding ------------------------------------------------------------------------------------


def _ref_expand(w: int, pme: int) -> int:
    """page-types' expand_overloaded_flags, one word at a time."""
    if w >> 12 & 1 and w >> 34 & 1:
        w ^= (1 << 34) | (1 << 47)
    if w >> 7 & 1:
        if w >> 6 & 1:
            w ^= (1 << 6) | (1 << 50)
        if w >> 1 & 1:
            w ^= (1 << 1) | (1 << 51)
    if w >> 9 & 1 and not w >> 8 & 1:
        w ^= (1 << 9) | (1 << 48)
    for src, dst in ((55, 40), (61, 61), (62, 62), (56, 63)):
        if pme >> src & 1:
            w |= 1 << dst
    return w


def _ref_well_known(w: int) -> int:
    w &= ~(0xFFFF << 32)
    if w & ((1 << 15) | (1 << 16)) and not w >> 17 & 1:
        w &= ~((1 << 15) | (1 << 16))
    return w


KPF_BITS = st.lists(st.sampled_from([0, 1, 6, 7, 8, 9, 12, 15, 16, 17, 21, 22, 24, 34, 35, 40]),
                    max_size=8).map(lambda bs: sum({1 << b for b in bs}))
PM_BITS = st.lists(st.sampled_from([55, 56, 61, 62, 63]), max_size=4).map(
    lambda bs: sum({1 << b for b in bs}))


@given(st.lists(st.tuples(KPF_BITS, PM_BITS), min_size=1, max_size=40))
def test_numpy_views_equal_page_types_rules(pairs: list[tuple[int, int]]) -> None:
    w = np.array([p[0] for p in pairs], dtype=np.uint64)
    pme = np.array([p[1] for p in pairs], dtype=np.uint64)
    assert dc.expand_overloaded(w, pme).tolist() == [_ref_expand(a, b) for a, b in pairs]
    assert dc.well_known(w).tolist() == [_ref_well_known(a) for a, _ in pairs]


def test_anon_states() -> None:
    anon, ow, ksm, thp, head, tail, huge, slab = (1 << b for b in (12, 34, 21, 22, 15, 16, 17,
                                                                   7))
    words = [0, anon, anon | ow, anon | ksm | ow, anon | thp | head | ow, anon | thp | tail | ow,
             anon | huge | tail | ow, slab | anon, slab | anon | ksm]
    assert dc.anon_states(words).tolist() == [
        dc.NOT_ANON, dc.NOT_EXCLUSIVE, dc.EXCLUSIVE, dc.NOT_EXCLUSIVE, dc.EXCLUSIVE, dc.UNKNOWN,
        dc.EXCLUSIVE, dc.SLAB_ANON, dc.SLAB_ANON]
    # a tail page of a PMD-mapped THP, and an older kernel that reports each page's own bit
    assert dc.anon_states([anon | thp | tail | ow], whole=True).tolist() == [dc.EXCLUSIVE]
    assert dc.anon_states([anon | thp | tail], head_mirrored=False).tolist() == [
        dc.NOT_EXCLUSIVE]
    assert dc.exclusive_of(anon | ow) is True
    assert dc.exclusive_of(anon | thp | tail | ow) is None
    assert dc.exclusive_of(anon | thp | tail | ow, whole=True) is True
    assert dc.exclusive_of(slab | anon | ow) is False
    info = dc.page_info([anon | ow, slab | anon, anon | thp | tail])
    assert info.anon.tolist() == [True, False, True]
    assert info.exclusive.tolist() == [True, False, False]
    assert info.unknown.tolist() == [False, False, True]
    assert dc.head_mirrored_for("6.18.44-fc") and not dc.head_mirrored_for("6.6.1")


def test_summarize_is_the_page_types_summary() -> None:
    w = np.fromfile(SLICE, dtype="<u8")
    for name, raw in (("summary", False), ("raw", True)):
        rows = dc.summarize(w, raw=raw)
        assert [(r.flags, r.pages) for r in rows] == golden_rows(name)
    rows = dc.summarize(w, raw=True, filters=[nm.parse_bits_spec("anon")])
    assert [(r.flags, r.pages) for r in rows] == golden_rows("bits_any_raw")


def test_row_order_replays_page_types_hash_table() -> None:
    c = dc.FlagCounts()
    # three words with the same low 13 bits, then one whose home slot the third took
    c.add([0x1_0005, 0x2_0005, 0x3_0005, 0x0007, 0x0006, 0],
          [1, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 5])
    assert [v for v, _ in c.rows()] == [0, 0x1_0005, 0x2_0005, 0x3_0005, 0x0007, 0x0006]
    c = dc.FlagCounts()
    c.add([0x0007, 0x0006, 0x1_0005, 0x2_0005, 0x3_0005], [1] * 5, [0, 1, 2, 3, 4])
    assert [v for v, _ in c.rows()] == [0x1_0005, 0x0006, 0x0007, 0x2_0005, 0x3_0005]
    c = dc.FlagCounts()
    c.add([0x1_1FFF, 0x2_1FFF], [1, 1], [0, 1])  # wraps around to slot 1
    assert [v for v, _ in c.rows()] == [0x2_1FFF, 0x1_1FFF]


def test_format_rows_matches_printf() -> None:
    rng = np.random.default_rng(1)
    vals = np.concatenate((np.arange(0, 300, dtype=np.uint64),
                           rng.integers(0, 1 << 40, 200).astype(np.uint64)))
    table = np.frombuffer(b"ab\ncd\n", dtype=np.uint8).reshape(2, 3)
    codes = (np.arange(len(vals)) % 2).astype(np.intp)
    got = b"".join(bytes(p) if isinstance(p, bytes) else p.tobytes() for p in format_rows(
        [Num(vals, True), Num(vals, False, b"@"), Text(table, codes)]))
    want = b"".join(b"%x\t@%d\t%s" % (v, v, b"ab\n" if i % 2 == 0 else b"cd\n")
                    for i, v in enumerate(vals.tolist()))
    assert got == want


# -- chunking and threads give the same output ---------------------------------------------------


@pytest.mark.parametrize("name", ["summary", "raw", "list", "list_each_raw", "list_mapcnt",
                                  "cgroup_filter_list_raw", "addr_multi_contiguous",
                                  "bits_not"])
@pytest.mark.parametrize(("chunk", "jobs"), [(7, 1), (5, 3), (4096, 2)])
def test_chunk_boundaries_and_threads_do_not_change_output(
        name: str, chunk: int, jobs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    case = next(c for c in json.loads((FIX / "cases.json").read_text()) if c["name"] == name)
    monkeypatch.setattr(kpage, "CHUNK", chunk)
    rc, out, _ = run([*case["args"], *DUMPS, "--jobs", str(jobs)])
    assert rc == 0
    assert out == (GOLDEN / f"{name}.txt").read_text()


def test_gather_reads_scattered_pfns() -> None:
    w = np.fromfile(SLICE, dtype="<u8")
    pfns = np.array([5, 3, 5, len(w) - 1, len(w), len(w) + 100, 0, 2000], dtype=np.uint64)
    with kpage.WordFile(SLICE) as f:
        vals, found = f.gather(pfns)
    assert found.tolist() == [True, True, True, True, False, False, True, True]
    assert vals[found].tolist() == w[pfns[found].astype(np.int64)].tolist()


# -- JSON and exclusivity -------------------------------------------------------------------------


def test_json_summary_equals_the_text_one() -> None:
    rc, out, _ = run(["-r", "--json", *DUMPS])
    assert rc == 0
    doc = json.loads(out)
    assert [(int(r["flags"], 16), r["pages"]) for r in doc["summary"]] == golden_rows("raw")
    assert doc["total"]["pages"] == sum(p for _, p in golden_rows("raw"))
    assert doc["live"] is False
    first = doc["summary"][0]
    assert set(first) >= {"flags", "value", "pages", "mb", "symbolic", "names"}


def test_json_list_rows() -> None:
    _, out, _ = run(["-l", "-M", "--json", "-a", "0x100+0x40", *DUMPS])
    doc = json.loads(out)
    text = run(["-l", "-M", "-a", "0x100+0x40", *DUMPS])[1]
    lines = [ln.split("\t") for ln in text.split("\n\n\n")[0].splitlines()[1:]]
    assert [(r["mapcnt"], r["offset"], r["len"]) for r in doc["list"]] == [
        (int(a), int(b, 16), int(c, 16)) for a, b, c, _ in lines]


def _vmas(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(v["start"], 16): v for v in doc["vmas"]}


def test_per_vma_exclusivity_of_the_fixture_process() -> None:
    rc, out, err = run([*PROC, *DUMPS, "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    v = _vmas(doc)
    # A: small private pages, written: exclusive
    assert (v[0x200000]["anon"], v[0x200000]["exclusive"]) == (16, 16)
    # B: a PMD-mapped THP; from a saved pagemap the mapping level is unknown, so only the
    # head page's bit is the page's own
    assert (v[0x400000]["exclusive"], v[0x400000]["unknown"]) == (1, 511)
    # D: pages shared with a child (half of them COW'ed by the child): not exclusive, and
    # the pagemap's "exclusively mapped" bit is set for the half the child replaced
    assert (v[0xA00000]["not_exclusive"], v[0xA00000]["mmap_exclusive"]) == (16, 8)
    # E: zero pages are not anonymous pages
    assert (v[0xE00000]["zero"], v[0xE00000]["anon"]) == (8, 0)
    # F: KSM pages are never exclusive
    assert (v[0x1000000]["ksm"], v[0x1000000]["not_exclusive"]) == (8, 8)
    # G: shared anonymous memory is shmem (pagemap "file")
    assert (v[0x1200000]["file"], v[0x1200000]["anon"]) == (4, 0)
    # H: a private file mapping with one COW'ed page
    assert (v[0x1400000]["file"], v[0x1400000]["exclusive"]) == (7, 1)
    # J: swapped out
    assert (v[0x1800000]["swapped"], v[0x1800000]["anon"]) == (8, 0)
    # K: a 64 KiB mTHP (PTE-mapped): head known, 15 tails unknown
    assert (v[0x1A00000]["exclusive"], v[0x1A00000]["unknown"]) == (1, 15)
    # L: hugetlb is mapped as a whole: every page known
    assert (v[0x1C00000]["hugetlb"], v[0x1C00000]["exclusive"]) == (512, 512)
    assert doc["anon"]["unknown"] > 0 and doc["anon"]["notes"]


def test_exclusive_text_section() -> None:
    rc, out, _ = run([*PROC, *DUMPS, "--exclusive"])
    assert rc == 0
    base = (GOLDEN / "pid_summary.txt").read_text()
    assert out.startswith(base)
    extra = out[len(base):]
    assert "anonymous pages by PG_anon_exclusive" in extra
    assert re.search(r"^00200000-00210000 rw-p +16 +0 +16 +16 ", extra, re.M)
    assert "note: unknown:" in extra


def test_slab_pages_with_the_anon_bit_are_left_out() -> None:
    _, out, _ = run(["--json", "-r", "-b", "slab", *DUMPS])
    doc = json.loads(out)
    slab_anon = sum(r["pages"] for r in doc["summary"] if "anonymous" in r["names"])
    assert slab_anon > 0
    assert doc["anon"]["slab_anon"] == slab_anon
    assert doc["anon"]["anon"] == 0
    assert any("slab" in n for n in doc["anon"]["notes"])
    _, out, _ = run(["--exclusive", "-r", "-b", "slab", *DUMPS])
    assert f"note: {slab_anon} slab pages have the anonymous bit set" in out


def test_describe_json() -> None:
    _, out, _ = run(["-d", "anon,thp", "--json"])
    assert json.loads(out)["names"] == ["anonymous", "thp"]


# -- errors -------------------------------------------------------------------------------------


def _one_line_error(rc: int, out: str, err: str, *needles: str) -> None:
    assert rc == 2, (rc, err)
    assert err.count("\n") == 1 and err.startswith("anonex page-types: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


@pytest.mark.parametrize(("args", "needles"), [
    (["-b", "anon,nosuch"], ["unknown flag name 'nosuch'", "expected"]),
    (["-d", "nosuch"], ["unknown flag name 'nosuch'"]),
    (["-b", "12abc"], ["'12abc'"]),
    (["-a", "12x"], ["invalid address spec '12x'", "expected N"]),
    (["-a", "20,10"], ["ends before it starts"]),
    (["-a", ","], ["invalid address spec"]),
    (["-z"], ["unknown option -z"]),
    (["-b"], ["requires an argument"]),
    (["--lis"], ["ambiguous"]),
    (["--raw=1"], ["doesn't allow an argument"]),
    (["stray"], ["unexpected argument 'stray'"]),
    (["-X"], ["not supported"]),
    (["-x"], ["not supported"]),
    (["--maps", "x"], ["give -p"]),
    (["-F", "/nonexistent/kpageflags"], ["cannot open kpageflags file /nonexistent"]),
    (["-p", "999999999"], ["no process 999999999"]),
    (["--jobs", "0"], ["expected 1 to 256"]),
    (["-c", "/nonexistent"], ["stat failed"]),
])
def test_usage_errors_are_one_clear_line(args: list[str], needles: list[str]) -> None:
    _one_line_error(*run(args), *needles)


def test_truncated_dump(tmp_path: Path) -> None:
    data = (FIX / "slice.kpageflags").read_bytes()
    bad = tmp_path / "kpageflags"
    bad.write_bytes(data[:-3])
    _one_line_error(*run(["-F", str(bad)]), "truncated kpageflags file",
                    f"{len(data) - 3} bytes is not a multiple of 8", "expected")


def test_kpagecount_shorter_than_kpageflags(tmp_path: Path) -> None:
    short = tmp_path / "kpagecount"
    short.write_bytes((FIX / "slice.kpagecount").read_bytes()[:8 * 100])
    _one_line_error(*run(["-l", "-M", "-F", SLICE, "--kpagecount", str(short)]),
                    "kpagecount file ends at PFN 0x64", "expected at least")


def test_truncated_pagemap(tmp_path: Path) -> None:
    bad = tmp_path / "pagemap"
    bad.write_bytes(b"\0" * 13)
    _one_line_error(*run(["-p", "1", "--maps", str(FIX / "proc.maps"), "--pagemap", str(bad),
                          "-F", SLICE]), "truncated pagemap file")


def test_no_proc_kpageflags_and_no_root_messages() -> None:
    e = kpage.open_error("/proc/kpageflags", "kpageflags file",
                         FileNotFoundError(2, "No such file or directory"))
    assert "does not exist" in e.message and "CONFIG_PROC_PAGE_MONITOR" in e.message
    assert "-F FILE" in e.message
    e = kpage.open_error("/proc/kpageflags", "kpageflags file",
                         PermissionError(13, "Permission denied"))
    assert "permission denied" in e.message and "root" in e.message


def test_no_root_for_real(tmp_path: Path) -> None:
    """As an unprivileged user, the live walk fails with the no-root message."""
    import os

    if os.geteuid() != 0:
        rc, _, err = run([])
        _one_line_error(rc, "", err, "permission denied", "root")
        return
    code = ("import os, sys; from anonex.pagetypes.cli import main; "
            "os.setgid(65534); os.setuid(65534); sys.exit(main([]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=False, cwd=tmp_path)
    if "ModuleNotFoundError" in p.stderr or "PermissionError" in p.stderr:
        pytest.skip("the package is not readable by an unprivileged user here")
    _one_line_error(p.returncode, p.stdout, p.stderr, "permission denied", "root")


def test_unnamed_bit_fails_like_page_types(tmp_path: Path) -> None:
    dump = tmp_path / "kpageflags"
    np.array([1 << 12, 1 << 42], dtype="<u8").tofile(dump)
    rc, out, err = run(["-r", "-F", str(dump)])
    assert rc == 1 and "bit 42" in err and "Traceback" not in err
    rc, out, _ = run(["-r", "-F", str(dump), "--json"])
    assert rc == 0
    # page-types' table order: bit 42 alone has home slot 0, which is kept for 0, so slot 1
    assert [r["unnamed_bits"] for r in json.loads(out)["summary"]] == [[42], []]


def test_parse_maps_skips_bad_lines(capsys: pytest.CaptureFixture[str]) -> None:
    vm = proc.parse_maps(b"00400000-00600000 rw-p 00000000 00:00 0 \nnonsense\n"
                         b"7f00-7f01 r-xp 00001000 fe:00 1234   /usr/lib/x.so\n")
    assert [(v.start, v.end, v.perms, v.name) for v in vm] == [
        (0x400000, 0x600000, "rw-p", ""), (0x7F00, 0x7F01, "r-xp", "/usr/lib/x.so")]
    assert "unexpected line: nonsense" in capsys.readouterr().err


def test_errors_are_page_types_errors() -> None:
    with pytest.raises(PageTypesError):
        nm.parse_bits_spec("nosuch")
    assert kpf.info(47) is not None and kpf.info(47).tool_name == "anon_exclusive"  # type: ignore[union-attr]


def test_python_m_entry_point() -> None:
    p = subprocess.run([sys.executable, "-m", "anonex.pagetypes", "-d", "anon"],
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0
    assert p.stdout == (GOLDEN / "describe_name.txt").read_text()


def test_mark_idle_sets_one_bit_per_page(tmp_path: Path) -> None:
    import os

    from anonex.pagetypes.walk import mark_idle

    bitmap = tmp_path / "bitmap"
    bitmap.write_bytes(b"\0" * 32)
    fd = os.open(bitmap, os.O_RDWR)
    try:
        mark_idle(fd, np.array([130, 0, 1, 64, 1], dtype=np.uint64))
    finally:
        os.close(fd)
    words = np.fromfile(bitmap, dtype=np.uint64).tolist()
    assert words == [0b11, 1, 1 << 2, 0]
