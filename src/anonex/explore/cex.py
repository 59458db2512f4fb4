"""Counterexamples as scenario files, replayed to confirm them.

A counterexample is a path of actions from the setup; :func:`scenario_text` writes it as an
ordinary ``.cow`` file: a title that says what happened, the setup ``mmap`` steps, the
path's steps, then, for a broken data promise, the step that observes it (a read of the
page, of the pipe, or through the pin) with an ``expect`` stating what the property
requires. The backend reports the same finding on that step (or, for a structural
invariant or a kernel bug, on the last step of the path), so ``anonex run`` gives the
verdict ``fail``. :func:`replay` runs the file on a fresh model and checks exactly that.

:func:`known_behaviour` tells a violation the kernel really has, and knows it has, from a
new one: the scenario library marks those with ``xfail`` for the versions that have them
(the CVE-2020-29374 leak up to 5.7, the hugetlb vmsplice leak from 5.9, …). A violation
matches a library scenario that fails on this version with the same property, on a region
of the same kind, using no mechanism beyond the scenario's own (pins, vmsplice, swap,
mprotect, … — fork, exit, unmapping and writing are common to all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from anonex.explore import properties
from anonex.explore.checker.result import Violation
from anonex.explore.space import COMMON_OPS, OPS, Action, Bounds, setup_steps, to_step
from anonex.explore.world import Space, World
from anonex.findings import PROPERTIES
from anonex.harness.model import ModelBackend
from anonex.kernel.rmap import maps_page_at
from anonex.runner import Trace, run
from anonex.scenario import ast
from anonex.scenario.parser import parse, parse_file
from anonex.versions import KernelVersion


@dataclass(slots=True)
class Counterexample:
    """A violation written as a scenario, and what its replay on the model gave."""

    violation: Violation
    version: KernelVersion
    title: str
    text: str
    confirmed: bool
    replay: str  # the replay's verdict and reason
    known: str  # the library scenario that shows the same kernel behaviour, or ""
    region_kind: str

    @property
    def prop(self) -> str:
        return self.violation.prop

    def filename(self, n: int = 0) -> str:
        suffix = f"-{n}" if n else ""
        return f"cex-{self.version}-{self.prop}{suffix}.cow"


def _q(s: str) -> str:
    return '"' + s + '"'


def replay_world(space: Space, path: tuple[Action, ...]) -> World:
    """The state at the end of *path* (each step must be a transition)."""
    w = space.initial()
    for a in path:
        o = space.step(w, a)
        if o is None:
            raise ValueError(f"explore: {a!r} is not a transition here")
        w = o.world
    return w


def _vpn_names(bounds: Bounds) -> dict[int, str]:
    out = {}
    for r in bounds.regions:
        for i in range(r.npages if not r.huge else len(r.indexes) + 2):
            out[r.base + i] = f"{r.name}[{i}]"
    return out


def _region_of(bounds: Bounds, vpn: int) -> tuple[str, int, str] | None:
    for r in bounds.regions:
        if r.base <= vpn < r.base + r.npages:
            return r.name, vpn - r.base, r.kind
    return None


def humanize(bounds: Bounds, message: str) -> str:
    """A finding's text with addresses as region pages (``0x10000000`` -> ``A[0]``)."""
    names = _vpn_names(bounds)

    def sub(m: re.Match[str]) -> str:
        v = int(m.group(0), 16)
        return names.get(v, m.group(0))

    return re.sub(r"0x[0-9a-f]+", sub, message)


