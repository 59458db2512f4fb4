"""``--html``: a run as a page of pictures, and a whole check as a clickable matrix.

:func:`render_run` shows one run step by step. Each step is a section: its line and text,
the value it returned, the fault outcome of a labelled access, an error, skip or finding in
red; then a picture of the state after it, drawn in inline SVG: on the left every process
with its page-table entries, region by region (present read-write or read-only, dirty,
mapped by a PMD; a swap entry with its exclusive bit; a migration or device-exclusive
entry; none); in the middle the physical pages they map, labelled p1, p2, … as in the
trace, with refcount, mapcount, pincount, PG_anon_exclusive, KSM, THP or hugetlb, the zero
page and the data tag (green: exclusive, orange: not exclusive, violet: KSM, grey: the zero
page), and the swap slots; on the right the pins and pipes, with an arrow to every page
they hold. Consecutive entries in one state that map consecutive pages are one row
(``A[1..511] pmd ro → p2…p512``), consecutive pages in one state one box, so a THP stays
readable. What changed since the step before is yellow, and said in words. The step's
expectations and their results close the section.

Pins and pipes are not observations: :func:`holds` works them out from the steps (``pin``
and ``vmsplice`` take the pages mapped at their location after the step; ``unpin`` drops a
pin, reading a pipe empties it, ``fork`` makes the child a holder too and a handle whose
last holder exits goes). An arrow keeps pointing at its page label while some process maps
it; once none does, at a "page no longer mapped" node (labels are never reused).

``render_run(a, compare=b)`` shows a second run of the same scenario (another version, a
real kernel) beside each step, and marks in red what :func:`anonex.diff.diff` finds
different: an entry whose state or page differs, a page's field, a value, an outcome.

:func:`render_check` shows a :class:`~anonex.report.result.CheckResult`: a summary per
folder of the library and per column, the real kernels (environment, notes, why one did not
run), and the matrix of scenarios (grouped by folder) × columns (model versions, then real
kernels), coloured by verdict. A click on a cell opens its verdict and reason and, when
``result.runs`` holds the run, the run itself (kept gzipped in the page, one copy per
distinct run, unpacked by a few lines of inline JavaScript). ``#cell=NAME|COLUMN`` in the
address opens a cell on load.

Which runs a cell opens (the key convention of ``CheckResult.runs``):

* ``runs[(name, column)]``: the full trace of that cell, for a model column (``"5.4"``,
  ``"fp:debian:6.12"``) as for a real kernel's (``"live"``, ``"debian:6.12"``);
* ``runs[(name, "model@" + column)]``, for a real kernel's column: the model run that
  kernel's run was diffed with (``runs[(name, Diverging.model)]``, such as
  ``(name, "model@6.12.117")``, is looked up when that key is missing). A diverging cell
  with both opens the model and the kernel side by side, divergences marked; another
  opens the kernel's run alone.

Both functions are pure: data in, one self-contained HTML document out (no external
resources).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import zip_longest
from pathlib import PurePath
from typing import Any

import jinja2
from markupsafe import Markup

from anonex.diff import Divergence, diff, group
from anonex.observation import PageObs
from anonex.report.result import CheckResult
from anonex.report.text import SHORT
from anonex.runner import ExpectRecord, StepRecord, Trace
from anonex.scenario import ast

Key = tuple[str, str, int]
Obs = dict[Key, PageObs]

# -- pins and pipes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """A pin or a pipe after some step: what took it and the pages it holds, in the order
    of its location's pages: their labels when taken (``None`` where nothing was mapped)
    and the backend's identities of them (:attr:`PageObs.ident`; a held page cannot be
    freed, so the identity follows it when it is unmapped and mapped again, under a new
    label)."""

    kind: str  # "pin" or "pipe"
    name: str
    proc: str
    loc: str
    opts: str
    holders: tuple[str, ...]
    labels: tuple[str | None, ...]
    line: int
    idents: tuple[int | None, ...] = ()

    def pages(self, obs: Obs) -> list[tuple[str, bool]]:
        """Each page held, as it stands in *obs*: its label now and whether some process
        maps it (if not, its last label)."""
        now = {o.ident: o.page for o in obs.values()
               if o.state == "present" and o.ident is not None and o.page is not None}
        mapped = set(now.values())
        out: list[tuple[str, bool]] = []
        for i, lb in enumerate(self.labels):
            if lb is None:
                continue
            ident = self.idents[i] if i < len(self.idents) else None
            cur = now.get(ident) if ident is not None else None
            if cur is not None:
                out.append((cur, True))
            else:
                out.append((lb, lb in mapped and ident is None))
        return out


def _loc_pages(obs: Obs, proc: str, loc: ast.Loc) -> list[PageObs | None]:
    idx = sorted(i for p, r, i in obs if p == proc and r == loc.region)
    out: list[PageObs | None] = []
    for i in loc.pages(idx[-1] + 1 if idx else 0):
        o = obs.get((proc, loc.region, i))
        out.append(o if o is not None and o.state == "present" else None)
    return out


def holds(trace: Trace) -> list[dict[str, Hold]]:
    """The pins and pipes (by kind and name: ``"pin:buf"``) after each step of *trace*."""
    cur: dict[str, Hold] = {}
    out: list[dict[str, Hold]] = []
    for rec in trace.steps:
        st, res = rec.step, rec.result
        ok = res.skipped is None and res.error is None
        if ok and st.op in ("pin", "vmsplice") and st.loc is not None and st.name is not None \
                and st.proc is not None:
            kind = "pin" if st.op == "pin" else "pipe"
            opts = " ".join(sorted(st.pinopts)) if kind == "pin" else ""
            pages = _loc_pages(rec.obs, st.proc, st.loc)
            cur[f"{kind}:{st.name}"] = Hold(
                kind, st.name, st.proc, str(st.loc), opts, (st.proc,),
                tuple(o.page if o else None for o in pages), st.pos.line,
                tuple(o.ident if o else None for o in pages))
        elif ok and st.op == "unpin" and st.name is not None:
            cur.pop(f"pin:{st.name}", None)
        elif ok and st.op == "read_handle" and st.name is not None:
            cur.pop(f"pipe:{st.name}", None)
        elif ok and st.op == "fork" and st.proc is not None and st.target is not None:
            for k, h in list(cur.items()):
                if st.proc in h.holders:
                    cur[k] = _with_holders(h, (*h.holders, st.target))
        elif ok and st.op == "exit" and st.proc is not None:
            for k, h in list(cur.items()):
                rest = tuple(p for p in h.holders if p != st.proc)
                if not rest:
                    del cur[k]
                elif rest != h.holders:
                    cur[k] = _with_holders(h, rest)
        out.append(dict(cur))
    return out


def _with_holders(h: Hold, holders: tuple[str, ...]) -> Hold:
    return replace(h, holders=holders)


# -- the picture of one step -------------------------------------------------------------

CW = 7.23  # advance of a 12px DejaVu Sans Mono character
LH = 15  # a line in a box
RH = 18  # a row (entry) in a process
PAD = 6
GAP = 74  # between columns, for the arrows
MAX_ROWS = 80  # rows per process and region; the rest is counted

_PAGE_FIELDS = ("anon_exclusive", "mapcount", "ksm", "thp", "huge", "zero", "data")
_PAGE_EXTRA = ("refcount", "pincount", "flags", "kpf", "memory_failure", "excl_source",
               "swapcache")
_ROW_DIFF = frozenset({"state", "page", "mapped by a PMD"})


@dataclass(slots=True)
class Span:
    text: str
    x: float
    cls: str = ""


@dataclass(slots=True)
class TextLine:
    y: float
    spans: list[Span]
    cls: str = ""


@dataclass(slots=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str = ""


@dataclass(slots=True)
class Edge:
    d: str
    head: str
    cls: str


@dataclass(slots=True)
class Diagram:
    width: float
    height: float
    rects: list[Rect] = field(default_factory=list)
    texts: list[TextLine] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def _num(label: str | None) -> int:
    return int(label[1:]) if label and label[1:].isdigit() else -1


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _q(s: str | None) -> str:
    return "?" if s is None else repr(s)


def _page_sig(o: PageObs) -> tuple[Any, ...]:
    return tuple(getattr(o, f) for f in _PAGE_FIELDS) + \
        tuple(_freeze(o.extra.get(k)) for k in _PAGE_EXTRA)


def _slot(o: PageObs) -> int | None:
    s = o.extra.get("slot")
    if isinstance(s, int):
        return s
    sw = o.extra.get("swap")
    if isinstance(sw, list | tuple) and len(sw) == 2:
        return int(sw[0]) << 40 | int(sw[1])
    return None


def _slot_text(o: PageObs) -> str:
    sw = o.extra.get("swap")
    if isinstance(sw, list | tuple) and len(sw) == 2:
        return f"{sw[0]}:{sw[1]}"
    return str(o.extra.get("slot", "?"))


def _is_swap(o: PageObs) -> bool:
    return o.state == "swapped" and "migration" not in o.extra and \
        not o.extra.get("device_exclusive")


def _pinned(o: PageObs) -> str:
    """A small folio counts pins in its refcount, 1024 each (GUP_PIN_COUNTING_BIAS); a
    large one in its pincount."""
    ref = o.extra.get("refcount")
    if o.thp or o.huge or not isinstance(ref, int):
        return ""
    return " (pinned)" if ref >= 1024 else ""


@dataclass(slots=True)
class _Node:
    """A box in the middle column: pages, swap slots, or pages no longer mapped."""

    kind: str  # "page", "swap", "gone"
    first: int
    last: int
    rep: PageObs | None
    sig: tuple[Any, ...]
    changed: frozenset[str] = frozenset()
    differs: frozenset[str] = frozenset()
    labels: list[str] = field(default_factory=list)
    slot_first: str = ""
    slot_last: str = ""
    lines: list[list[tuple[str, str]]] = field(default_factory=list)
    title: str = ""
    x: float = 0
    y: float = 0
    w: float = 0
    h: float = 0
    want: float = 1e9


@dataclass(slots=True)
class _Row:
    proc: str
    region: str
    first: int
    last: int
    sig: tuple[Any, ...]
    node: int | None
    tfirst: int
    tlast: int
    tstep: int | None
    loc: str = ""
    entry: str = ""
    target: str = ""
    cls: str = ""
    changed: bool = False
    differs: bool = False
    title: str = ""
    y: float = 0


def _entry(o: PageObs) -> tuple[str, str]:
    """What one page-table entry is, in words, and its CSS class."""
    ex = o.extra
    if o.state == "none":
        return "none", "r-none"
    if o.state == "swapped":
        if "migration" in ex:
            return f"migration entry ({ex['migration']})", "r-mig"
        if ex.get("device_exclusive"):
            return "device-exclusive entry", "r-mig"
        return ("swap entry, exclusive" if ex.get("swp_exclusive") else "swap entry"), "r-swap"
    level = "pmd" if ex.get("pmd") else "pte"
    if "pte_write" not in ex:
        return (f"{level} present" if ex.get("pmd") is not None else "present"), "r-present"
    text = f"{level} {'rw' if ex['pte_write'] else 'ro'}"
    if ex.get("pte_dirty"):
        text += " dirty"
    return text, "r-present"


def _row_sig(o: PageObs) -> tuple[Any, ...]:
    ex = o.extra
    if o.state == "present":
        return ("p", ex.get("pte_write"), ex.get("pte_dirty"), ex.get("pmd"))
    if o.state == "swapped":
        return ("s", ex.get("migration"), ex.get("device_exclusive"), ex.get("swp_exclusive"),
                None if _is_swap(o) else o.data)
    return ("n",)


def _row_changed(o: PageObs, before: PageObs | None) -> bool:
    if before is None:
        return o.state != "none"
    if o.state != before.state or o.page != before.page:
        return True
    keys = ("pte_write", "pte_dirty", "pmd", "swp_exclusive", "migration", "slot", "swap",
            "device_exclusive")
    return any(o.extra.get(k) != before.extra.get(k) for k in keys)


_CHANGE_FIELDS = ("data", "anon_exclusive", "mapcount", "refcount", "pincount", "ksm", "thp",
                  "zero")


def _field(o: PageObs, f: str) -> Any:
    return o.extra.get(f) if f in ("refcount", "pincount") else getattr(o, f)


def _page_changes(o: PageObs, before: PageObs | None) -> frozenset[str]:
    if before is None:
        return frozenset({"new"})
    return frozenset(f for f in _CHANGE_FIELDS if _field(o, f) != _field(before, f))


def _swaps(obs: Obs) -> dict[int, PageObs]:
    out: dict[int, PageObs] = {}
    for o in obs.values():
        s = _slot(o)
        if _is_swap(o) and s is not None:
            out.setdefault(s, o)
    return out


def _swap_changes(o: PageObs, before: PageObs | None) -> frozenset[str]:
    if before is None:
        return frozenset({"new"})
    out = {k for k in ("swapcount", "swapcache") if o.extra.get(k) != before.extra.get(k)}
    return frozenset(out | ({"data"} if o.data != before.data else set()))


def _reps(obs: Obs) -> dict[str, PageObs]:
    out: dict[str, PageObs] = {}
    for o in obs.values():
        if o.state == "present" and o.page is not None:
            out.setdefault(o.page, o)
    return out


def _page_lines(n: _Node) -> None:
    o = n.rep
    assert o is not None
    label = f"p{n.first}" if n.first == n.last else f"p{n.first}…p{n.last}"
    head: list[tuple[str, str]] = [(label, "b")]
    if n.first != n.last:
        head.append((f" ×{n.last - n.first + 1}", "dim"))
    if "new" in n.changed:
        head.append((" new", "chg-t"))
    mark = _marker(n)
    if o.zero:
        head.append((" zero page", mark("zero")))
    elif o.anon_exclusive is None:
        head.append((" excl?", mark("anon_exclusive")))
    else:
        head.append((" exclusive" if o.anon_exclusive else " not exclusive",
                     mark("anon_exclusive")))
    if o.ksm:
        head.append((" KSM", mark("ksm")))
    if o.thp:
        head.append((" THP", mark("thp")))
    if o.huge:
        head.append((" hugetlb", mark("huge")))
    counts: list[tuple[str, str]] = []
    ex = o.extra
    if "refcount" in ex:
        counts.append((f"ref {ex['refcount']}{_pinned(o)}", mark("refcount")))
    if o.mapcount is not None:
        counts += [("  " if counts else "", ""), (f"map {o.mapcount}", mark("mapcount"))]
    if ex.get("pincount"):
        counts += [("  ", ""), (f"pin {ex['pincount']}", mark("pincount"))]
    n.lines = [head]
    if counts:
        n.lines.append(counts)
    if o.data is not None:
        n.lines.append([("data ", "dim"), (_q(o.data), mark("data"))])
    flags = ex.get("flags")
    if flags:
        text = "|".join(flags)
        n.lines.append([(text if len(text) <= 40 else text[:39] + "…", "flags")])
    tip = [label + (f" ({n.last - n.first + 1} pages)" if n.first != n.last else ""),
           f"PG_anon_exclusive: {o.anon_exclusive}", f"mapcount: {o.mapcount}",
           f"KSM: {o.ksm}, THP: {o.thp}, hugetlb: {o.huge}, zero page: {o.zero}",
           f"data: {_q(o.data)}"]
    for k in _PAGE_EXTRA:
        if k in ex:
            v = ex[k]
            tip.append(f"{k}: {v:#x}" if k == "kpf" and isinstance(v, int) else
                       f"{k}: {'|'.join(v) if isinstance(v, list) else v}")
    n.title = "\n".join(tip)


def _marker(n: _Node) -> Callable[[str], str]:
    """The class of a field's text in a box: differs (red), changed (yellow), or plain."""
    def mark(f: str) -> str:
        if f in n.differs:
            return "dv-t"
        if f in n.changed:
            return "chg-t"
        return ""
    return mark


