"""The model backend: runs scenario steps on :class:`~anonex.kernel.state.Kernel`.

Each step becomes the system calls and kernel paths it stands for (a ``write`` is a user
store that may fault, ``vmsplice`` is GUP with FOLL_GET, ``pin`` is io_uring's
FOLL_PIN|FOLL_LONGTERM|FOLL_WRITE, ``peek`` is process_vm_readv's remote R/O FOLL_PIN …).
After every step the structural invariants and pin coherence are checked, and every value
read is compared with the oracle; a broken promise or a ``KernelBug`` becomes the step's
finding (:class:`~anonex.findings.Finding`, by property). A step the model cannot take (a
pipe read twice, a pin used after unpin) is an error of that step; any other exception
inside the model is a ``model-error`` finding: a bug of anonex, not of the kernel.
"""

from __future__ import annotations

from typing import Any, assert_never

from anonex.findings import Finding, join, model_error
from anonex.harness import invariants
from anonex.harness.oracle import Oracle
from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug, NotModelled, Segfault
from anonex.kernel.folio import Page
from anonex.kernel.fork import dup_mmap
from anonex.kernel.gup import (
    FOLL_FAST_ONLY,
    FOLL_FORCE,
    FOLL_GET,
    FOLL_LONGTERM,
    FOLL_PIN,
    FOLL_REMOTE,
    FOLL_WRITE,
    get_user_pages,
    put_page,
    unpin_user_page,
)
from anonex.kernel.ksm import ksm_scan
from anonex.kernel.lru import lru_add_drain
from anonex.kernel.madvise import madvise
from anonex.kernel.memory import handle_mm_fault
from anonex.kernel.memory_failure import identify_page_state
from anonex.kernel.migrate import migrate_folio
from anonex.kernel.mmap import exit_mmap, mmap_anon, mremap, munmap
from anonex.kernel.mprotect import mprotect
from anonex.kernel.pgtable import HPAGE_PMD_NR, Entry, MigrationPte, Pmd, Pte, SwapPte, huge_base
from anonex.kernel.state import (
    FAULT_FLAG_WRITE,
    MM,
    VM_DONTCOPY,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_NOHUGEPAGE,
    VM_READ,
    VM_WIPEONFORK,
    VM_WRITE,
    Kernel,
    PageRef,
    Pin,
    Pipe,
)
from anonex.kernel.versions import Rules
from anonex.observation import PageObs, StepResult, Unsupported
from anonex.procfs.stable import stable_page_flags
from anonex.scenario import ast
from anonex.versions import CURRENT, KernelVersion


def _needs_detail(scen: ast.Scenario) -> bool:
    """Whether expectations look at kpageflags, page-types or memory-failure."""
    def walk(c: ast.Cond) -> bool:
        if isinstance(c, ast.Not):
            return walk(c.cond)
        return isinstance(c, ast.Kpf | ast.PageTypes | ast.MemoryFailure)
    return any(isinstance(s, ast.Expect) and walk(s.cond) for s in scen.stmts)


def _found(value: str | None = None, faults: int | None = None,
          problem: Finding | None = None) -> StepResult:
    """A step's result, with the broken promise it observed, if one."""
    if problem is None:
        return StepResult(value=value, faults=faults)
    return StepResult(value=value, faults=faults, finding=problem.message, findings=(problem,))