def _observation(space: Space, w: World, v: Violation) -> tuple[list[str], str]:
    """The steps and expectations that observe the broken promise in state *w*, and the
    kind of the region it broke on."""
    k = w.be.k
    oracle = w.be.oracle
    bounds = space.bounds
    prop = v.prop
    if prop == "no-leak":
        for name, pipe in sorted(k.pipes.items()):
            orefs = oracle.pipes.get(name, [])
            bad = [(r, o) for r, o in zip(pipe.refs, orefs, strict=False)
                   if r.page.data not in o.accepted]
            if not bad:
                continue
            holder = sorted(pipe.holders, key=ast.proc_index)[0]
            got = [r.page.data for r in pipe.refs]
            shown = got[0] if all(g == got[0] for g in got) else ",".join(got)
            ref, oref = bad[0]
            where = _region_of(bounds, ref.vpn)
            lines = [f"{holder}: read {name} -> seen"]
            if len(orefs) == 1 and len(oref.accepted) == 1:
                lines.append(f"expect seen == {_q(next(iter(oref.accepted)))}")
            else:
                lines.append(f"expect not seen == {_q(shown)}")
            return lines, where[2] if where else ""
    if prop == "isolation":
        for name in sorted(k.mms, key=ast.proc_index):
            for vpn in space.layout.vpns:
                want = oracle.mem.get((name, vpn))
                if want is None:
                    continue
                seen = properties.read_view(k, name, vpn)
                if seen is not None and seen != want:
                    where = _region_of(bounds, vpn)
                    assert where is not None
                    return [f"{name}: read {where[0]}[{where[1]}] -> seen",
                            f"expect seen == {_q(want)}"], where[2]
    if prop == "pin-coherence":
        for hname, orefs in sorted(oracle.pins.items()):
            pin = k.pins.get(hname)
            if pin is None:
                continue
            for ref, oref in zip(pin.refs, orefs, strict=False):
                if not oref.attached or oref.mm not in k.mms:
                    continue
                want = oracle.mem.get((oref.mm, oref.vpn))
                same = maps_page_at(k, oref.mm, oref.vpn, ref.page)
                if same and (want is None or ref.page.data == want):
                    continue
                where = _region_of(bounds, oref.vpn)
                holder = sorted(pin.holders, key=ast.proc_index)[0]
                lines = [f"{holder}: dma-read {hname} -> through_pin"]
                if want is not None and len(pin.refs) == 1:
                    lines.append(f"expect through_pin == {_q(want)}")
                return lines, where[2] if where else ""
    # a structural invariant or a kernel bug: the last step of the path reports it
    kinds = {r.name: r.kind for r in bounds.regions}
    last = next((a for a in reversed(v.path) if a[2]), None)
    return [], kinds.get(last[2], "") if last else ""


def scenario_text(space: Space, v: Violation, known: str = "",
                  origin: str = "") -> tuple[str, str, str]:
    """The ``.cow`` text of violation *v*, its title, and the kind of region it broke
    on. *origin* says how the path was found (default: breadth-first, shortest)."""
    bounds = space.bounds
    version = space.version
    w = replay_world(space, v.path)
    obs, kind = _observation(space, w, v)
    title = _title(space, w, v)
    body: list[str] = []
    n = 0
    for st in setup_steps(bounds):
        body.append(st.text())
    for a in v.path:
        st = to_step(a)
        if st.var is not None:
            n += 1
            st = to_step(a, f"v{n}")
        body.append(st.text())
    if obs:
        body.append(f"# {v.prop}: {PROPERTIES[v.prop].promise}")
        body.extend(obs)
    else:
        body.append(f"# {v.prop}: {PROPERTIES[v.prop].promise} -- the last step breaks it")
    how = origin or f"breadth-first: a shortest path ({len(v.path)} steps)"
    about = (f"Found by anonex explore on the model at {version}, {how} to a state that "
             f"breaks '{v.prop}'. Bound: {bounds.describe()}.")
    if known:
        about += f" Known kernel behaviour: {known}."
    head = [f"title {_q(_clean(title))}", f"about {_q(_clean(about))}", ""]
    return "\n".join(head + body) + "\n", title, kind


# the opening words of a message, left out of the title (its head says what broke); only
# the title's wording depends on them
_OPENING = re.compile(r"(leak|(pin coherence|isolation|writable ⇒ exclusive|pinned ⇒ exclusive"
                      r"|swap sanity|free sanity) broken): ")