def _swap_lines(n: _Node) -> None:
    o = n.rep
    assert o is not None
    what = f"swap slot {n.slot_first}" if n.first == n.last else \
        f"swap slots {n.slot_first}…{n.slot_last}"
    mark = _marker(n)
    n.lines = [[(what, "b")] + ([(" new", "chg-t")] if "new" in n.changed else [])]
    info: list[tuple[str, str]] = []
    if "swapcount" in o.extra:
        info.append((f"swap count {o.extra['swapcount']}", mark("swapcount")))
    if o.extra.get("swapcache"):
        info.append(("  in swap cache" if info else "in swap cache", mark("swapcache")))
    if info:
        n.lines.append(info)
    if o.data is not None:
        n.lines.append([("data ", "dim"), (_q(o.data), mark("data"))])
    n.title = f"{what}\n" + "\n".join(f"{k}: {v}" for k, v in o.extra.items())


def diagram(obs: Obs, before: Obs, hold: Iterable[Hold],
            marks: dict[Key, set[str]] | None = None) -> Diagram:
    """The picture of one step: processes and their entries, pages and swap slots, pins and
    pipes. *before*: the observations of the step before (what changed is yellow);
    *marks*: the fields each page differs in from another run (red)."""
    marks = marks or {}
    reps = _reps(obs)
    before_reps = _reps(before)
    # the differing page fields of each label
    page_diff: dict[str, set[str]] = {}
    for key, fs in marks.items():
        o = obs.get(key)
        if o is not None and o.page is not None:
            page_diff.setdefault(o.page, set()).update(fs - _ROW_DIFF)
    # -- the nodes of the middle column: pages, then swap slots
    nodes: list[_Node] = []
    node_of: dict[str, int] = {}
    for label in sorted(reps, key=_num):
        o = reps[label]
        ch = _page_changes(o, before_reps.get(label))
        dv = frozenset(page_diff.get(label, ()))
        psig: tuple[Any, ...] = (_page_sig(o), ch, dv)
        k = _num(label)
        if nodes and nodes[-1].kind == "page" and nodes[-1].sig == psig and \
                nodes[-1].last + 1 == k:
            nodes[-1].last = k
            nodes[-1].labels.append(label)
        else:
            nodes.append(_Node("page", k, k, o, psig, ch, dv, [label]))
        node_of[label] = len(nodes) - 1
    swaps = _swaps(obs)
    swaps_before = _swaps(before)
    slot_node: dict[int, int] = {}
    for s in sorted(swaps):
        o = swaps[s]
        ch = _swap_changes(o, swaps_before.get(s))
        sig: tuple[Any, ...] = (o.data, _freeze(o.extra.get("swapcount")),
                                o.extra.get("swapcache"), ch)
        last = nodes[-1] if nodes else None
        if last is not None and last.kind == "swap" and last.sig == sig and last.last + 1 == s:
            last.last = s
            last.slot_last = _slot_text(o)
        else:
            nodes.append(_Node("swap", s, s, o, sig, ch, slot_first=_slot_text(o),
                               slot_last=_slot_text(o)))
        slot_node[s] = len(nodes) - 1
    # -- the rows of the processes
    groups: dict[tuple[str, str], list[PageObs]] = {}
    for o in sorted(obs.values(), key=lambda o: (_num(o.proc), o.index)):
        groups.setdefault((o.proc, o.region), []).append(o)
    rows: dict[str, list[_Row]] = {}
    for (proc, region), lst in groups.items():
        out = rows.setdefault(proc, [])
        start = len(out)
        for o in lst:
            mk = marks.get(o.key, set()) & _ROW_DIFF
            changed = _row_changed(o, before.get(o.key))
            rsig: tuple[Any, ...] = (_row_sig(o), changed, frozenset(mk))
            node: int | None = None
            t = -1
            if o.state == "present" and o.page is not None:
                node, t = node_of[o.page], _num(o.page)
            elif _is_swap(o) and _slot(o) is not None:
                sl = _slot(o)
                assert sl is not None
                node, t = slot_node[sl], sl
            prev = out[-1] if len(out) > start else None
            if prev is not None and prev.last + 1 == o.index and prev.sig == rsig and \
                    prev.node == node and (node is None or _continues(prev, t)):
                if prev.tstep is None and node is not None:
                    prev.tstep = t - prev.tlast
                prev.last, prev.tlast = o.index, t
                continue
            text, cls = _entry(o)
            out.append(_Row(proc, region, o.index, o.index, rsig, node, t, t, None,
                            entry=text, cls=cls, changed=changed, differs=bool(mk),
                            title=", ".join(sorted(mk))))
        if len(out) - start > MAX_ROWS:
            cut = out[start + MAX_ROWS - 1:]
            del out[start + MAX_ROWS - 1:]
            out.append(_Row(proc, region, cut[0].first, cut[-1].last, (), None, -1, -1, None,
                            entry=f"… {len(cut)} more rows not drawn", cls="r-none"))
    for proc_rows in rows.values():
        for r in proc_rows:
            r.loc = f"{r.region}[{r.first}]" if r.first == r.last else \
                f"{r.region}[{r.first}..{r.last}]"
            if r.node is not None:
                n = nodes[r.node]
                if n.kind == "page":
                    r.target = f"p{r.tfirst}" if r.tfirst == r.tlast else \
                        f"p{r.tfirst}…p{r.tlast}"
                    if r.tstep == 0 and r.first != r.last:
                        r.target = f"p{r.tfirst} ×{r.last - r.first + 1}"
    for n in nodes:
        if n.kind == "page":
            _page_lines(n)
        else:
            _swap_lines(n)
    # -- pins and pipes, and the pages they hold that nobody maps any more
    hold_list = [(h, h.pages(obs)) for h in sorted(hold, key=lambda h: (h.line, h.kind,
                                                                          h.name))]
    gone_labels = sorted({lb for _, held in hold_list for lb, mapped in held if not mapped},
                         key=_num)
    gone_of: dict[str, int] = {}
    for lb in gone_labels:
        k = _num(lb)
        last = nodes[-1] if nodes else None
        if last is not None and last.kind == "gone" and last.last + 1 == k:
            last.last = k
            last.labels.append(lb)
        else:
            nodes.append(_Node("gone", k, k, None, (), labels=[lb]))
        gone_of[lb] = len(nodes) - 1
    for n in nodes:
        if n.kind == "gone":
            label = f"p{n.first}" if n.first == n.last else f"p{n.first}…p{n.last}"
            n.lines = [[(label, "b")], [("page no longer mapped", "")],
                       [("(held only by a pin or pipe)", "dim")]]
            n.title = f"{label}: no process maps it any more; a pin or pipe still holds it"
    return _layout(rows, nodes, hold_list, node_of, gone_of)