class ModelBackend:
    """The kernel model at one version, behind the :class:`~anonex.observation.Backend`
    protocol."""

    def __init__(self, version: KernelVersion = CURRENT, detail: bool = False,
                 layout: str | None = None, state: tuple[Kernel, Oracle] | None = None,
                 name: str = "", rules: Rules | None = None) -> None:
        """*state*: start from this kernel and oracle (a copy the explorer made) instead
        of a fresh kernel. *rules*: the rules to run with, when not the version's own."""
        self.rules = rules
        self.layout = layout  # --layout: overrides the scenario's `layout`
        self.detail = detail  # raw flag words and kpageflags in observations (for --trace)
        self.run_detail = detail
        self.version = version
        self.name = name or f"model@{version}"
        if state is None:
            self.k = Kernel(version, rules=rules)
            self.oracle = Oracle()
        else:
            self.k, self.oracle = state
        self.region_pages: dict[str, int] = {}
        # pin handle name -> processes that hold a handle by that name (as the live
        # actors do: a forked child inherits its parent's io_uring rings by name)
        self.pin_names: dict[str, set[str]] = {}

    # -- protocol -------------------------------------------------------------------------

    def start(self, scenario: ast.Scenario) -> None:
        self.k = Kernel(self.version, self.layout or scenario.layout, self.rules)
        self.run_detail = self.detail or _needs_detail(scenario)
        self.k.mms["P0"] = MM("P0")
        self.oracle = Oracle()
        self.region_pages = {}
        self.pin_names = {}

    def finish(self) -> None:
        pass

    def environment(self) -> dict[str, Any]:
        return {"backend": "model", "kernel": str(self.version), "layout": self.k.layout.name}

    def step(self, st: ast.Step) -> StepResult:
        line = st.pos.line
        try:
            # the live backend drains every CPU's LRU add batch before each step
            # (move_pages)
            lru_add_drain(self.k)
            res = self.apply(st)
            problems = invariants.check(self.k) + invariants.pin_coherence(self.k, self.oracle)
        except Segfault as fault:
            return StepResult(error=str(fault))
        except KernelBug as bug:
            return _with_findings(StepResult(), [bug.finding()], line)
        except Unsupported:
            raise
        except Exception as e:  # a bug of the model itself: never a finding about the kernel
            return _with_findings(StepResult(), [model_error(e, f"step '{st.text()}'")], line)
        return _with_findings(res, list(res.findings) or problems, line)

    def observe(self) -> list[PageObs]:
        out: list[PageObs] = []
        for name in sorted(self.k.mms, key=ast.proc_index):
            mm = self.k.mms[name]
            for region, n in self.region_pages.items():
                base = self.k.regions[region]
                for i in range(n):
                    out.append(self._obs(mm, region, i, base + i))
        return out

    # -- observation ----------------------------------------------------------------------

    def _obs(self, mm: MM, region: str, i: int, vpn: int) -> PageObs:
        pmd = mm.pmd_at(vpn)
        if pmd is not None:
            f = pmd.folio
            page = f.pages[vpn - huge_base(vpn)]
            head = f.pages[0]
            return PageObs(
                mm.name, region, i, "present", ident=f.pfn + page.index,
                anon_exclusive=f.anon and pf.PageAnonExclusive(head),
                mapcount=0 if f.zero else page.mapcount + f.entire_mapcount,
                ksm=False, thp=not f.hugetlb, huge=f.hugetlb, zero=f.zero, data=page.data,
                extra=self._extra(page, f.refcount, f.pincount, pmd.write, pmd.dirty, True),
            )
        e = mm.ptes.get(vpn)
        if isinstance(e, Pte):
            page = e.page
            f = page.folio
            exclusive = f.anon and not f.ksm and pf.PageAnonExclusive(page)
            return PageObs(
                mm.name, region, i, "present", ident=f.pfn + page.index,
                anon_exclusive=bool(exclusive),
                mapcount=0 if f.zero else page.mapcount + f.entire_mapcount,
                ksm=f.ksm, thp=f.large and not f.hugetlb, huge=f.hugetlb, zero=f.zero,
                data=page.data,
                extra=self._extra(page, f.refcount, f.pincount, e.write, e.dirty, False),
            )
        if isinstance(e, SwapPte):
            s = self.k.swap.get(e.slot)
            if s is None:  # a broken model (the invariants report it): observe, not crash
                return PageObs(mm.name, region, i, "swapped", extra={"slot": e.slot})
            data = s.cache.pages[0].data if s.cache is not None else s.data[0]
            return PageObs(mm.name, region, i, "swapped", data=data,
                           extra={"swp_exclusive": e.exclusive, "slot": e.slot,
                                  "swapcount": s.count})
        if isinstance(e, MigrationPte):
            return PageObs(mm.name, region, i, "swapped", data=e.page.data,
                           extra={"migration": e.kind})
        return PageObs(mm.name, region, i, "none")

    def _extra(self, page: Page, ref: int, pins: int, w: bool, d: bool,
               pmd: bool) -> dict[str, Any]:
        ex: dict[str, Any] = {"refcount": ref, "pincount": pins, "pte_write": w, "pte_dirty": d}
        if pmd:
            ex["pmd"] = True
        if self.run_detail:
            ex["flags"] = pf.page_flag_names(page)
            ex["kpf"] = stable_page_flags(page, self.k.rules)
            ex["memory_failure"] = identify_page_state(page)
        return ex

    # -- steps ----------------------------------------------------------------------------

    def _mm(self, name: str | None) -> MM:
        assert name is not None
        mm = self.k.mms.get(name)
        if mm is None:
            raise Segfault(f"process {name} has exited")
        return mm

    def _vpns(self, loc: ast.Loc | None) -> list[int]:
        assert loc is not None
        base = self.k.region_vpn(loc.region)
        n = self.region_pages.get(loc.region, 0)
        return [base + i for i in loc.pages(n)]

    def _access(self, mm: MM, vpn: int, write: bool) -> int:
        """A user-space load or store: 1 if it faulted."""
        vma = mm.vma_or_fault(vpn)
        if not vma.flags & (VM_WRITE if write else VM_READ):
            raise Segfault(f"SIGSEGV: {mm.name} {'writes' if write else 'reads'} {vpn:#x} "
                           "without permission")
        e: Entry | Pmd | None = mm.pmd_at(vpn) or mm.ptes.get(vpn)
        if isinstance(e, Pte | Pmd) and (e.write or not write):
            if write:
                e.dirty = True
            return 0
        handle_mm_fault(self.k, mm, vpn, FAULT_FLAG_WRITE if write else 0)
        e = mm.pmd_at(vpn) or mm.ptes.get(vpn)
        if not isinstance(e, Pte | Pmd) or (write and not e.write):
            raise KernelBug("the fault did not make the access possible", where="_access")
        return 1

    def _page_at(self, mm: MM, vpn: int) -> Page:
        pmd = mm.pmd_at(vpn)
        if pmd is not None:
            return pmd.folio.pages[vpn - huge_base(vpn)]
        e = mm.ptes[vpn]
        assert isinstance(e, Pte)
        return e.page

    def _store(self, mm: MM, vpn: int, tag: str) -> None:
        self._page_at(mm, vpn).data = tag
        self.oracle.write(mm.name, vpn, tag)

    def _load(self, mm: MM, vpn: int) -> str:
        return self._page_at(mm, vpn).data

    def _gup(self, mm: MM, vpns: list[int], flags: int) -> list[Any]:
        return get_user_pages(self.k, mm, vpns, flags)

    def apply(self, st: ast.Step) -> StepResult:
        """Do one step on the kernel, without the invariant checks :meth:`step` adds (the
        explorer checks states itself). Raises :class:`Segfault` (the step is refused),
        :class:`KernelBug` and :class:`Unsupported` (a path the model does not have)."""
        try:
            return self._dispatch(st)
        except NotModelled as e:
            raise Unsupported(str(e)) from None

    def _dispatch(self, st: ast.Step) -> StepResult:
        """One method per operation; mypy reports an operation missing here."""
        op = st.op
        match op:
            case "mmap":
                return self._mmap(st)
            case "write" | "touch" | "read":
                return self._user_access(st)
            case "fork":
                return self._fork(st)
            case "exit":
                return self._exit(st)
            case "munmap":
                return self._munmap(st)
            case "mprotect":
                return self._mprotect(st)
            case "mremap":
                return self._mremap(st)
            case "madvise":
                return self._madvise(st)
            case "vmsplice":
                return self._vmsplice(st)
            case "read_handle":
                return self._read_handle(st)
            case "pin":
                return self._pin(st)
            case "unpin":
                return self._unpin(st)
            case "dma_write" | "dma_read":
                return self._dma(st)
            case "dio_read" | "dio_write":
                return self._dio(st)
            case "peek" | "poke" | "force_write":
                return self._remote(st)
            case "split":
                return self._split(st)
            case "migrate":
                return self._migrate(st)
            case "inject":
                assert st.word is not None
                self.k.injected.add(st.word)
                return StepResult()
            case "ksm_scan":
                ksm_scan(self.k)
                return StepResult()
            case _:
                assert_never(op)

    def _mmap(self, st: ast.Step) -> StepResult:
        """mmap(MAP_ANONYMOUS|MAP_PRIVATE), with MADV_NOHUGEPAGE, MADV_HUGEPAGE (populated
        by a write) or MAP_HUGETLB."""
        k = self.k
        assert st.loc is not None
        mm = self._mm(st.proc)
        base = k.region_vpn(st.loc.region)
        npages = st.npages if st.kind == "anon" else HPAGE_PMD_NR
        assert npages is not None
        extra = {"anon": VM_NOHUGEPAGE, "thp": VM_HUGEPAGE, "hugetlb": VM_HUGETLB}
        self.region_pages[st.loc.region] = npages
        try:
            mmap_anon(k, mm, base, npages, extra[st.kind or "anon"])
        except ValueError as e:
            raise Segfault(str(e)) from None
        self.oracle.map(mm.name, range(base, base + npages))
        if st.kind == "thp":  # populated, PMD-mapped
            handle_mm_fault(k, mm, base, FAULT_FLAG_WRITE)
        return StepResult()

    def _user_access(self, st: ast.Step) -> StepResult:
        """Loads and stores of the process itself, page by page."""
        mm = self._mm(st.proc)
        write = st.op == "write"
        faults = 0
        tags: list[str] = []
        problem = None
        for vpn in self._vpns(st.loc):
            faults |= self._access(mm, vpn, write)
            if write:
                self._store(mm, vpn, st.tag or "")
            else:
                got = self._load(mm, vpn)
                tags.append(got)
                problem = problem or self.oracle.check_read(mm.name, vpn, got, st.text())
        return _found(ast.join_tags(tags) if st.op == "read" else None, faults, problem)

    def _fork(self, st: ast.Step) -> StepResult:
        """fork(): the child inherits the mappings, the pipes and the io_uring rings."""
        k = self.k
        parent = self._mm(st.proc)
        assert st.target is not None
        child = dup_mmap(k, parent, st.target)
        k.mms[st.target] = child
        copied = [range(v.start, v.end) for v in parent.vmas
                  if not v.flags & (VM_DONTCOPY | VM_WIPEONFORK)]
        wiped = [range(v.start, v.end) for v in parent.vmas if v.flags & VM_WIPEONFORK
                 and not v.flags & VM_DONTCOPY]
        self.oracle.fork(parent.name, child.name, copied, wiped)
        for holders in [p.holders for p in k.pipes.values()] + \
                [p.holders for p in k.pins.values()]:
            if parent.name in holders:
                holders.add(child.name)
        for procs in self.pin_names.values():
            if parent.name in procs:
                procs.add(child.name)
        return StepResult()

    def _exit(self, st: ast.Step) -> StepResult:
        """exit(): the address space goes, and with it the last holds on pipes and pins."""
        k = self.k
        mm = self._mm(st.proc)
        exit_mmap(k, mm)
        del k.mms[mm.name]
        self.oracle.exit(mm.name)
        for name in list(k.pipes):
            self._drop_holder(name, mm.name, pipe=True)
        for name in list(k.pins):
            self._drop_holder(name, mm.name, pipe=False)
        for procs in self.pin_names.values():
            procs.discard(mm.name)
        return StepResult()

    def _munmap(self, st: ast.Step) -> StepResult:
        mm = self._mm(st.proc)
        vpns = self._vpns(st.loc)
        munmap(self.k, mm, vpns[0], vpns[-1] + 1)
        self.oracle.unmap(mm.name, range(vpns[0], vpns[-1] + 1))
        return StepResult()

    def _mprotect(self, st: ast.Step) -> StepResult:
        mm = self._mm(st.proc)
        vpns = self._vpns(st.loc)
        for v in vpns:
            mm.vma_or_fault(v)
        mprotect(self.k, mm, vpns[0], vpns[-1] + 1, st.word or "rw")
        return StepResult()

    def _mremap(self, st: ast.Step) -> StepResult:
        mm = self._mm(st.proc)
        vpns = self._vpns(st.loc)
        assert st.name is not None
        new_base = self.k.region_vpn(st.name)
        self.region_pages[st.name] = len(vpns)
        mremap(self.k, mm, vpns[0], vpns[-1] + 1, new_base)
        self.oracle.move(mm.name, range(vpns[0], vpns[-1] + 1), new_base - vpns[0])
        return StepResult()

    def _madvise(self, st: ast.Step) -> StepResult:
        mm = self._mm(st.proc)
        vpns = self._vpns(st.loc)
        madvise(self.k, mm, vpns[0], vpns[-1] + 1, st.word or "")
        if st.word == "dontneed":
            self.oracle.unmap(mm.name, range(vpns[0], vpns[-1] + 1), keep_zero=True)
        return StepResult()

    def _vmsplice(self, st: ast.Step) -> StepResult:
        """vmsplice() into a pipe: GUP with FOLL_GET, the pipe holds the references."""
        k = self.k
        mm = self._mm(st.proc)
        vpns = self._vpns(st.loc)
        assert st.name is not None
        if st.name in k.pipes:
            raise Unsupported(f"vmsplice into pipe {st.name!r}, which holds pages already: "
                              "not in the model (one vmsplice per pipe until it is read)")
        pages = self._gup(mm, vpns, FOLL_GET)
        k.pipes[st.name] = Pipe([PageRef(p, mm.name, v) for p, v in zip(pages, vpns,
                                                                         strict=True)],
                                {mm.name})
        self.oracle.vmsplice(st.name, mm.name, vpns)
        return StepResult()

    def _read_handle(self, st: ast.Step) -> StepResult:
        """read() from the pipe: what its pages hold now, and the references go."""
        k = self.k
        self._mm(st.proc)
        assert st.name is not None
        pipe = k.pipes.pop(st.name, None)
        if pipe is None:
            return StepResult(error=f"read {st.name!r}: no pipe of that name holds pages "
                                    "(never filled, or read already)")
        tags = [ref.page.data for ref in pipe.refs]
        problem = self.oracle.check_pipe(st.name, tags)
        for ref in pipe.refs:
            put_page(k, ref.page)
        return _found(ast.join_tags(tags), None, problem)

    def _pin(self, st: ast.Step) -> StepResult:
        """io_uring buffer registration: FOLL_PIN|FOLL_LONGTERM|FOLL_WRITE by default."""
        k = self.k
        mm = self._mm(st.proc)
        vpns = self._vpns(st.loc)
        assert st.name is not None
        if mm.name in self.pin_names.get(st.name, ()):
            return StepResult(error=f"pin {st.name!r} is already held")
        if st.name in k.pins:
            raise Unsupported(f"pin {st.name!r}: another process holds a pin of that "
                              "name (the model keeps one pin per name)")
        opts = st.pinopts or frozenset({"rw", "longterm"})
        flags = FOLL_PIN
        if "ro" not in opts:
            flags |= FOLL_WRITE
        if "longterm" in opts:
            flags |= FOLL_LONGTERM
        if "fast" in opts:
            flags |= FOLL_FAST_ONLY
        pages = self._gup(mm, vpns, flags)
        k.pins[st.name] = Pin([PageRef(p, mm.name, v) for p, v in zip(pages, vpns,
                                                                      strict=True)],
                              {mm.name}, flags)
        self.oracle.pin(st.name, mm.name, vpns)
        self.pin_names.setdefault(st.name, set()).add(mm.name)
        return StepResult()

    def _unpin(self, st: ast.Step) -> StepResult:
        """IORING_UNREGISTER_BUFFERS: the pins go for every holder of the ring."""
        assert st.name is not None and st.proc is not None
        self.pin_names.get(st.name, set()).discard(st.proc)
        if st.name not in self.k.pins:  # a handle whose buffers another holder unregistered
            return StepResult(error=f"unpin {st.name!r}: nothing is registered")
        self._release_pin(st.name)
        return StepResult()

    def _dma(self, st: ast.Step) -> StepResult:
        """A device reads or writes the pinned pages (pin coherence is checked after the
        step, as always)."""
        assert st.name is not None
        held = self.k.pins.get(st.name)
        if held is None:
            return StepResult(error=f"{st.op.replace('_', '-')} {st.name!r}: nothing is "
                                    "registered (never pinned, or unpinned)")
        if st.op == "dma_read":
            return StepResult(value=ast.join_tags([ref.page.data for ref in held.refs]))
        for ref in held.refs:
            ref.page.data = st.tag or ""
        self.oracle.dma_write(st.name, st.tag or "")
        return StepResult()

    def _dio(self, st: ast.Step) -> StepResult:
        """O_DIRECT read() into (writes the page) or write() from the pages: GUP for the
        time of the I/O, FOLL_PIN since 5.19 (odirect_foll_pin), FOLL_GET before."""
        k = self.k
        before = k.nr_faults
        mm = self._mm(st.proc)
        vpns = self._vpns(st.loc)
        kind = FOLL_PIN if k.rules.odirect_foll_pin else FOLL_GET
        write = st.op == "dio_read"  # a read() from the file writes into the page
        pages = self._gup(mm, vpns, kind | (FOLL_WRITE if write else 0))
        tags = []
        problem = None
        for p, v in zip(pages, vpns, strict=True):
            if write:
                p.data = st.tag or ""
                self.oracle.write(mm.name, v, st.tag or "")
            else:
                tags.append(p.data)
                problem = problem or self.oracle.check_read(mm.name, v, p.data, st.text())
            self._put(p, kind)
        return _found(None if write else ast.join_tags(tags), int(k.nr_faults > before), problem)

    def _remote(self, st: ast.Step) -> StepResult:
        """process_vm_readv/writev (remote FOLL_PIN) and /proc/PID/mem writes (FOLL_FORCE
        with FOLL_GET) into another process."""
        k = self.k
        before = k.nr_faults
        self._mm(st.proc)
        target = self._mm(st.target)
        vpns = self._vpns(st.loc)
        if st.op == "force_write":
            kind = FOLL_GET
            flags = FOLL_GET | FOLL_WRITE | FOLL_FORCE | FOLL_REMOTE
        else:
            kind = FOLL_PIN
            flags = FOLL_PIN | FOLL_REMOTE | (FOLL_WRITE if st.op == "poke" else 0)
        pages = self._gup(target, vpns, flags)
        tags = []
        problem = None
        for p, v in zip(pages, vpns, strict=True):
            if st.op == "peek":
                tags.append(p.data)
                problem = problem or self.oracle.check_read(target.name, v, p.data, st.text())
            else:
                p.data = st.tag or ""
                self.oracle.write(target.name, v, st.tag or "")
            self._put(p, kind)
        # since 5.9 the faults GUP takes in the target count against the caller
        faults = int(k.nr_faults > before) if k.rules.remote_faults_to_caller else 0
        return _found(ast.join_tags(tags) if st.op == "peek" else None, faults, problem)

    def _split(self, st: ast.Step) -> StepResult:
        """Split a PMD mapping as the live backend does: mprotect one page R/O and back."""
        mm = self._mm(st.proc)
        vpns = self._vpns(st.loc)
        if not any(mm.pmd_at(v) for v in vpns):
            return StepResult(error="split: no PMD-mapped THP in the range")
        mprotect(self.k, mm, vpns[0], vpns[0] + 1, "ro")
        mprotect(self.k, mm, vpns[0], vpns[0] + 1, "rw")
        return StepResult()

    def _migrate(self, st: ast.Step) -> StepResult:
        """move_pages() of small folios to another node."""
        mm = self._mm(st.proc)
        for vpn in self._vpns(st.loc):
            ent = mm.ptes.get(vpn)
            if mm.pmd_at(vpn) is not None or (isinstance(ent, Pte) and ent.page.folio.large):
                raise Unsupported("migrating a large folio: not in the model yet")
            if isinstance(ent, Pte):
                migrate_folio(self.k, ent.page.folio)
        return StepResult()

    def _put(self, page: Any, kind: int) -> None:
        if kind == FOLL_PIN:
            unpin_user_page(self.k, page)
        else:
            put_page(self.k, page)

    def _release_pin(self, name: str) -> None:
        pin = self.k.pins.pop(name)
        for ref in pin.refs:
            self._put(ref.page, pin.gup_flags & FOLL_PIN or FOLL_GET)
        self.oracle.unpin(name)

    def _drop_holder(self, name: str, mm: str, pipe: bool) -> None:
        table: dict[str, Any] = self.k.pipes if pipe else self.k.pins
        h = table[name]
        h.holders.discard(mm)
        if h.holders:
            return
        if pipe:
            for ref in table.pop(name).refs:
                put_page(self.k, ref.page)
        else:
            self._release_pin(name)


def _with_findings(res: StepResult, findings: list[Finding], line: int) -> StepResult:
    """*res* with *findings*, each stamped with the scenario line of the step."""
    if findings:
        res.findings = tuple(Finding(f.property, f.message, line, f.page) for f in findings)
        res.finding = join(res.findings)
    return res
