"""Parser: scenario text to :class:`~anonex.scenario.ast.Scenario`.

The grammar (``cow.lark``, LALR(1)) accepts the language of DESIGN §4. After parsing, a
static check follows the file in order and rejects what cannot run: a process used before
it exists, a region used before its ``mmap``, a page index past the region's end, a pipe
or pin handle never created, a variable or label used before it is set. Every problem is a
:class:`ScenarioError` with file:line:column and what was expected.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import lark
from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from anonex.kernel.pgtable import HPAGE_PMD_NR
from anonex.scenario import ast
from anonex.scenario.errors import ScenarioError
from anonex.versions import KernelVersion

# What each terminal means, for "expected …" messages.
_DESCRIBE: dict[str, str] = {
    "PROC": "a process name (P0, P1, …)",
    "REGION": "a region name in upper case (A, BUF, …)",
    "NAME": "a lower-case name",
    "STRING": 'a quoted tag ("text")',
    "INT": "a number",
    "VERSION": "a kernel version (6.18, 5.19.3)",
    "PAGESTATE": "a page state (exclusive, swapped, present, none, ksm, thp, zero)",
    "OUTCOME": "a fault outcome (new, reused, copied, swapin)",
    "PROT": "a protection (ro, rw, none)",
    "NONE": "none",
    "LAYOUT": "a flag layout (slab, mappedtodisk, owner_2)",
    "INJECTION": "a fault to inject (fs-mappedtodisk, free-keeps-flag, ksm-exclusive)",
    "ADVICE": "a madvise advice (dontfork, dofork, wipeonfork, keeponfork, pageout, dontneed, "
              "hugepage, nohugepage, collapse, mergeable, unmergeable, populate-read, "
              "populate-write)",
    "PINOPT": "a pin option (ro, rw, fast, longterm)",
    "ANON": "anon", "THP": "thp", "HUGETLB": "hugetlb",
    "_NL": "end of line",
    "$END": "end of file",
}


@lru_cache(maxsize=1)
def _lark() -> Lark:
    text = resources.files("anonex.scenario").joinpath("cow.lark").read_text()
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _describe(term: str) -> str:
    if term in _DESCRIBE:
        return _DESCRIBE[term]
    try:
        pat = _lark().get_terminal(term).pattern
    except KeyError:
        return term
    if isinstance(pat, lark.lexer.PatternStr):
        return f"'{pat.value}'"
    return term


def _expected_list(terms: set[str] | frozenset[str]) -> str:
    items = sorted({_describe(t) for t in terms})
    if not items:
        return "nothing more"
    if len(items) > 8:
        items = [*items[:8], "…"]
    return items[0] if len(items) == 1 else "one of: " + ", ".join(items)


def _line_of(text: str, line: int) -> str | None:
    lines = text.splitlines()
    return lines[line - 1] if 1 <= line <= len(lines) else None


def _syntax_error(path: str, text: str, e: UnexpectedInput) -> ScenarioError:
    line = getattr(e, "line", None) or 1
    col = getattr(e, "column", None) or 1
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            line = max(text.count("\n"), 1)
            col = len(_line_of(text, line) or "") + 1
            got = "end of file"
        elif tok.type == "_NL":
            got = "end of line"
        else:
            got = f"'{tok}'"
        msg = f"unexpected {got}; expected {_expected_list(e.accepts or e.expected)}"
    elif isinstance(e, UnexpectedCharacters):
        at = e.pos_in_stream if e.pos_in_stream is not None else -1
        ch = text[at] if 0 <= at < len(text) else "?"
        if ch == '"':
            msg = "unterminated tag; expected a closing '\"' before the end of the line"
            return ScenarioError(path, line, col, msg, _line_of(text, line))
        shown = repr(ch)[1:-1] if not ch.isprintable() else ch
        msg = f"unexpected character '{shown}'; expected {_expected_list(e.allowed)}"
    elif isinstance(e, UnexpectedEOF):
        msg = f"unexpected end of file; expected {_expected_list(set(e.expected))}"
    else:  # pragma: no cover - lark has no other kinds
        msg = str(e).splitlines()[0]
    return ScenarioError(path, line, col, msg, _line_of(text, line))


class _ToAst(Transformer[Token, Any]):
    """Turns the lark tree into :mod:`anonex.scenario.ast` nodes."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def _pos(self, meta: Any) -> ast.Pos:
        return ast.Pos(self.path, getattr(meta, "line", 1), getattr(meta, "column", 1))

    @staticmethod
    def _str(tok: Token) -> str:
        return str(tok)[1:-1]

    # locations and pages
    def loc(self, c: list[Token]) -> ast.Loc:
        first = int(c[1]) if len(c) > 1 else None
        last = int(c[2]) if len(c) > 2 else None
        return ast.Loc(str(c[0]), first, last)

    def page(self, c: list[Any]) -> ast.PageRef:
        return ast.PageRef(str(c[0]), c[1])

    def label(self, c: list[Token]) -> str:
        return str(c[0])

    def kind(self, c: list[Token]) -> tuple[str, int | None]:
        return (str(c[0]), int(c[1]) if len(c) > 1 else None)

    # version ranges
    def _range(self, op: str, c: list[Token]) -> ast.VersionRange:
        lo = KernelVersion.parse(str(c[0]))
        hi = KernelVersion.parse(str(c[1])) if len(c) > 1 else None
        return ast.VersionRange(op, lo, hi)  # type: ignore[arg-type]

    def r_eq(self, c: list[Token]) -> ast.VersionRange:
        return self._range("==", c)

    def r_le(self, c: list[Token]) -> ast.VersionRange:
        return self._range("<=", c)

    def r_lt(self, c: list[Token]) -> ast.VersionRange:
        return self._range("<", c)

    def r_ge(self, c: list[Token]) -> ast.VersionRange:
        return self._range(">=", c)

    def r_gt(self, c: list[Token]) -> ast.VersionRange:
        return self._range(">", c)

    def r_between(self, c: list[Token]) -> ast.VersionRange:
        return self._range("..", c)

    # conditions
    def neg(self, c: list[Any]) -> ast.Cond:
        return ast.Not(c[0])

    def var_eq(self, c: list[Token]) -> ast.Cond:
        return ast.VarEq(str(c[0]), self._str(c[1]))

    def page_state(self, c: list[Any]) -> ast.Cond:
        return ast.PageState(c[0], str(c[1]))

    def same(self, c: list[Any]) -> ast.Cond:
        return ast.Same(c[0], c[1])

    def mapcount(self, c: list[Any]) -> ast.Cond:
        return ast.Mapcount(c[0], int(c[1]))

    def faults(self, c: list[Any]) -> ast.Cond:
        return ast.Faults(c[0], int(c[1]))

    def outcome(self, c: list[Any]) -> ast.Cond:
        return ast.Outcome(c[0], str(c[1]))

    def kpf(self, c: list[Any]) -> ast.Cond:
        return ast.Kpf(c[0], str(c[1]))

    def pagetypes(self, c: list[Any]) -> ast.Cond:
        return ast.PageTypes(c[0], self._str(c[1]))

    def memory_failure(self, c: list[Any]) -> ast.Cond:
        return ast.MemoryFailure(c[0], self._str(c[1]))

    def bug(self, c: list[Token]) -> ast.Cond:
        return ast.Bug(self._str(c[0]))