def _continues(prev: _Row, t: int) -> bool:
    if prev.tstep is None:
        return t in (prev.tlast, prev.tlast + 1)
    return t - prev.tlast == prev.tstep


def _width(lines: list[list[tuple[str, str]]]) -> float:
    return max((sum(len(s) for s, _ in line) for line in lines), default=0) * CW


def _spans(x: float, parts: list[tuple[str, str]]) -> list[Span]:
    out: list[Span] = []
    for text, cls in parts:
        if text:
            out.append(Span(text, round(x, 1), cls))
        x += len(text) * CW
    return out


def _arrow(x1: float, y1: float, x2: float, y2: float, cls: str) -> Edge:
    """A curve from (x1, y1) to an arrowhead at (x2, y2), pointing right or left."""
    sign = 1 if x2 > x1 else -1
    end = x2 - sign * 6
    dx = abs(end - x1) / 2
    d = (f"M{x1:.0f} {y1:.0f}C{x1 + sign * dx:.0f} {y1:.0f} {end - sign * dx:.0f} {y2:.0f} "
         f"{end:.0f} {y2:.0f}")
    head = f"{x2:.0f},{y2:.0f} {x2 - sign * 8:.0f},{y2 - 4:.0f} {x2 - sign * 8:.0f},{y2 + 4:.0f}"
    return Edge(d, head, cls)


