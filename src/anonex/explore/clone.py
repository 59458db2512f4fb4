"""Fast copies of the model's state, for expanding one explored state by many actions.

Every action runs on its own copy of the parent state (the model mutates in place). A
generic ``copy.deepcopy`` costs ~200 µs for a small state, ``pickle`` ~30 µs; this module
generates one straight-line cloning function per model class from a table of field kinds
(:data:`FIELDS`), which copies a small state in a few microseconds.

The table is an optimisation, never a source of truth: a slot or attribute the table does
not know is copied by the generic path (:func:`clone_any`, falling back to
``copy.deepcopy``), so a field the model gains later is still copied correctly, only more
slowly. ``tests/test_explore_state.py`` lists the fields the table misses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from anonex.kernel.flags import Layout as FlagLayout
from anonex.kernel.folio import Folio, Page
from anonex.kernel.oracle import Oracle, _Ref
from anonex.kernel.pgtable import DeviceExclusivePte, MigrationPte, Pmd, Pte, SwapPte
from anonex.kernel.state import MM, VMA, Kernel, PageRef, Pin, Pipe, SwapSlot
from anonex.kernel.versions import Rules
from anonex.versions import KernelVersion

Memo = dict[int, Any]
Cloner = Callable[[Any, Memo], Any]

# Values shared between copies: immutable, or never mutated (the version, its rules, the
# era's page-flag layout).
ATOMIC: frozenset[type] = frozenset({int, bool, str, float, type(None), frozenset, bytes,
                                     KernelVersion, Rules, FlagLayout})

# Field kinds: "a" atom (shared), "o" object or None (cloned through the memo), "page" a
# page (copied with its folio), "lo" list of objects, "do" dict of atom -> object, "dlo"
# dict of atom -> list of objects, "la" list of atoms, "sa" set of atoms, "da" dict of
# atoms -> atoms, "pages" a folio's own pages.
FIELDS: dict[type, dict[str, str]] = {
    Page: {"folio": "o", "index": "a", "flags": "a", "mapcount": "a", "data": "a"},
    Folio: {"pfn": "a", "order": "a", "pages": "pages", "refcount": "a", "pincount": "a",
            "entire_mapcount": "a", "large_mapcount": "a", "anon": "a", "ksm": "a",
            "hugetlb": "a", "zero": "a", "freed": "a", "swap": "a", "mm_counts": "da",
            "layout": "a", "mm_shared": "a"},
    Pte: {"page": "page", "write": "a", "dirty": "a", "special": "a"},
    SwapPte: {"slot": "a", "exclusive": "a"},
    MigrationPte: {"page": "page", "kind": "a"},
    DeviceExclusivePte: {"page": "page"},
    Pmd: {"folio": "o", "write": "a", "dirty": "a"},
    VMA: {"start": "a", "npages": "a", "flags": "a", "anon_vma": "a", "ra": "a"},
    MM: {"name": "a", "vmas": "lo", "ptes": "do", "has_pinned": "a", "pmds": "do"},
    PageRef: {"page": "page", "mm": "a", "vpn": "a"},
    Pipe: {"refs": "lo", "holders": "sa"},
    Pin: {"refs": "lo", "holders": "sa", "gup_flags": "a"},
    SwapSlot: {"data": "la", "count": "a", "cache": "o"},
    _Ref: {"mm": "a", "vpn": "a", "attached": "a", "accepted": "sa"},
    Kernel: {"version": "a", "rules": "a", "mms": "do", "next_pfn": "a", "zero_folio": "o",
             "pipes": "do", "pins": "do", "swap": "do", "next_slot": "a", "regions": "da",
             "freed": "lo", "nr_faults": "a", "ksm_mms": "la", "ksm_use_zero_pages": "a",
             "mthp_orders": "a", "layout": "a", "injected": "sa", "_huge_zero": "o",
             "thp_use_zero_page": "a"},
    Oracle: {"mem": "da", "pipes": "dlo", "pins": "dlo"},
}

_DISPATCH: dict[type, Cloner] = {}


def clone_any(v: Any, memo: Memo) -> Any:
    """Copy *v* (any value reachable from the model's state), sharing what is immutable
    and copying each mutable object once (*memo*: id of the original -> its copy)."""
    t = v.__class__
    if t in ATOMIC:
        return v
    if t is tuple:
        return tuple(clone_any(x, memo) for x in v)
    done = memo.get(id(v))
    if done is not None:
        return done
    f = _DISPATCH.get(t)
    if f is not None:
        return f(v, memo)
    if t is list:
        out_l: list[Any] = []
        memo[id(v)] = out_l
        out_l.extend(clone_any(x, memo) for x in v)
        return out_l
    if t is dict:
        out_d: dict[Any, Any] = {}
        memo[id(v)] = out_d
        for a, b in v.items():
            out_d[clone_any(a, memo)] = clone_any(b, memo)
        return out_d
    if t is set:
        out_s = {clone_any(x, memo) for x in v}
        memo[id(v)] = out_s
        return out_s
    return copy.deepcopy(v, memo)


def _slots(cls: type) -> list[str]:
    out: list[str] = []
    for c in reversed(cls.__mro__):
        s = c.__dict__.get("__slots__", ())
        out.extend([s] if isinstance(s, str) else s)
    return [s for s in out if s not in ("__dict__", "__weakref__")]


def _field_code(name: str, kind: str, src: str, dst: str) -> list[str]:
    """Lines copying field *name* of *src* into *dst* for its kind."""
    get = f"{src}.{name}" if src != "od" else f"od[{name!r}]"
    put = f"{dst}.{name} = " if dst != "nd" else f"nd[{name!r}] = "
    if kind == "a":
        return [put + get]
    if kind == "o":
        return [f"v = {get}",
                "if v is None or v.__class__ in _ATOMIC:",
                f"    {put}v",
                "else:",
                "    x = _memo_get(_id(v))",
                f"    {put}x if x is not None else _D(v.__class__, _C)(v, memo)"]
    if kind == "page":
        return [f"v = {get}",
                "if v.__class__ is _Page:",
                "    f = v.folio",
                "    nf = _memo_get(_id(f))",
                "    if nf is None:",
                "        nf = _clone_folio(f, memo)",
                f"    {put}nf.pages[v.index]",
                "else:",
                f"    {put}_C(v, memo)"]
    # model objects are never false, so "memo hit or clone" is an 'or'
    one = "(_memo_get(_id(x)) or _D(x.__class__, _C)(x, memo))"
    if kind == "lo":
        return [f"{put}[{one} for x in {get}]"]
    if kind == "do":
        return [f"{put}{{a: {one} for a, x in {get}.items()}}"]
    if kind == "dlo":
        return [f"{put}{{a: [{one} for x in b] for a, b in {get}.items()}}"]
    if kind == "la":
        return [put + f"list({get})"]
    if kind == "sa":
        return [put + f"set({get})"]
    if kind == "da":
        return [put + f"dict({get})"]
    raise ValueError(kind)


def _gen_slots(cls: type, fields: dict[str, str]) -> Cloner:
    lines = [f"def _clone_{cls.__name__}(o, memo):",
             "    _memo_get = memo.get",
             "    n = _new(_cls)",
             "    memo[_id(o)] = n"]
    for name in _slots(cls):
        kind = fields.get(name)
        if kind is None:  # a field the table does not know: the generic path
            lines.append(f"    if hasattr(o, {name!r}): n.{name} = _C(o.{name}, memo)")
            continue
        if kind == "pages":
            page_fields = FIELDS[Page]
            # pages are not entered in the memo: a reference to a page is resolved as
            # page <index> of the copied folio (see _clone_page)
            body = ["q = _new(_Page)", "q.folio = n"]
            for pn in _slots(Page):
                if pn == "folio":
                    continue
                if page_fields.get(pn) == "a":
                    body.append(f"q.{pn} = p.{pn}")
                else:
                    body.append(f"if hasattr(p, {pn!r}): q.{pn} = _C(p.{pn}, memo)")
            lines.append("    n.pages = ps = []")
            lines.append("    for p in o.pages:")
            lines.extend("        " + b for b in body)
            lines.append("        ps.append(q)")
            continue
        lines.extend("    " + ln for ln in _field_code(name, kind, "o", "n"))
    lines.append("    return n")
    return _compile(cls, lines)


def _gen_dict(cls: type, fields: dict[str, str]) -> Cloner:
    """A cloner for a plain class (instance ``__dict__``): unknown attributes take the
    generic path."""
    lines = [f"def _clone_{cls.__name__}(o, memo):",
             "    _memo_get = memo.get",
             "    n = _new(_cls)",
             "    memo[_id(o)] = n",
             "    od = o.__dict__",
             "    nd = n.__dict__",
             "    nd.update(od)  # the atoms; the rest is replaced below",
             "    extra = od.keys() - _KNOWN",
             "    for a in extra:",
             "        nd[a] = _C(od[a], memo)"]
    for name, kind in fields.items():
        if kind == "a":
            continue
        lines.append(f"    if {name!r} in od:")
        lines.extend("        " + ln for ln in _field_code(name, kind, "od", "nd"))
    lines.append("    return n")
    return _compile(cls, lines, known=frozenset(fields))


def _folio_cloner(f: Folio, memo: Memo) -> Folio:
    out: Folio = _DISPATCH[Folio](f, memo)
    return out


def _compile(cls: type, lines: list[str], known: frozenset[str] = frozenset()) -> Cloner:
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_Page": Page, "_id": id,
                           "_C": clone_any, "_D": _DISPATCH.get, "_ATOMIC": ATOMIC,
                           "_KNOWN": known, "_clone_folio": _folio_cloner}
    exec("\n".join(lines), env)  # generated code: one assignment per field
    fn: Cloner = env[f"_clone_{cls.__name__}"]
    return fn


for _cls, _fields in FIELDS.items():
    if "__dict__" in dir(_cls) and not _slots(_cls):
        _DISPATCH[_cls] = _gen_dict(_cls, _fields)
    elif _cls is not Page:
        _DISPATCH[_cls] = _gen_slots(_cls, _fields)


def _clone_page(p: Page, memo: Memo) -> Page:
    """A page is copied with its folio (which copies all its pages)."""
    f = p.folio
    nf = memo.get(id(f))
    if nf is None:
        nf = _DISPATCH[Folio](f, memo)
    out: Page = nf.pages[p.index]
    return out


_DISPATCH[Page] = _clone_page


def clone(obj: Any) -> Any:
    """A deep copy of *obj* (a :class:`Kernel`, an :class:`Oracle`, or a tuple of them
    sharing one memo)."""
    return clone_any(obj, {})


def unknown_fields() -> dict[str, list[str]]:
    """Fields of the model's classes that :data:`FIELDS` does not list (copied by the
    slower generic path), by class name; for tests and ``--debug``."""
    out: dict[str, list[str]] = {}
    for cls, fields in FIELDS.items():
        names = _slots(cls)
        if not names and cls is Kernel:
            names = list(vars(Kernel(KernelVersion(6, 18))))
        elif not names and cls is Oracle:
            names = list(vars(Oracle()))
        missing = sorted(set(names) - set(fields))
        if missing:
            out[cls.__name__] = missing
    return out