_OP_FIELDS: dict[str, tuple[str, ...]] = {
    # field names filled, in order, from an operation's children
    "mmap": ("region", "kind"),
    "write": ("loc", "tag"),
    "read": ("loc", "var"),
    "read_handle": ("name", "var"),
    "touch": ("loc",),
    "fork": ("target",),
    "exit": (),
    "munmap": ("loc",),
    "mprotect": ("loc", "word"),
    "mremap": ("loc", "name"),
    "madvise": ("loc", "word"),
    "vmsplice": ("loc", "name"),
    "pin": ("loc", "name", "*pinopts"),
    "unpin": ("name",),
    "dma_write": ("name", "tag"),
    "dma_read": ("name", "var"),
    "dio_read": ("loc", "tag"),
    "dio_write": ("loc", "var"),
    "peek": ("target", "loc", "var"),
    "poke": ("target", "loc", "tag"),
    "force_write": ("target", "loc", "tag"),
    "split": ("loc",),
    "migrate": ("loc",),
    "ksm_scan": (),
    "inject": ("word",),
}


def _build_step(path: str, tree: Tree[Any], to_ast: _ToAst) -> ast.Step:
    proc: str | None = None
    label: str | None = None
    op_tree: Tree[Any] | None = None
    for ch in tree.children:
        if isinstance(ch, Token) and ch.type == "PROC":
            proc = str(ch)
        elif isinstance(ch, Tree):
            op_tree = ch
        elif isinstance(ch, str):
            label = ch
    assert op_tree is not None
    op = str(op_tree.data)
    kw: dict[str, Any] = {}
    fields = _OP_FIELDS[op]
    children = list(op_tree.children)
    pinopts: set[str] = set()
    for fname, val in zip(fields, children, strict=False):
        if fname == "*pinopts":
            break
        if fname == "region":
            kw["loc"] = ast.Loc(str(val))
        elif fname == "kind":
            kind, npages = cast(tuple[str, int | None], val)
            kw["kind"], kw["npages"] = kind, npages
        elif fname == "tag":
            kw["tag"] = str(val)[1:-1]
        elif isinstance(val, Token):
            kw[fname] = str(val)
        else:
            kw[fname] = val
    if fields and fields[-1] == "*pinopts":
        pinopts = {str(t) for t in children[len(fields) - 1:]}
    meta = tree.meta
    pos = ast.Pos(path, getattr(meta, "line", 1), getattr(meta, "column", 1))
    return ast.Step(op=op, pos=pos, proc=proc, label=label,  # type: ignore[arg-type]
                    pinopts=frozenset(pinopts), **kw)