def _layout(rows: dict[str, list[_Row]], nodes: list[_Node],
            hold: list[tuple[Hold, list[tuple[str, bool]]]],
            node_of: dict[str, int], gone_of: dict[str, int]) -> Diagram:
    dg = Diagram(0, 0)
    if not rows and not nodes and not hold:
        dg.width, dg.height = 260, 30
        dg.texts.append(TextLine(19, [Span("(nothing mapped)", 8, "dim")]))
        return dg
    # -- the processes
    all_rows = [r for rs in rows.values() for r in rs]
    locw = max((len(r.loc) for r in all_rows), default=0) + 2
    entw = max((len(r.entry) for r in all_rows), default=0) + 2
    tgtw = max((len(r.target) for r in all_rows), default=0)
    pw = max(PAD * 2 + (locw + entw + tgtw) * CW, 120)
    x0, y = 8.0, 8.0
    for proc, rs in sorted(rows.items(), key=lambda kv: _num(kv[0])):
        h = 24 + len(rs) * RH + 4
        dg.rects.append(Rect(x0, y, pw, h, "proc"))
        dg.texts.append(TextLine(y + 16, [Span(proc, x0 + PAD, "b")]))
        for i, r in enumerate(rs):
            ry = y + 24 + i * RH
            r.y = ry + RH / 2
            if r.differs:
                dg.rects.append(Rect(x0 + 2, ry, pw - 4, RH, "dv", r.title))
            elif r.changed:
                dg.rects.append(Rect(x0 + 2, ry, pw - 4, RH, "chg"))
            dg.texts.append(TextLine(ry + 13, _spans(x0 + PAD, [(r.loc, "b")]) +
                                     _spans(x0 + PAD + locw * CW, [(r.entry, r.cls)]) +
                                     _spans(x0 + PAD + (locw + entw) * CW,
                                            [(r.target, "dim")])))
            if r.node is not None:
                n = nodes[r.node]
                n.want = min(n.want, r.y)
        y += h + 10
    left_bottom = y
    # -- the middle column
    x1 = x0 + pw + GAP if rows else x0
    bw = max((_width(n.lines) for n in nodes), default=0) + 2 * PAD
    bw = max(bw, 130)
    for i, (_, held) in enumerate(hold):
        for lb, mapped in held:
            j = node_of.get(lb) if mapped else gone_of.get(lb)
            if j is not None and nodes[j].want > 1e8:
                nodes[j].want = 1e8 + i  # after the mapped ones, in the order of the holds
    cursor = 8.0
    for n in sorted(nodes, key=lambda n: n.want):
        n.h = len(n.lines) * LH + 8
        n.w = bw
        n.x = x1
        want = n.want - n.h / 2 if n.want < 1e8 else cursor
        n.y = max(cursor, want)
        cursor = n.y + n.h + 10
        cls = {"page": "pg " + _page_class(n.rep), "swap": "swap", "gone": "gone"}[n.kind]
        if n.differs:
            cls += " dv-box"
        dg.rects.append(Rect(n.x, n.y, n.w, n.h, cls, n.title))
        for k, line in enumerate(n.lines):
            base = n.y + 4 + (k + 1) * LH - 3
            spans = _spans(n.x + PAD, line)
            dg.texts.append(TextLine(base, spans))
            for sp in spans:  # what changed, or differs, on a coloured ground
                if sp.cls in ("chg-t", "dv-t"):
                    lead = len(sp.text) - len(sp.text.lstrip())
                    dg.rects.append(Rect(sp.x + lead * CW - 1, base - 11,
                                         (len(sp.text) - lead) * CW + 2, 14,
                                         "hl-chg" if sp.cls == "chg-t" else "hl-dv"))
    mid_bottom = cursor
    for rs in rows.values():
        for r in rs:
            if r.node is None:
                continue
            n = nodes[r.node]
            ty = min(max(r.y, n.y + 8), n.y + n.h - 8)
            dg.edges.append(_arrow(x0 + pw - 4, r.y, n.x, ty, "e-map"))
    # -- pins and pipes
    x2 = x1 + bw + GAP
    cursor = 8.0
    right = x1 + bw if nodes else x0 + pw
    for h_, held in hold:
        targets: list[int] = []
        for lb, mapped in held:
            j = node_of.get(lb) if mapped else gone_of.get(lb)
            if j is not None and j not in targets:
                targets.append(j)
        title = f'{h_.kind} "{h_.name}"' + (f" {h_.opts}" if h_.opts else "")
        now = [lb for lb, _ in held]
        lines = [[(title, "b")], [(f"taken by {h_.proc} on {h_.loc}, line {h_.line}", "dim")],
                 [("pages " + (", ".join(_ranges(now)) or "none"), "")],
                 [("holders: " + ", ".join(h_.holders), "")]]
        if not targets:
            lines.append([("(no page)", "dim")])
        hh = len(lines) * LH + 8
        hw = _width(lines) + 2 * PAD
        want = nodes[targets[0]].y + nodes[targets[0]].h / 2 - hh / 2 if targets else cursor
        hy = max(cursor, want)
        cursor = hy + hh + 10
        dg.rects.append(Rect(x2, hy, hw, hh, f"hold {h_.kind}",
                             f"{title}: taken by {h_.proc} at line {h_.line} on {h_.loc}"))
        for k, line in enumerate(lines):
            dg.texts.append(TextLine(hy + 4 + (k + 1) * LH - 3, _spans(x2 + PAD, line)))
        cy = hy + hh / 2
        for j in targets:
            n = nodes[j]
            ty = min(max(cy, n.y + 8), n.y + n.h - 8)
            dg.edges.append(_arrow(x2, cy, n.x + n.w, ty, f"e-{h_.kind}"))
        right = max(right, x2 + hw)
    dg.width = round(right + 8)
    dg.height = round(max(left_bottom, mid_bottom, cursor))
    return dg


