"""The search space: bounds, regions, and the scenario steps the explorer may take.

A search starts from P0 with one region per chosen kind already mapped (``A``, ``B``, …:
small pages, a PMD-mapped THP, or a hugetlb page), and takes scenario steps from a small
domain: which process, which page (the first ``pages`` pages of a region, or the whole
region), which tag (from ``tags`` letters), which pipe or pin handle. An action is a flat
tuple ``(op, proc, region, index, arg)`` (``index`` -1 for the whole region, ``arg`` the
tag, child, handle, protection or advice), sortable, and turns into an ordinary
:class:`~anonex.scenario.ast.Step`, so every path is a scenario.

The operations (``--ops``) and what they generate, per live process ``P``:

========================  =========================================================
write                     ``P: write R[i] "t"``
read                      ``P: read R[i] -> v`` (a read fault; on a mapped page nothing)
fork, exit                ``P: fork Pn`` (below ``procs``), ``P: exit`` (not the last)
mmap, munmap              ``P: mmap R kind`` (where unmapped), ``P: munmap R`` / ``R[i]``
mprotect                  ``P: mprotect R ro`` / ``rw`` (and ``R[i]``)
dontneed, pageout,        ``P: madvise R ADVICE`` (and ``R[i]``)
dontfork, wipeonfork,
mergeable, populate-write
ksm-scan                  ``ksm-scan`` (when a VMA is mergeable)
vmsplice, read-pipe       ``P: vmsplice R[i] -> pipe``, ``P: read pipe -> v``
pin, pin-ro, pin-ro-short ``P: pin R[i] -> buf`` (rw longterm), ``… ro longterm``, ``… ro``
unpin, dma-write          ``P: unpin buf``, ``P: dma-write buf "t"`` (rw pins)
dio-read, dio-write       ``P: dio-read R[i] "t"``, ``P: dio-write R[i] -> v``
peek, poke, force-write   ``P: peek Q R[i] -> v`` … on another live process ``Q``
split, migrate            ``P: split R`` (THP), ``P: migrate R[i]`` (small pages)
dma-read                  nothing: every state is checked as if read (see properties)
========================  =========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from anonex.explore.canon import Layout
from anonex.kernel.pgtable import HPAGE_PMD_NR
from anonex.kernel.state import REGION_BASE_VPN, REGION_STRIDE
from anonex.scenario import ast

Action = tuple[str, str, str, int, str]
"""``(op, proc, region, index, arg)``: index -1 is the whole region; unused parts are ""."""

KINDS = ("anon", "thp", "hugetlb")
# In the order actions are tried (see order()): process and mapping changes first, then
# data, then references and pins.
OPS: tuple[str, ...] = (
    "fork", "exit", "mmap", "munmap", "mprotect", "dontneed", "pageout", "dontfork",
    "wipeonfork", "mergeable", "ksm-scan", "split", "migrate", "write", "read",
    "populate-write", "vmsplice", "read-pipe", "pin", "pin-ro", "pin-ro-short", "unpin",
    "dio-read", "dio-write", "peek", "poke", "force-write", "dma-write", "dma-read",
)
DEFAULT_OPS: tuple[str, ...] = (
    "write", "fork", "exit", "munmap", "mprotect", "pageout", "vmsplice", "read-pipe",
    "pin", "pin-ro", "unpin",
)
MADVICE = frozenset({"dontneed", "pageout", "dontfork", "wipeonfork", "mergeable",
                     "populate-write"})
# Operations on one page, and on the whole region, by kind of region.
_PAGE_OPS = frozenset({"write", "read", "vmsplice", "pin", "pin-ro", "pin-ro-short",
                       "dio-read", "dio-write", "peek", "poke", "force-write", "migrate"})
_RANGE_OPS = frozenset({"munmap", "mprotect", *MADVICE})
PIN_OPTS = {"pin": "longterm rw", "pin-ro": "longterm ro", "pin-ro-short": "ro"}

REGION_NAMES = "ABCDEFGH"
# Operations every counterexample may use without being a different mechanism (what tells
# counterexamples apart is the rest: pins, vmsplice, swap, mprotect, KSM, …).
COMMON_OPS = frozenset({"fork", "exit", "mmap", "munmap", "dontneed", "write", "read",
                        "read-pipe", "unpin", "dma-read", "dma-write"})
_RANK = {op: i for i, op in enumerate(OPS)}


def order(a: Action) -> tuple[int, int, str, int, str]:
    """The order actions are tried in: by operation (:data:`OPS`), then the youngest
    process first (after a fork the child usually acts), then region, page and argument."""
    p = a[1]
    return (_RANK[a[0]], -ast.proc_index(p) if p else 0, a[2], a[3], a[4])


@dataclass(frozen=True, slots=True)
class Region:
    """One region of the search: its name, kind, size in pages and the page indexes the
    explorer touches one by one."""

    name: str
    kind: str
    npages: int
    indexes: tuple[int, ...]
    base: int

    @property
    def huge(self) -> bool:
        return self.kind != "anon"


@dataclass(frozen=True, slots=True)
class Bounds:
    """The bound of one search.

    ``procs``: processes alive at once (P0 included); ``pages``: pages of each small-page
    region, and page indexes explored in a huge one; ``kinds``: one region per entry;
    ``ops``: the operations (module docstring); ``depth``: steps after the setup;
    ``tags``: the tag alphabet (``a``, ``b``, …); ``handles``: pipes and pins alive at once;
    ``inject``: faults armed in the model before the search (``inject NAME`` steps), to
    check that the search finds a planted bug.
    """

    procs: int = 2
    pages: int = 1
    kinds: tuple[str, ...] = ("anon",)
    ops: tuple[str, ...] = DEFAULT_OPS
    depth: int = 6
    tags: int = 2
    handles: int = 1
    inject: tuple[str, ...] = ()
    opset: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bad = [o for o in self.ops if o not in OPS]
        if bad:
            raise ValueError(f"unknown operation {bad[0]!r}; expected some of: "
                             + ", ".join(OPS))
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ValueError(f"unknown region kind {bad[0]!r}; expected anon, thp or hugetlb")
        if not 1 <= len(self.kinds) <= len(REGION_NAMES):
            raise ValueError(f"between 1 and {len(REGION_NAMES)} regions")
        if self.procs < 1 or self.pages < 1 or self.depth < 0 or self.handles < 1:
            raise ValueError("procs, pages and handles must be >= 1, depth >= 0")
        if not 1 <= self.tags <= 26:
            raise ValueError("tags must be between 1 and 26")
        object.__setattr__(self, "opset", frozenset(self.ops))

    def describe(self) -> str:
        inj = f" inject={','.join(self.inject)}" if self.inject else ""
        return (f"procs={self.procs} pages={self.pages} kinds={','.join(self.kinds)} "
                f"depth={self.depth} tags={self.tags} handles={self.handles} "
                f"ops={','.join(self.ops)}{inj}")

    @property
    def tag_alphabet(self) -> tuple[str, ...]:
        return tuple(chr(ord("a") + i) for i in range(self.tags))

    @property
    def regions(self) -> tuple[Region, ...]:
        return _regions(self.kinds, self.pages)

    @property
    def pipe_names(self) -> tuple[str, ...]:
        return tuple("pipe" if i == 0 else f"pipe{i + 1}" for i in range(self.handles))

    @property
    def pin_names(self) -> tuple[str, ...]:
        return tuple("buf" if i == 0 else f"buf{i + 1}" for i in range(self.handles))

    def layout(self, mthp_orders: frozenset[int] = frozenset()) -> Layout:
        """What the state key needs to know. Pages of a large folio past the explored
        indexes are alike (every generated step treats them alike) except at the edges of
        mTHP-sized blocks (a swap-in of an mTHP range): the key spells out the pages up
        to one past the largest such block and lets the next stand for the rest."""
        vpns: list[int] = []
        explicit = 1
        block = 1 << max(mthp_orders, default=0)
        for r in self.regions:
            if r.huge:
                explicit = max(explicit, max(r.indexes) + 2, 3)
                if r.kind == "thp":
                    explicit = max(explicit, block + 1)
        for r in self.regions:
            n = r.npages if not r.huge else min(r.npages, explicit)
            vpns.extend(range(r.base, r.base + n))
        # slot numbers count modulo an mTHP block where an mTHP swap-in can happen: THP
        # regions (VM_HUGEPAGE; the small-page regions are VM_NOHUGEPAGE, and no generated
        # step changes that)
        thp = any(r.kind == "thp" for r in self.regions)
        return Layout(tuple(sorted(vpns)), explicit, self.pipe_names + self.pin_names,
                      ksm="ksm-scan" in self.opset, slots_mod=block if thp else 1)


@lru_cache(maxsize=64)
def _regions(kinds: tuple[str, ...], pages: int) -> tuple[Region, ...]:
    out = []
    for i, kind in enumerate(kinds):
        n = pages if kind == "anon" else HPAGE_PMD_NR
        idx = tuple(range(min(pages, n)))
        # the model places regions in order of first use, REGION_STRIDE apart
        out.append(Region(REGION_NAMES[i], kind, n, idx, REGION_BASE_VPN + REGION_STRIDE * i))
    return tuple(out)


_POS = ast.Pos("explore", 0, 0)


@lru_cache(maxsize=65536)
def to_step(a: Action, var: str = "v") -> ast.Step:
    """The scenario step of action *a* (variables of reads are all *var*)."""
    op, proc, region, index, arg = a
    loc = None
    if region:
        loc = ast.Loc(region) if index < 0 else ast.Loc(region, index)
    if op == "write":
        return ast.Step("write", _POS, proc, loc, tag=arg)
    if op == "read":
        return ast.Step("read", _POS, proc, loc, var=var)
    if op == "fork":
        return ast.Step("fork", _POS, proc, target=arg)
    if op == "exit":
        return ast.Step("exit", _POS, proc)
    if op == "mmap":
        n = None if arg != "anon" else int(index)
        return ast.Step("mmap", _POS, proc, ast.Loc(region), kind=arg, npages=n)
    if op == "munmap":
        return ast.Step("munmap", _POS, proc, loc)
    if op == "mprotect":
        return ast.Step("mprotect", _POS, proc, loc, word=arg)
    if op in MADVICE:
        return ast.Step("madvise", _POS, proc, loc, word=op)
    if op == "ksm-scan":
        return ast.Step("ksm_scan", _POS)
    if op == "vmsplice":
        return ast.Step("vmsplice", _POS, proc, loc, name=arg)
    if op == "read-pipe":
        return ast.Step("read_handle", _POS, proc, name=arg, var=var)
    if op in PIN_OPTS:
        name, _, opts = arg.partition(" ")
        return ast.Step("pin", _POS, proc, loc, name=name, pinopts=frozenset(opts.split()))
    if op == "unpin":
        return ast.Step("unpin", _POS, proc, name=arg)
    if op == "dma-write":
        name, _, tag = arg.partition(" ")
        return ast.Step("dma_write", _POS, proc, name=name, tag=tag)
    if op == "dma-read":
        return ast.Step("dma_read", _POS, proc, name=arg, var=var)
    if op == "dio-read":
        return ast.Step("dio_read", _POS, proc, loc, tag=arg)
    if op == "dio-write":
        return ast.Step("dio_write", _POS, proc, loc, var=var)
    if op in ("peek", "poke", "force-write"):
        target, _, tag = arg.partition(" ")
        if op == "peek":
            return ast.Step("peek", _POS, proc, loc, target=target, var=var)
        return ast.Step(op.replace("-", "_"), _POS, proc, loc, target=target,  # type: ignore[arg-type]
                        tag=tag)
    if op == "split":
        return ast.Step("split", _POS, proc, loc)
    if op == "migrate":
        return ast.Step("migrate", _POS, proc, loc)
    raise ValueError(f"unknown action {a!r}")


def setup_steps(bounds: Bounds) -> list[ast.Step]:
    """The steps before the search: faults armed, then P0 maps every region."""
    out = [ast.Step("inject", _POS, word=name) for name in bounds.inject]
    for r in bounds.regions:
        out.append(to_step(("mmap", "P0", r.name, r.npages if r.kind == "anon" else 0,
                            r.kind)))
    return out