def _title(space: Space, w: World, v: Violation) -> str:
    """What happened, in one line."""
    bounds = space.bounds
    what = humanize(bounds, v.message)
    m = _OPENING.match(what)
    if m:
        what = what[m.end():]
    what = re.sub(r" \(pfn#[0-9+]+\)", "", what).removesuffix(" (wrong COW)")
    head = {"no-leak": "leak", "pin-coherence": "wrong COW", "isolation": "isolation broken",
            "no-kernel-bug": "kernel BUG", "model-error": "model error (a bug of anonex)"
            }.get(v.prop, f"{v.prop} broken")
    head += f" at {space.version}"
    if v.ops:
        head += " (" + ", ".join(sorted(v.ops, key=lambda o: OPS.index(o))) + ")"
    if v.prop == "no-leak":
        k, oracle = w.be.k, w.be.oracle
        for name, pipe in sorted(k.pipes.items()):
            for ref, oref in zip(pipe.refs, oracle.pipes.get(name, []), strict=False):
                tag = ref.page.data
                if tag in oref.accepted:
                    continue
                writers = sorted({m for (m, vpn), t in oracle.mem.items()
                                  if vpn == oref.vpn and t == tag and m != oref.mm})
                where = _vpn_names(bounds).get(oref.vpn, hex(oref.vpn))
                who = f"which {writers[0]} wrote" if writers else f"which {oref.mm} never had"
                return f"{head}: the pipe {oref.mm} filled from {where} shows '{tag}', {who}"
    return f"{head}: {what}"


def violates(space: Space, path: tuple[Action, ...], prop: str) -> bool:
    """Whether *path* is a run of the model that breaks *prop* on its last step (in the
    last state, or on the way there)."""
    w = space.initial()
    for i, a in enumerate(path):
        o = space.step(w, a)
        if o is None:
            return False
        last = i == len(path) - 1
        if any(f.property == prop for f in o.findings):
            return last
        if o.crashed:
            return False
        w = o.world
        bad = any(f.property == prop for f in space.check(w, o.checked))
        if bad:
            return last
    return False


def minimize(space: Space, path: tuple[Action, ...], prop: str) -> tuple[Action, ...]:
    """A shorter path that still breaks *prop*: drop steps one at a time while the rest
    still breaks it (delta debugging), then name the children P1, P2, … in order."""
    cur = tuple(path)
    changed = True
    while changed:
        changed = False
        for i in range(len(cur) - 1, -1, -1):
            cand = cur[:i] + cur[i + 1:]
            if cand and violates(space, cand, prop):
                cur = cand
                changed = True
    return _rename(cur)


def _rename(path: tuple[Action, ...]) -> tuple[Action, ...]:
    names = {"P0": "P0"}
    for a in path:
        if a[0] == "fork":
            names[a[4]] = f"P{len(names)}"

    def ren(p: str) -> str:
        return names.get(p, p)

    out = []
    for op, proc, region, index, arg in path:
        if op == "fork":
            arg = ren(arg)
        elif op in ("peek", "poke", "force-write"):
            q, _, rest = arg.partition(" ")
            arg = f"{ren(q)} {rest}".rstrip()
        out.append((op, ren(proc), region, index, arg))
    return tuple(out)


def _clean(s: str) -> str:
    return s.replace('"', "'").replace("\n", " ")


def replay(text: str, version: KernelVersion, path: str = "counterexample.cow") -> Trace:
    """Run a counterexample's text on a fresh model at *version*."""
    return run(parse(text, path), ModelBackend(version))


def trace_properties(t: Trace) -> set[str]:
    """The always properties a run broke: those its steps' findings report, and
    ``expectation`` when an expectation failed."""
    out: set[str] = set()
    for rec in t.steps:
        out.update(f.property for f in rec.result.findings)
        if any(e.result == "fail" for e in rec.expects):
            out.add("expectation")
    if any(e.result == "fail" for e in t.initial_expects):
        out.add("expectation")
    return out