def _page_class(o: PageObs | None) -> str:
    if o is None:
        return ""
    if o.zero:
        return "zero"
    if o.ksm:
        return "ksm"
    if o.anon_exclusive is None:
        return "unk"
    return "excl" if o.anon_exclusive else "shared"


# -- what changed, in words --------------------------------------------------------------

MAX_CHANGES = 10


def _ranges(labels: list[str]) -> list[str]:
    out: list[list[int]] = []
    for k in sorted(_num(lb) for lb in labels):
        if out and out[-1][1] + 1 == k:
            out[-1][1] = k
        else:
            out.append([k, k])
    return [f"p{a}" if a == b else f"p{a}…p{b}" for a, b in out]


def _describe_change(f: str, a: Any, b: Any) -> str:
    name = {"anon_exclusive": "exclusive", "mapcount": "map", "refcount": "ref",
            "pincount": "pin", "data": "data"}.get(f, f)
    if f == "data":
        return f"data {_q(a)} → {_q(b)}"
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return f"{name} {_yn(a)} → {_yn(b)}"
    return f"{name} {a} → {b}"


def _yn(v: Any) -> str:
    return "?" if v is None else ("yes" if v is True else "no" if v is False else str(v))


def changes(before: Obs, obs: Obs, hold_before: dict[str, Hold],
            hold: dict[str, Hold]) -> list[str]:
    """What one step changed, in words: new pages, pages no longer mapped, what changed
    in a page (consecutive pages with the same change together), pins and pipes."""
    out: list[str] = []
    ra, rb = _reps(before), _reps(obs)
    new = [lb for lb in rb if lb not in ra]
    gone = [lb for lb in ra if lb not in rb]
    if new:
        out.append("new page" + ("s " if len(new) > 1 else " ") + ", ".join(_ranges(new)))
    runs: list[tuple[int, int, str]] = []
    for lb in sorted((lb for lb in rb if lb in ra), key=_num):
        a, b = ra[lb], rb[lb]
        what = ", ".join(_describe_change(f, _field(a, f), _field(b, f))
                         for f in _CHANGE_FIELDS if _field(a, f) != _field(b, f))
        if not what:
            continue
        k = _num(lb)
        if runs and runs[-1][1] + 1 == k and runs[-1][2] == what:
            runs[-1] = (runs[-1][0], k, what)
        else:
            runs.append((k, k, what))
    for a_, b_, what in runs:
        out.append(f"{'p' + str(a_) if a_ == b_ else f'p{a_}…p{b_}'}: {what}")
    if gone:
        out.append(", ".join(_ranges(gone)) + " no longer mapped by any process")
    sa, sb = _swaps(before), _swaps(obs)
    slot_runs: list[tuple[int, int, str, str, str]] = []  # first, last, texts, change
    for slot in sorted(sb):
        o = sb[slot]
        if slot not in sa:
            what = "new"
        else:
            ca, cb = sa[slot].extra.get("swapcount"), o.extra.get("swapcount")
            what = f"swap count {ca} → {cb}" if ca != cb else ""
        if not what:
            continue
        if slot_runs and slot_runs[-1][1] + 1 == slot and slot_runs[-1][4] == what:
            slot_runs[-1] = (slot_runs[-1][0], slot, slot_runs[-1][2], _slot_text(o), what)
        else:
            slot_runs.append((slot, slot, _slot_text(o), _slot_text(o), what))
    for a_, b_, ta, tb, what in slot_runs:
        where = f"swap slot {ta}" if a_ == b_ else f"swap slots {ta}…{tb}"
        out.append(f"new {where}" if what == "new" else f"{where}: {what}")
    for hk, h in hold.items():
        held = ", ".join(_ranges([lb for lb in h.labels if lb is not None])) or "no page"
        if hk not in hold_before:
            out.append(f'{h.kind} "{h.name}" takes {held}')
            continue
        if hold_before[hk].holders != h.holders:
            out.append(f'{h.kind} "{h.name}" now held by {", ".join(h.holders)}')
        was, now = h.pages(before), h.pages(obs)
        back = [(a[0], b[0]) for a, b in zip(was, now, strict=True)
                if b[1] and a[0] != b[0]]
        if back:
            out.append(f'{h.kind} "{h.name}": its page ' +
                       ", ".join(f"{a} is mapped again, as {b}" for a, b in back[:3]) +
                       (f" (and {len(back) - 3} more)" if len(back) > 3 else ""))
    for hk, h in hold_before.items():
        if hk not in hold:
            out.append(f'{h.kind} "{h.name}" ' + ("read, and its pages released"
                                                  if h.kind == "pipe" else "released"))
    if len(out) > MAX_CHANGES:
        n = len(out) - MAX_CHANGES + 1
        out = [*out[:MAX_CHANGES - 1], f"… and {n} more"]
    return out


