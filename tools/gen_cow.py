"""Generate scenarios/cow/: the kernel's COW selftest (tools/testing/selftests/mm/cow.c) as
anonex scenarios, one file per test case × memory variant, named as the selftest names them.

The expected outcome of each cell comes from reference/cow-history.md §3 (cow-matrix.csv):
every version range where the table says the test fails becomes an ``xfail`` line, so the
scenario's verdict at each kernel version says whether the model agrees with the table.
Run: ``python tools/gen_cow.py [path/to/cow-matrix.csv]`` (the default looks beside the
repository, in ../shared/reference/).
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "anonex" / "library" / "cow"
CSV = ROOT.parent / "shared" / "reference" / "cow-matrix.csv"

# Table column -> the versions it stands for (cow-history.md §3: G0 … G5).
COLUMNS = [
    ("v5.7", "<=5.7"), ("v5.8", "5.8"), ("v5.9", "5.9..5.11"), ("v5.12", "5.12..5.17"),
    ("v5.18", "5.18"), ("v5.19", "5.19..6.1"), ("v6.2", "6.2..6.17"), ("v6.18", ">=6.18"),
]
# Where adjacent failing columns merge into one range.
_BOUNDS = {"v5.7": (None, "5.7"), "v5.8": ("5.8", "5.8"), "v5.9": ("5.9", "5.11"),
           "v5.12": ("5.12", "5.17"), "v5.18": ("5.18", "5.18"), "v5.19": ("5.19", "6.1"),
           "v6.2": ("6.2", "6.17"), "v6.18": ("6.18", None)}


@dataclass(frozen=True)
class Variant:
    """How the selftest prepares ``mem``: setup lines, the range tests act on, and the first
    pages a vmsplice can reference (a pipe holds 16 buffers)."""

    name: str
    setup: tuple[str, ...]
    rng: str
    pipe_rng: str
    pages: int


THP = ("P0: mmap A thp", 'P0: write A "init"')
VARIANTS = [
    Variant("base page", ("P0: mmap A anon 1", 'P0: write A "init"'), "A", "A", 1),
    Variant("swapped-out base page", ("P0: mmap A anon 1", 'P0: write A "init"',
                                      "P0: madvise A pageout"), "A", "A", 1),
    Variant("THP", THP, "A", "A[0..15]", 512),
    Variant("swapped-out THP", (*THP, "P0: madvise A pageout"), "A", "A[0..15]", 512),
    Variant("PTE-mapped THP", (*THP, "P0: split A"), "A", "A[0..15]", 512),
    Variant("swapped-out, PTE-mapped THP", (*THP, "P0: split A", "P0: madvise A pageout"),
            "A", "A[0..15]", 512),
    Variant("single PTE of THP", (*THP, "P0: madvise A[1..511] dontneed"), "A[0]", "A[0]", 1),
    Variant("single PTE of swapped-out THP", (*THP, "P0: madvise A[1..511] dontneed",
                                              "P0: madvise A[0] pageout"), "A[0]", "A[0]", 1),
    Variant("partially mremap()'ed THP", (*THP, "P0: mremap A[256..511] -> B"), "A[0..255]",
            "A[0..15]", 256),
    Variant("partially shared THP", (*THP, "P0: madvise A[1..511] dontfork", "P0: fork P9",
                                     "P9: exit", "P0: madvise A[1..511] dofork"),
            "A", "A[0..15]", 512),
    Variant("hugetlb", ("P0: mmap A hugetlb", 'P0: write A "init"'), "A", "A[0..15]", 512),
]


def _basic(v: Variant, mprotect: bool) -> list[str]:
    mp = [f"P0: mprotect {v.rng} ro", f"P0: mprotect {v.rng} rw"] if mprotect else []
    return ["P0: fork P1", *mp, f'P0: write {v.rng} "ff"', f"P1: read {v.rng} -> child_view",
            'expect child_view == "init"     # No leak from parent into child']


def _vmsplice_child(v: Variant, mprotect: bool) -> list[str]:
    mp = [f"P0: mprotect {v.rng} ro", f"P0: mprotect {v.rng} rw"] if mprotect else []
    return ["P0: fork P1", f"P1: vmsplice {v.pipe_rng} -> pipe", f"P1: munmap {v.rng}", *mp,
            f'P0: write {v.rng} "ff"', "P1: read pipe -> seen",
            'expect seen == "init"           # No leak from parent into child']


def _vmsplice_before_fork(v: Variant) -> list[str]:
    return [f"P0: vmsplice {v.pipe_rng} -> pipe", "P0: fork P1", f"P0: munmap {v.rng}",
            f'P1: write {v.rng} "ff"', "P1: exit", "P0: read pipe -> seen",
            'expect seen == "init"           # No leak from child into parent']


def _vmsplice_parent(v: Variant) -> list[str]:
    return ["P0: fork P1", f"P0: vmsplice {v.pipe_rng} -> pipe", f"P0: munmap {v.rng}",
            f'P1: write {v.rng} "ff"', "P1: exit", "P0: read pipe -> seen",
            'expect seen == "init"           # No leak from child into parent']


def _iouring_ro(v: Variant) -> list[str]:
    return [f"P0: pin {v.rng} -> buf", f"P0: mprotect {v.rng} ro",
            f"P0: mprotect {v.rng} rw", f'P0: write {v.rng} "ff"',
            "P0: dma-read buf -> through_pin",
            'expect through_pin == "ff"      # Longterm R/W pin is reliable']


def _iouring_fork(v: Variant) -> list[str]:
    return [f"P0: pin {v.rng} -> buf", "P0: fork P1", f'P0: write {v.rng} "ff"',
            "P0: dma-read buf -> through_pin",
            'expect through_pin == "ff"      # Longterm R/W pin is reliable']


def _ro_pin(how: str, fast: bool):  # type: ignore[no-untyped-def]
    def make(v: Variant) -> list[str]:
        pre = {"shared": ["P0: fork P1"], "previously-shared": ["P0: fork P1", "P1: exit"],
               "exclusive": [f"P0: mprotect {v.rng} ro", f"P0: mprotect {v.rng} rw"]}[how]
        opts = "ro fast longterm" if fast else "ro longterm"
        return [*pre, f"P0: pin {v.rng} -> h {opts}", f'P0: write {v.rng} "ff"',
                "P0: dma-read h -> through_pin",
                'expect through_pin == "ff"      # Longterm R/O pin is reliable']
    return make


def _ro_pin_odirect(how: str):  # type: ignore[no-untyped-def]
    """The R/O pin tests as the live kernel can run them without gup_test: O_DIRECT
    write() from the page takes a short-term R/O FOLL_PIN (6.3+), which must leave an
    exclusive page behind; the later write must not reach the other process."""
    def make(v: Variant) -> list[str]:
        first = v.rng if v.pages == 1 and "[" in v.rng else f"{v.rng.split('[')[0]}[0]"
        pre = {"shared": ["P0: fork P1"], "previously-shared": ["P0: fork P1", "P1: exit"],
               "exclusive": [f"P0: mprotect {v.rng} ro", f"P0: mprotect {v.rng} rw"]}[how]
        since = "5.19" if how == "exclusive" and "partially shared" not in v.name else "6.3"
        out = [*pre, f"P0: dio-write {first} -> pinned",
               'expect pinned == "init"',
               f"expect P0 {first} exclusive on >={since}   # the R/O pin unshared the page",
               f'P0: write {v.rng} "ff"']
        if how == "shared":
            out += [f"P1: read {first} -> child_view",
                    'expect child_view == "init"     # No leak from parent into child']
        return out
    return make


ODIRECT_TESTS = [
    ("R/O GUP pin on R/O-mapped shared page (O_DIRECT)", _ro_pin_odirect("shared")),
    ("R/O GUP pin on R/O-mapped previously-shared page (O_DIRECT)",
     _ro_pin_odirect("previously-shared")),
    ("R/O GUP pin on R/O-mapped exclusive page (O_DIRECT)", _ro_pin_odirect("exclusive")),
]

TESTS = [
    ("Basic COW after fork()", lambda v: _basic(v, False)),
    ("Basic COW after fork() with mprotect() optimization", lambda v: _basic(v, True)),
    ("vmsplice() + unmap in child", lambda v: _vmsplice_child(v, False)),
    ("vmsplice() + unmap in child with mprotect() optimization",
     lambda v: _vmsplice_child(v, True)),
    ("vmsplice() before fork(), unmap in parent after fork()", _vmsplice_before_fork),
    ("vmsplice() + unmap in parent after fork()", _vmsplice_parent),
    ("R/O-mapping a page registered as iouring fixed buffer", _iouring_ro),
    ("fork() with an iouring fixed buffer", _iouring_fork),
    ("R/O GUP pin on R/O-mapped shared page", _ro_pin("shared", False)),
    ("R/O GUP-fast pin on R/O-mapped shared page", _ro_pin("shared", True)),
    ("R/O GUP pin on R/O-mapped previously-shared page", _ro_pin("previously-shared", False)),
    ("R/O GUP-fast pin on R/O-mapped previously-shared page",
     _ro_pin("previously-shared", True)),
    ("R/O GUP pin on R/O-mapped exclusive page", _ro_pin("exclusive", False)),
    ("R/O GUP-fast pin on R/O-mapped exclusive page", _ro_pin("exclusive", True)),
]

THP_TESTS = [
    ("Basic COW after fork() when collapsing before fork()",
     ["P0: madvise A collapse", "P0: fork P1", 'P0: write A "ff"', "P1: read A -> child_view",
      'expect child_view == "init"     # No leak from parent into child']),
    ("Basic COW after fork() when collapsing after fork() (fully shared)",
     ["P0: fork P1", "P0: madvise A collapse", 'P0: write A "ff"', "P1: read A -> child_view",
      'expect child_view == "init"     # No leak from parent into child']),
    ("Basic COW after fork() when collapsing after fork() (lower shared)",
     ["P0: madvise A[256..511] dontfork", "P0: fork P1", "P0: madvise A[256..511] dofork",
      "P0: madvise A collapse", 'P0: write A "ff"', "P1: read A[0..255] -> child_view",
      'expect child_view == "init"     # No leak from parent into child']),
    ("Basic COW after fork() when collapsing after fork() (upper shared)",
     ["P0: madvise A[0..255] dontfork", "P0: fork P1", "P0: madvise A[0..255] dofork",
      "P0: madvise A collapse", 'P0: write A "ff"', "P1: read A[256..511] -> child_view",
      'expect child_view == "init"     # No leak from parent into child']),
]

NON_ANON = [
    ("Basic COW", ["P0: mmap A anon 1", "P0: mmap S anon 1", "P0: touch A", "P0: touch S",
                   'P0: write A "ff"', "P0: read S[0] -> other",
                   'expect other == ""               # Other mapping not modified']),
    ("R/O longterm GUP pin", ["P0: mmap A anon 1", "P0: touch A",
                              "P0: pin A -> h ro longterm", 'P0: write A "ff"',
                              "P0: dma-read h -> through_pin",
                              'expect through_pin == "ff"      # Longterm R/O pin is reliable']),
    ("R/O longterm GUP-fast pin", ["P0: mmap A anon 1", "P0: touch A",
                                   "P0: pin A -> h ro fast longterm", 'P0: write A "ff"',
                                   "P0: dma-read h -> through_pin",
                                   'expect through_pin == "ff"      # Longterm R/O pin is '
                                   'reliable']),
]
# The non-anon tests' expected results (cow-history.md §3.1, §3.9), zeropage variant.
NON_ANON_TABLE = {"Basic COW": "PPPPPPPP", "R/O longterm GUP pin": "FPFFFFPP",
                  "R/O longterm GUP-fast pin": "FPFFFFPP"}


def slug(text: str) -> str:
    s = text.lower().replace("r/o", "ro").replace("r/w", "rw")
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return s


def xfail_lines(cells: str, why: str) -> list[str]:
    """``xfail`` lines for the columns marked F, adjacent ones merged."""
    cols = [c for c, _ in COLUMNS]
    out: list[str] = []
    i = 0
    while i < len(cols):
        if cells[i] != "F":
            i += 1
            continue
        j = i
        while j + 1 < len(cols) and cells[j + 1] == "F":
            j += 1
        lo, hi = _BOUNDS[cols[i]][0], _BOUNDS[cols[j]][1]
        if lo is None and hi is None:
            rng = ">=1.0"
        elif lo is None:
            rng = f"<={hi}"
        elif hi is None:
            rng = f">={lo}"
        else:
            rng = lo if lo == hi else f"{lo}..{hi}"
        out.append(f'xfail {rng} "{why}"')
        i = j + 1
    return out


def write(name: str, about: str, lines: list[str], cells: str | None, why: str) -> Path:
    path = OUT / f"{slug(name)}.cow"
    text = [f'title "{name}"', f'about "{about}"', ""]
    text += lines
    if cells == "collapse":
        text += ["", f'xfail <6.1 "{why}"']
    elif cells:
        text.append("")
        text += xfail_lines(cells, why)
    path.write_text("\n".join(text) + "\n")
    return path


def main(argv: list[str]) -> int:
    table_path = Path(argv[1]) if len(argv) > 1 else CSV
    table: dict[tuple[str, str], str] = {}
    with table_path.open() as fh:
        for row in csv.DictReader(fh):
            table[(row["test"], row["variant"])] = "".join(row[c] for c, _ in COLUMNS)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.cow"):
        old.unlink()
    n = 0
    for tname, make in TESTS:
        for v in VARIANTS:
            cells = table.get((tname, v.name))
            if cells is None:
                continue  # the selftest does not run it (hugetlb has no such row)
            full = f"{tname} ... with {v.name}"
            write(full, f"cow.c anon test on {v.name}; expected results from "
                        "cow-history.md §3", [*v.setup, *make(v)], cells,
                  "cow-history.md §3 says this test fails here")
            n += 1
    for tname, make in ODIRECT_TESTS:
        for v in VARIANTS:
            full = f"{tname} ... with {v.name}"
            write(full, "cow.c's R/O pin test driven by O_DIRECT (a short-term R/O FOLL_PIN), "
                        "runnable where gup_test is missing", [*v.setup, *make(v)], None, "")
            n += 1
    for tname, lines in THP_TESTS:
        full = f"{tname} ... with THP"
        body = ["P0: mmap A thp", 'P0: write A "init"', "P0: split A", *lines]
        if "(fully shared)" in tname:
            # no writable PTE left in the range: SCAN_PAGE_RO until collapse_readonly_ptes
            body += ["", 'xfail 6.1..6.17 "MADV_COLLAPSE refuses a range without a writable '
                         'PTE before 6.18 (SCAN_PAGE_RO: EINVAL), measured on 6.1.187 and '
                         '6.12.117"']
        write(full, "cow.c anon THP collapse test (6.3+); MADV_COLLAPSE exists since 6.1",
              body, "collapse", "no MADV_COLLAPSE before 6.1")
        n += 1
    for tname, lines in NON_ANON:
        full = f"{tname} ... with shared zeropage"
        write(full, "cow.c non-anon test on the shared zeropage", lines,
              NON_ANON_TABLE[tname], "cow-history.md §3.9: R/O pins of non-anon pages in "
                                     "COW mappings are not reliable before 6.2")
        n += 1
    print(f"wrote {n} scenarios to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