def make(space: Space, v: Violation, origin: str = "") -> Counterexample:
    """Write violation *v* as a scenario, replay it, and look it up in the library.
    *origin*: how the path was found (default: breadth-first)."""
    how = f"{origin}, {len(v.path)} steps," if origin else ""
    text, title, kind = scenario_text(space, v, origin=how)
    known = known_behaviour(space.version, v, kind)
    if known:
        text, title, kind = scenario_text(space, v, known, origin=how)
    t = replay(text, space.version)
    confirmed = t.verdict == "fail" and v.prop in trace_properties(t)
    return Counterexample(v, space.version, title, text, confirmed,
                          f"{t.verdict}: {t.reason}", known, kind)


# -- the library's known kernel behaviour ---------------------------------------------------


def _library() -> Path:
    return Path(str(resources.files("anonex").joinpath("library")))


@lru_cache(maxsize=1)
def _xfail_scenarios() -> tuple[ast.Scenario, ...]:
    out = []
    for f in sorted(_library().rglob("*.cow")):
        if "live-draft" in f.parts:
            continue
        try:
            scen = parse_file(f)
        except Exception:  # a broken library file is the library's tests' business
            continue
        if scen.xfails:
            out.append(scen)
    return tuple(out)


def _scenario_ops(scen: ast.Scenario) -> frozenset[str]:
    out = set()
    for st in scen.steps:
        op = st.op
        if op == "madvise":
            out.add(st.word or "")
        elif op == "pin":
            opts = st.pinopts or frozenset({"rw", "longterm"})
            ro = "ro" in opts
            if "longterm" in opts:
                out.add("pin-ro" if ro else "pin")
            else:
                out.add("pin-ro-short" if ro else "pin")
        elif op == "read_handle":
            out.add("read-pipe")
        else:
            out.add(op.replace("_", "-"))
    return frozenset(out)


def _scenario_seq(scen: ast.Scenario) -> tuple[str, ...]:
    return tuple(st.op.replace("_", "-") for st in scen.steps if st.op != "mmap")


def _lcs(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """The length of the longest common subsequence of two step sequences."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@lru_cache(maxsize=256)
def _known_at(version: KernelVersion) -> tuple[tuple[str, str, frozenset[str], str,
                                                    tuple[str, ...]], ...]:
    """(property, region kinds, operations, description, step sequence) of each library
    scenario that fails on *version* as its ``xfail`` says."""
    out = []
    for scen in _xfail_scenarios():
        xf = scen.xfail_for(version)
        if xf is None:
            continue
        t = run(scen, ModelBackend(version))
        if t.verdict != "xfail":
            continue
        kinds = " ".join(sorted({st.kind or "" for st in scen.steps if st.op == "mmap"}))
        for prop in sorted(trace_properties(t)):
            out.append((prop, kinds, _scenario_ops(scen),
                        f"library scenario {scen.name}.cow, xfail {xf.on}: {xf.why}",
                        _scenario_seq(scen)))
    return tuple(out)


def known_behaviour(version: KernelVersion, v: Violation, kind: str) -> str:
    """The library scenario whose expected failure on *version* is this violation's
    behaviour (of those that qualify, the one whose steps are most alike), or "" for a
    violation the library does not know."""
    mech = {a[0] for a in v.path} - COMMON_OPS
    seq = tuple("madvise" if a[0] in ("pageout", "dontneed", "mergeable", "dontfork",
                                      "wipeonfork", "populate-write") else
                "pin" if a[0].startswith("pin") else
                "read-handle" if a[0] == "read-pipe" else a[0] for a in v.path)
    best: tuple[int, int, str] | None = None
    for prop, kinds, ops, desc, steps in _known_at(version):
        if prop == v.prop and kind in kinds.split() and mech <= ops:
            cand = (-_lcs(seq, steps), len(steps), desc)
            if best is None or cand < best:
                best = cand
    return best[2] if best else ""


__all__ = ["COMMON_OPS", "Counterexample", "known_behaviour", "make",
           "minimize", "replay", "replay_world", "scenario_text", "trace_properties",
           "violates"]