# -- runs as view data for the templates -------------------------------------------------


@dataclass(slots=True)
class ExpectView:
    line: int
    text: str
    result: str
    detail: str


@dataclass(slots=True)
class SideView:
    """One backend's half of a step."""

    backend: str
    present: bool = True
    value: str | None = None
    outcome: str = ""
    skipped: str | None = None
    error: str | None = None
    finding: str | None = None
    value_diff: bool = False
    outcome_diff: bool = False
    error_diff: bool = False
    changes: list[str] = field(default_factory=list)
    diagram: Diagram | None = None
    note: str = ""
    expects: list[ExpectView] = field(default_factory=list)

    @property
    def bad(self) -> bool:
        return bool(self.error or self.finding or
                    any(e.result == "fail" for e in self.expects))


@dataclass(slots=True)
class StepView:
    line: int
    text: str
    sides: list[SideView]
    divergences: list[str] = field(default_factory=list)

    @property
    def bad(self) -> bool:
        return any(s.bad for s in self.sides) or bool(self.divergences)

    @property
    def skipped(self) -> bool:
        return any(s.skipped for s in self.sides)


@dataclass(slots=True)
class RunView:
    name: str
    title: str
    about: str
    path: str
    backends: list[tuple[str, str, str, str, dict[str, Any]]]  # name, version, verdict,
    # reason, env
    initial: list[list[ExpectView]]
    steps: list[StepView]
    divergences: list[tuple[int, str]] = field(default_factory=list)  # line, text
    n_divergences: int = 0