def parse(text: str, path: str = "<scenario>") -> ast.Scenario:
    """Parse scenario *text*; raise :class:`ScenarioError` on any problem."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(path, text, e) from None
    to_ast = _ToAst(path)
    scen = ast.Scenario(path=path)
    for st in tree.children:
        if not isinstance(st, Tree):
            continue
        meta = st.meta
        pos = ast.Pos(path, getattr(meta, "line", 1), getattr(meta, "column", 1))
        kind = st.data
        if kind == "title":
            scen.title = str(st.children[0])[1:-1]
        elif kind == "about":
            scen.about = str(st.children[0])[1:-1]
        elif kind == "layout":
            scen.layout = str(st.children[0])
        elif kind == "rule":
            tok = st.children[0]
            scen.rules.append((str(tok), ast.Pos(path, getattr(tok, "line", pos.line),
                                                 getattr(tok, "column", pos.column))))
        elif kind == "xfail":
            rng = to_ast.transform(_tree(st.children[0]))
            why = str(st.children[1])[1:-1] if len(st.children) > 1 else ""
            scen.xfails.append(ast.XFail(rng, why, pos))
        elif kind == "step":
            conv = Tree(st.data, [to_ast.transform(c) if isinstance(c, Tree) and c.data == "label"
                                  else _transform_op(c, to_ast) for c in st.children], st.meta)
            scen.stmts.append(_build_step(path, conv, to_ast))
        elif kind == "expect":
            cond = to_ast.transform(_tree(st.children[0]))
            on = to_ast.transform(_tree(st.children[1])) if len(st.children) > 1 else None
            scen.stmts.append(ast.Expect(cond, pos, on))
    check(scen, text)
    return scen


def _tree(x: Any) -> Tree[Token]:
    assert isinstance(x, Tree)
    return x


def _transform_op(c: Any, to_ast: _ToAst) -> Any:
    if isinstance(c, Tree):
        return Tree(c.data, [to_ast.transform(x) if isinstance(x, Tree) else x
                             for x in c.children], c.meta)
    return c


def parse_file(path: str | Path) -> ast.Scenario:
    """Read and parse a ``.cow`` file; unreadable or non-UTF-8 files are errors too."""
    p = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ScenarioError(p, 1, 1, f"cannot read the file: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ScenarioError(p, line, col, "the file is not UTF-8 text") from None
    return parse(text, p)


# ---------------------------------------------------------------------------------------------
# Static checks


def _err(scen: ast.Scenario, text: str, pos: ast.Pos, msg: str) -> ScenarioError:
    return ScenarioError(scen.path, pos.line, pos.column, msg, _line_of(text, pos.line))


def _check_rules(scen: ast.Scenario, text: str) -> None:
    """Every ``rule NAME`` names a row of the version table, once."""
    from difflib import get_close_matches

    from anonex.kernel.versions import BOUNDARIES

    names = [b.name for b in BOUNDARIES]
    seen: set[str] = set()
    for name, pos in scen.rules:
        if name in seen:
            raise _err(scen, text, pos, f"rule {name} is named twice")
        seen.add(name)
        if name not in names:
            near = get_close_matches(name, names, n=3)
            hint = f"one of: {', '.join(near)}" if near else \
                "a rule of the version table (anonex/kernel/versions.py)"
            raise _err(scen, text, pos, f"no kernel rule named {name}; expected {hint}")


def check(scen: ast.Scenario, text: str = "") -> None:
    """Follow the scenario in order and reject names and indexes that cannot be valid."""
    _check_rules(scen, text)
    procs = {"P0"}
    regions: dict[str, int] = {}
    handles: dict[str, str] = {}  # name -> "pipe" | "pin"
    vars_: set[str] = set()
    labels: set[str] = set()

    exited: dict[str, int] = {}  # process -> the line of its exit
    gone: dict[str, str] = {}  # handle -> how and where it was used up

    def need_proc(name: str | None, pos: ast.Pos) -> None:
        if name is not None and name in exited:
            alive = ", ".join(sorted(procs - set(exited))) or "none"
            raise _err(scen, text, pos, f"process {name} exited at line {exited[name]}; "
                                        f"expected a live process ({alive})")
        if name is not None and name not in procs:
            known = ", ".join(sorted(procs))
            raise _err(scen, text, pos, f"process {name} does not exist here; "
                                        f"expected one of: {known} (processes appear by fork)")

    def need_loc(loc: ast.Loc | None, pos: ast.Pos) -> None:
        if loc is None:
            return
        if loc.region not in regions:
            raise _err(scen, text, pos, f"region {loc.region} is used before any 'mmap "
                                        f"{loc.region} …'")
        n = regions[loc.region]
        if loc.first is not None:
            last = loc.first if loc.last is None else loc.last
            if loc.last is not None and loc.last < loc.first:
                raise _err(scen, text, pos, f"empty page range {loc}; expected first <= last")
            if last >= n:
                plural = "s" if n > 1 else ""
                raise _err(scen, text, pos, f"page {last} is past the end of region "
                                            f"{loc.region} ({n} page{plural}: 0..{n - 1})")

    def need_handle(name: str | None, kind: str, pos: ast.Pos) -> None:
        if name is None:
            return
        if name in gone and handles.get(name) == kind:
            again = "vmsplice … -> " if kind == "pipe" else "pin … -> "
            raise _err(scen, text, pos, f"'{name}' {gone[name]}; expected a {kind} that is "
                                        f"still there ('{again}{name}' makes a new one)")
        if handles.get(name) != kind:
            what = "pipe (from 'vmsplice … -> NAME')" if kind == "pipe" else \
                "pin handle (from 'pin … -> NAME')"
            raise _err(scen, text, pos, f"'{name}' is not a {what} defined before this line")

    for st in scen.stmts:
        if isinstance(st, ast.Step):
            pos = st.pos
            need_proc(st.proc, pos)
            op = st.op
            if op == "mmap":
                assert st.loc is not None
                if st.kind == "anon":
                    if not st.npages:
                        raise _err(scen, text, pos, "an anon region needs at least 1 page")
                    if st.npages > 4096:
                        raise _err(scen, text, pos, "an anon region holds at most 4096 pages")
                    regions[st.loc.region] = st.npages
                else:
                    regions[st.loc.region] = HPAGE_PMD_NR
            elif op == "mremap":
                need_loc(st.loc, pos)
                assert st.loc is not None and st.name is not None
                regions[st.name] = len(st.loc.pages(regions[st.loc.region]))
            else:
                need_loc(st.loc, pos)
            if op == "fork":
                assert st.target is not None
                if st.target in procs:
                    raise _err(scen, text, pos, f"process {st.target} already exists; "
                                                "expected a new process name")
                procs.add(st.target)
            if op in ("peek", "poke", "force_write"):
                need_proc(st.target, pos)
            if op == "vmsplice":
                assert st.name is not None
                handles[st.name] = "pipe"
                gone.pop(st.name, None)
            elif op == "pin":
                assert st.name is not None
                if {"ro", "rw"} <= st.pinopts:
                    raise _err(scen, text, pos, "a pin is either ro or rw, not both")
                handles[st.name] = "pin"
                gone.pop(st.name, None)
            elif op in ("unpin", "dma_write", "dma_read"):
                need_handle(st.name, "pin", pos)
                if op == "unpin" and st.name is not None:
                    gone[st.name] = f"was unpinned at line {pos.line}"
            elif op == "read_handle":
                need_handle(st.name, "pipe", pos)
                if st.name is not None:
                    gone[st.name] = f"was read at line {pos.line} (reading a pipe empties it)"
            if op == "exit" and st.proc is not None:
                exited[st.proc] = pos.line
            if st.var is not None:
                vars_.add(st.var)
            if st.label is not None:
                if st.label in labels:
                    raise _err(scen, text, pos, f"label @{st.label} is already used; "
                                                "expected a new label name")
                labels.add(st.label)
        else:
            _check_cond(scen, text, st.cond, st.pos, procs, vars_, labels, need_loc)


def _check_cond(scen: ast.Scenario, text: str, c: ast.Cond, pos: ast.Pos, procs: set[str],
                vars_: set[str], labels: set[str], need_loc: Any) -> None:
    if isinstance(c, ast.Not):
        _check_cond(scen, text, c.cond, pos, procs, vars_, labels, need_loc)
        return
    if isinstance(c, ast.VarEq) and c.var not in vars_:
        raise _err(scen, text, pos, f"variable '{c.var}' is not set before this line "
                                    "(reads set variables: 'read A[0] -> v')")
    if isinstance(c, ast.Faults | ast.Outcome) and c.label not in labels:
        raise _err(scen, text, pos, f"label @{c.label} is not defined before this line")
    if isinstance(c, ast.Kpf):
        from anonex.procfs import kpageflags as kpf

        try:
            kpf.bit(c.flag.upper())
        except KeyError:
            raise _err(scen, text, pos, f"'{c.flag}' is not a kpageflags bit; expected a "
                                        "KPF name in lower case (anon, slab, owner_2, …)") \
                from None
    pages: list[ast.PageRef] = []
    if isinstance(c, ast.PageState | ast.Mapcount | ast.Kpf | ast.PageTypes |
                  ast.MemoryFailure):
        pages = [c.page]
    elif isinstance(c, ast.Same):
        pages = [c.a, c.b]
    for p in pages:
        if p.proc not in procs:
            raise _err(scen, text, pos, f"process {p.proc} does not exist here")
        need_loc(p.loc, pos)
        if p.loc.first is None or (p.loc.last is not None and p.loc.last != p.loc.first):
            raise _err(scen, text, pos, f"an expectation names one page; expected "
                                        f"{p.loc.region}[i], not {p.loc}")
