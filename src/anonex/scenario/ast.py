"""Scenario syntax tree.

A :class:`Scenario` is a list of statements in file order: :class:`Step` (what a process or
the system does) and :class:`Expect` (what must hold at that point). Every node carries its
source position so that errors and verdicts can point at the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from anonex.versions import KernelVersion


@dataclass(frozen=True, slots=True)
class Pos:
    """A source position (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Loc:
    """``R``, ``R[i]`` or ``R[i..j]``: a region and an optional inclusive page range."""

    region: str
    first: int | None = None
    last: int | None = None

    def pages(self, npages: int) -> range:
        """The page indexes this location names in a region of *npages* pages."""
        if self.first is None:
            return range(npages)
        last = self.first if self.last is None else self.last
        return range(self.first, last + 1)

    def __str__(self) -> str:
        if self.first is None:
            return self.region
        if self.last is None:
            return f"{self.region}[{self.first}]"
        return f"{self.region}[{self.first}..{self.last}]"


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A set of kernel versions: ``5.8``, ``<=5.7``, ``<6.15``, ``>=5.19``, ``5.9..5.18``."""

    op: Literal["==", "<=", "<", ">=", ">", ".."]
    lo: KernelVersion
    hi: KernelVersion | None = None

    def contains(self, v: KernelVersion) -> bool:
        """Whether kernel *v* is in the range (``5.8`` matches every 5.8.y)."""
        if self.op == "==":
            return v.major_minor == self.lo.major_minor if self.lo.patch is None else v == self.lo
        if self.op == "<=":
            return v.major_minor <= self.lo.major_minor if self.lo.patch is None else v <= self.lo
        if self.op == "<":
            return v < self.lo
        if self.op == ">=":
            return v >= self.lo
        if self.op == ">":
            return v.major_minor > self.lo.major_minor if self.lo.patch is None else v > self.lo
        assert self.hi is not None
        upper = v.major_minor <= self.hi.major_minor if self.hi.patch is None else v <= self.hi
        return v >= self.lo and upper

    def __str__(self) -> str:
        if self.op == "..":
            return f"{self.lo}..{self.hi}"
        return str(self.lo) if self.op == "==" else f"{self.op}{self.lo}"


OpName = Literal[
    "mmap", "write", "read", "read_handle", "touch", "fork", "exit", "munmap", "mprotect",
    "mremap", "madvise", "vmsplice", "pin", "unpin", "dma_write", "dma_read", "dio_read",
    "dio_write", "peek", "poke", "force_write", "split", "migrate", "ksm_scan", "inject",
]


@dataclass(frozen=True, slots=True)
class Step:
    """One operation.

    Only the fields an operation uses are set: ``loc`` for the pages it touches, ``target``
    for another process (``fork P1``, ``peek P1 …``), ``name`` for a pipe or pin handle,
    ``var`` for the variable a read stores into, ``tag`` for written data, ``kind`` and
    ``npages`` for ``mmap``, ``word`` for the ``mprotect`` protection or ``madvise`` advice,
    ``pinopts`` for ``pin``.
    """

    op: OpName
    pos: Pos
    proc: str | None = None
    loc: Loc | None = None
    target: str | None = None
    name: str | None = None
    var: str | None = None
    tag: str | None = None
    kind: str | None = None
    npages: int | None = None
    word: str | None = None
    pinopts: frozenset[str] = field(default_factory=frozenset)
    label: str | None = None

    def text(self) -> str:
        """The step written back in the scenario language."""
        return _step_text(self)


@dataclass(frozen=True, slots=True)
class PageRef:
    """``Pk R[i]``: one page of one process."""

    proc: str
    loc: Loc


@dataclass(frozen=True, slots=True)
class VarEq:
    var: str
    tag: str


@dataclass(frozen=True, slots=True)
class PageState:
    page: PageRef
    state: str


@dataclass(frozen=True, slots=True)
class Same:
    a: PageRef
    b: PageRef


@dataclass(frozen=True, slots=True)
class Mapcount:
    page: PageRef
    value: int


@dataclass(frozen=True, slots=True)
class Faults:
    label: str
    value: int


@dataclass(frozen=True, slots=True)
class Outcome:
    label: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Kpf:
    """``Pk R[i] kpf NAME``: the page's kpageflags word has bit KPF_NAME."""

    page: PageRef
    flag: str


@dataclass(frozen=True, slots=True)
class PageTypes:
    """``Pk R[i] page-types "names"``: page-types -r lists these long flag names (comma
    separated) for the page."""

    page: PageRef
    names: str


@dataclass(frozen=True, slots=True)
class MemoryFailure:
    """``Pk R[i] memory-failure "class"``: how memory-failure would classify the page."""

    page: PageRef
    what: str


@dataclass(frozen=True, slots=True)
class Bug:
    """``bug "text"``: the step just before hit a kernel BUG_ON/VM_BUG_ON (or broke an
    invariant): *text* names the property (``no-leak``; ``kernel-bug``: any BUG_ON) or is
    part of the report; expected, so it does not fail the scenario (a model error never
    is: see :meth:`anonex.findings.Finding.matches`)."""

    text: str


@dataclass(frozen=True, slots=True)
class Not:
    cond: Cond


Cond = VarEq | PageState | Same | Mapcount | Faults | Outcome | Kpf | PageTypes | \
    MemoryFailure | Bug | Not


@dataclass(frozen=True, slots=True)
class Expect:
    """``expect COND [on RANGE]``."""

    cond: Cond
    pos: Pos
    on: VersionRange | None = None

    def text(self) -> str:
        s = "expect " + cond_text(self.cond)
        return s + (f" on {self.on}" if self.on else "")


@dataclass(frozen=True, slots=True)
class XFail:
    """``xfail RANGE "why"``."""

    on: VersionRange
    why: str
    pos: Pos


Stmt = Step | Expect


@dataclass(slots=True)
class Scenario:
    """A parsed ``.cow`` file."""

    path: str
    title: str = ""
    about: str = ""
    stmts: list[Stmt] = field(default_factory=list)
    xfails: list[XFail] = field(default_factory=list)
    layout: str | None = None  # ``layout NAME``: the page-flag layout the model must use
    # ``rule NAME``: the version-table rows (kernel/versions.py) this scenario tells apart,
    # each with where it was named
    rules: list[tuple[str, Pos]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The file's stem, used as the scenario's short name."""
        base = self.path.rsplit("/", 1)[-1]
        return base[:-4] if base.endswith(".cow") else base

    @property
    def steps(self) -> list[Step]:
        return [s for s in self.stmts if isinstance(s, Step)]

    def xfail_for(self, v: KernelVersion) -> XFail | None:
        """The first ``xfail`` whose range holds *v*."""
        for x in self.xfails:
            if x.on.contains(v):
                return x
        return None


def proc_index(name: str) -> int:
    """A process's number: ``P3`` -> 3 (processes are ordered by it)."""
    return int(name[1:])


def join_tags(tags: Sequence[str]) -> str:
    """The value of a read over several pages (DESIGN §4): the tag when every page holds
    the same one, else the tags in page order joined by ","."""
    if tags and all(t == tags[0] for t in tags):
        return tags[0]
    return ",".join(tags)


def _q(s: str) -> str:
    return '"' + s + '"'


def cond_text(c: Cond) -> str:
    """A condition written back in the scenario language."""
    if isinstance(c, Not):
        return "not " + cond_text(c.cond)
    if isinstance(c, VarEq):
        return f"{c.var} == {_q(c.tag)}"
    if isinstance(c, PageState):
        return f"{c.page.proc} {c.page.loc} {c.state}"
    if isinstance(c, Same):
        return f"{c.a.proc} {c.a.loc} same {c.b.proc} {c.b.loc}"
    if isinstance(c, Mapcount):
        return f"mapcount {c.page.proc} {c.page.loc} == {c.value}"
    if isinstance(c, Faults):
        return f"@{c.label} faults == {c.value}"
    if isinstance(c, Kpf):
        return f"{c.page.proc} {c.page.loc} kpf {c.flag}"
    if isinstance(c, PageTypes):
        return f"{c.page.proc} {c.page.loc} page-types {_q(c.names)}"
    if isinstance(c, MemoryFailure):
        return f"{c.page.proc} {c.page.loc} memory-failure {_q(c.what)}"
    if isinstance(c, Bug):
        return f"bug {_q(c.text)}"
    return f"@{c.label} {c.outcome}"


def _step_text(s: Step) -> str:
    op = s.op
    body: str
    if op == "mmap":
        body = f"mmap {s.loc} {s.kind}" + (f" {s.npages}" if s.kind == "anon" else "")
    elif op in ("write", "dio_read"):
        body = f"{op.replace('_', '-')} {s.loc} {_q(s.tag or '')}"
    elif op in ("read", "dio_write"):
        body = f"{op.replace('_', '-')} {s.loc} -> {s.var}"
    elif op == "read_handle":
        body = f"read {s.name} -> {s.var}"
    elif op in ("touch", "munmap", "split", "migrate"):
        body = f"{op} {s.loc}"
    elif op == "fork":
        body = f"fork {s.target}"
    elif op == "exit":
        body = "exit"
    elif op in ("mprotect", "madvise"):
        body = f"{op} {s.loc} {s.word}"
    elif op == "mremap":
        body = f"mremap {s.loc} -> {s.name}"
    elif op == "vmsplice":
        body = f"vmsplice {s.loc} -> {s.name}"
    elif op == "pin":
        opts = "".join(" " + o for o in sorted(s.pinopts))
        body = f"pin {s.loc} -> {s.name}{opts}"
    elif op == "unpin":
        body = f"unpin {s.name}"
    elif op == "dma_write":
        body = f"dma-write {s.name} {_q(s.tag or '')}"
    elif op == "dma_read":
        body = f"dma-read {s.name} -> {s.var}"
    elif op == "peek":
        body = f"peek {s.target} {s.loc} -> {s.var}"
    elif op in ("poke", "force_write"):
        body = f"{op.replace('_', '-')} {s.target} {s.loc} {_q(s.tag or '')}"
    elif op == "inject":
        body = f"inject {s.word}"
    else:
        body = "ksm-scan"
    text = f"{s.proc}: {body}" if s.proc else body
    return text + (f" @{s.label}" if s.label else "")