def _expects(recs: list[ExpectRecord]) -> list[ExpectView]:
    return [ExpectView(e.expect.pos.line, e.expect.text(), e.result, e.detail) for e in recs]


def _light(t: Trace) -> bool:
    """Whether the run observed only where its expectations look (``Runner(full=False)``):
    a step after a successful ``mmap`` observed nothing, and no process exited."""
    mapped = False
    for rec in t.steps:
        if rec.step.op == "exit":
            return False  # then nothing may be left to observe
        if not rec.obs and mapped:
            return True
        mapped = mapped or (rec.step.op == "mmap" and rec.result.error is None)
    return False


def _side(t: Trace, i: int, hs: list[dict[str, Hold]],
          marks: dict[Key, set[str]] | None, other: set[str], light: bool) -> SideView:
    if i >= len(t.steps):
        why = "the run stopped before this step" if t.steps else "no steps recorded"
        return SideView(t.backend, present=False, note=why)
    rec: StepRecord = t.steps[i]
    res = rec.result
    before: Obs = t.steps[i - 1].obs if i else {}
    if light:  # what changed since the last observation
        before = next((r.obs for r in reversed(t.steps[:i]) if r.obs), {})
    hb = hs[i - 1] if i else {}
    sv = SideView(t.backend, value=res.value, skipped=res.skipped, error=res.error,
                  finding=res.finding, expects=_expects(rec.expects),
                  value_diff="value" in other, outcome_diff="outcome" in other,
                  error_diff="error" in other)
    label = rec.step.label
    if label is not None:
        if res.faults is None:
            sv.outcome = f"@{label}: faults unknown"
        elif res.faults:
            sv.outcome = f"@{label}: fault, {rec.outcome}"
        else:
            sv.outcome = f"@{label}: no fault"
    if res.skipped is not None:
        sv.note = "not run here"
        return sv
    if not rec.obs and light:
        sv.note = "not observed after this step (this run observed only where its " \
                  "expectations look)"
        return sv
    sv.diagram = diagram(rec.obs, before, hs[i].values(), marks)
    sv.changes = changes(before, rec.obs, hb, hs[i])
    return sv


def run_view(a: Trace, b: Trace | None = None) -> RunView:
    """The view data of one run, or of two runs side by side (*b*: the other backend)."""
    traces = [a] if b is None else [a, b]
    divs: list[Divergence] = diff(a, b) if b is not None else []
    by_line: dict[int, list[Divergence]] = {}
    for d in divs:
        by_line.setdefault(d.line, []).append(d)
    hs = [holds(t) for t in traces]
    light = [_light(t) for t in traces]
    steps: list[StepView] = []
    for i, recs in enumerate(zip_longest(*(t.steps for t in traces))):
        first = next(r for r in recs if r is not None)
        line = first.step.pos.line
        dl = by_line.get(line, [])
        marks: dict[Key, set[str]] = {}
        other: set[str] = set()
        for d in dl:
            if d.is_page:
                assert d.proc is not None and d.region is not None and d.index is not None
                marks.setdefault((d.proc, d.region, d.index), set()).add(d.field or "")
            elif d.what == "value read":
                other.add("value")
            elif d.what.endswith(("faults", "outcome")):
                other.add("outcome")
            elif d.what == "step error":
                other.add("error")
        sides = [_side(t, i, h, marks if b is not None else None, other, lt)
                 for t, h, lt in zip(traces, hs, light, strict=True)]
        names = (a.backend, b.backend) if b is not None else ("", "")
        steps.append(StepView(line, first.step.text(), sides,
                              [g.describe(*names) for g in group(dl)]))
    groups = group(divs)
    return RunView(
        a.scenario.name, a.scenario.title or a.scenario.name, a.scenario.about,
        a.scenario.path,
        [(t.backend, str(t.version), t.verdict, t.reason, t.env) for t in traces],
        [_expects(t.initial_expects) for t in traces], steps,
        [(g.line, g.describe(*(a.backend, b.backend))) for g in groups[:20]]
        if b is not None else [], len(divs))


# -- rendering ---------------------------------------------------------------------------


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("anonex.report", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined)
    env.filters["verdict_class"] = verdict_class
    env.filters["n"] = _n
    env.filters["q"] = _q
    return env


def _n(v: float) -> str:
    """A coordinate, short."""
    return f"{v:.1f}".removesuffix(".0")


def verdict_class(verdict: str) -> str:
    return {"pass": "v-pass", "xfail": "v-xfail", "skip": "v-skip", "fail": "v-fail",
            "xpass": "v-xpass"}.get(verdict, "")


def _run_body(view: RunView, header: bool) -> str:
    return _env().get_template("run_body.html.j2").render(run=view, header=header)


def render_run(trace: Trace, compare: Trace | None = None) -> str:
    """One run as a self-contained HTML page; with *compare* (the same scenario on another
    backend), the two side by side per step, what differs marked."""
    view = run_view(trace, compare)
    title = f"{view.name} on {' vs '.join(b[0] for b in view.backends)}"
    return _env().get_template("run.html.j2").render(
        page_title=title, body=Markup(_run_body(view, True)))


# -- the check ---------------------------------------------------------------------------

LEGEND = [("v-pass", "ok", "pass"), ("v-unobs", "ok?", "pass, some expectations not "
                                                       "observable here"),
          ("v-xfail", "xf", "expected failure (xfail)"), ("v-skip", "sk", "skip"),
          ("v-fail", "FAIL", "failed"), ("v-xpass", "XPASS", "passed, but xfail says it fails"),
          ("v-pass div", "ok≠", "diverges from the model (real kernels)")]


def folder_of(path: str) -> str:
    """The scenario's folder in the library (``cow``, ``fingerprint``; ``(top level)``)."""
    parts = PurePath(path).parts
    if "library" in parts:
        i = len(parts) - 1 - parts[::-1].index("library")
        rest = parts[i + 1:-1]
    else:
        rest = parts[-2:-1]
    return "/".join(rest) or "(top level)"


MAX_TIP = 400  # characters of a reason in a cell's tooltip


def _clip(text: str, n: int = MAX_TIP) -> str:
    return text if len(text) <= n else text[:n - 1] + f"… ({len(text) - n + 1} more characters)"


def _pack(html: str) -> str:
    return base64.b64encode(gzip.compress(html.encode(), compresslevel=9, mtime=0)).decode()


@dataclass(slots=True)
class Cell:
    cls: str
    text: str
    title: str
    run: str = ""  # the id of the packed run it opens


@dataclass(slots=True)
class Row:
    name: str
    title: str
    cells: list[Cell]


@dataclass(slots=True)
class Folder:
    name: str
    rows: list[Row]
    runs: int = 0
    unexpected: int = 0
    diverging: int = 0


@dataclass(slots=True)
class ColumnSummary:
    name: str
    kernel: bool
    runs: int = 0
    unexpected: int = 0
    diverging: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def _cell_model(result: CheckResult, name: str, col: str,
                models: dict[tuple[str, str], str]) -> Trace | None:
    t = result.runs.get((name, "model@" + col))
    if t is None and (name, col) in models:
        t = result.runs.get((name, models[(name, col)]))
    return t


def run_blob(trace: Trace) -> tuple[str, str]:
    """A run's picture for :func:`render_check`, drawn ahead (in a worker process, so that
    a whole library's runs need not be kept): its digest and its packed text, for
    ``CheckResult.blobs``."""
    body = _run_body(run_view(trace), False)
    return hashlib.sha1(body.encode()).hexdigest(), _pack(body)


def render_check(result: CheckResult) -> str:
    """A check as a self-contained HTML page: summary, kernels, the matrix; a cell opens
    its verdict and, when ``result.runs`` holds it, its run (see the module's docstring
    for the keys)."""
    columns = result.columns
    kernel_cols = {k.column for k in result.kernels}
    div = {(d.scenario, d.column): d for d in result.diverging}
    models = {(d.scenario, d.column): d.model for d in result.diverging}
    packed: dict[str, str] = {}  # digest -> id
    blobs: list[tuple[str, str]] = []
    info: dict[str, dict[str, Any]] = {}

    def pack(body: str) -> str:
        return packed_id(hashlib.sha1(body.encode()).hexdigest(), lambda: _pack(body))

    def packed_id(digest: str, data: Callable[[], str]) -> str:
        if digest not in packed:
            packed[digest] = f"r{len(packed)}"
            blobs.append((packed[digest], data()))
        return packed[digest]

    summaries = [ColumnSummary(c, c in kernel_cols) for c in columns]
    folders: dict[str, Folder] = {}
    for s in result.scenarios:
        fname = folder_of(s.path)
        folder = folders.setdefault(fname, Folder(fname, []))
        cells: list[Cell] = []
        for ci, col in enumerate(columns):
            t = result.cells.get((s.name, col))
            if t is None:
                cells.append(Cell("none", "-", "not run"))
                continue
            d = div.get((s.name, col))
            cls = verdict_class(t.verdict)
            text = SHORT.get(t.verdict, t.verdict)
            if t.unobservable and t.verdict == "pass":
                cls, text = "v-unobs", text + "?"
            tip = [f"{s.name} on {col}: {t.verdict}"]
            if t.unobservable:
                tip.append(f"{t.unobservable} expectation(s) not observable")
            if t.reason:
                tip.append(_clip(t.reason))
            if d is not None:
                cls += " div"
                text += "≠"
                tip.append(f"diverges from {d.model}: {len(d.divergences)} divergence(s)")
            sm = summaries[ci]
            sm.runs += 1
            folder.runs += 1
            sm.counts[t.verdict] = sm.counts.get(t.verdict, 0) + 1
            if not t.as_expected:
                sm.unexpected += 1
                folder.unexpected += 1
            if d is not None:
                sm.diverging += 1
                folder.diverging += 1
                groups = group(d.divergences)
                info[f"{s.name}|{col}"] = {
                    "div": [g.describe(d.model, col) for g in groups[:30]],
                    "more": max(0, len(groups) - 30)}
            run_id = ""
            full = result.runs.get((s.name, col))
            if full is not None and full.steps:
                model = _cell_model(result, s.name, col, models) if d is not None else None
                if model is not None and model.steps:
                    run_id = pack(_run_body(run_view(model, full), False))
                else:
                    run_id = pack(_run_body(run_view(full), False))
            elif (s.name, col) in result.blobs:
                digest, data = result.blobs[(s.name, col)]
                run_id = packed_id(digest, data.__str__)
            cells.append(Cell(cls, text, "\n".join(tip), run_id))
        folder.rows.append(Row(s.name, s.title or s.name, cells))
    ordered = sorted(folders.values(), key=lambda f: (f.name != "(top level)", f.name))
    total = Folder("all", [], sum(f.runs for f in ordered),
                   sum(f.unexpected for f in ordered), sum(f.diverging for f in ordered))
    kernels = []
    for k in result.kernels:
        env = {kk: v for kk, v in k.env.items() if kk != "notes"}
        notes = list(dict.fromkeys(k.env.get("notes") or []))
        kernels.append({"column": k.column, "version": str(k.version) if k.version else "",
                        "env": env, "notes": notes, "not_run": k.not_run})
    return _env().get_template("check.html.j2").render(
        page_title="anonex check", columns=columns, kernel_cols=kernel_cols,
        n_model=len(result.model_columns), folders=ordered, total=total,
        summaries=summaries, kernels=kernels, legend=LEGEND, blobs=blobs,
        info=Markup(
            json.dumps(info, ensure_ascii=True).replace("</", "<\\/")),
        n_scenarios=len(result.scenarios), failed=result.failed)
