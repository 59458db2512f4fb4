"""Page-flag names are names the type checker knows: the accessors are generated from the
layout table (tools/gen_flags.py), and a misspelt flag fails mypy, or raises at run time for
an untyped caller."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import pytest

from anonex.kernel import flags as pf
from anonex.kernel.folio import Folio

ROOT = Path(__file__).resolve().parents[1]


def _gen() -> SimpleNamespace:
    """tools/gen_flags.py, loaded as it is (tools/ is no package)."""
    return SimpleNamespace(**runpy.run_path(str(ROOT / "tools" / "gen_flags.py")))


def test_the_generated_blocks_match_the_table() -> None:
    gen = _gen()
    found = {m.group(2): m.group(3) for m in gen.BLOCK.finditer(gen.FILE.read_text())}
    assert found == gen.generated()
    every = {n for lay in pf.LAYOUTS.values() for n in lay.bit}
    assert set(get_args(pf.PageFlagName)) == every


def test_each_accessor_acts_on_its_flag() -> None:
    """SetPageX, PageX and ClearPageX act as the generic accessors with the flag's name do,
    in a layout that has the flag."""
    gen = _gen()
    for name in gen.names():
        if name in gen.HAND_WRITTEN:
            continue
        lay = next(lay for lay in pf.LAYOUTS.values() if name in lay.bit)
        order = 1 if lay.policy[name] is pf.Policy.PF_SECOND else 0  # the head of a large one
        page, twin = Folio(1, order, lay).pages[0], Folio(3, order, lay).pages[0]
        c = gen.camel(name)
        getattr(pf, f"SetPage{c}")(page)
        pf.set_page_flag(twin, name)
        words = [q.flags for q in page.folio.pages]
        assert words == [q.flags for q in twin.folio.pages] and 1 << lay.bit[name] in words
        assert getattr(pf, f"Page{c}")(page)
        getattr(pf, f"ClearPage{c}")(page)
        assert not any(q.flags for q in page.folio.pages) and not getattr(pf, f"Page{c}")(page)
    assert pf.SetPageSwapCache and pf.PageLRU and pf.ClearPageMappedToDisk  # kernel spelling


def test_a_misspelt_flag_fails_the_type_check(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    src = tmp_path / "typo.py"
    src.write_text("from anonex.kernel import flags as pf\n"
                   "from anonex.kernel.folio import Page\n\n\n"
                   "def wrong(p: Page) -> bool:\n"
                   "    pf.SetPageDirtyy(p)\n"
                   '    return pf.test_page_flag(p, "dirtyy")\n\n\n'
                   "def right(p: Page) -> bool:\n"
                   "    pf.SetPageDirty(p)\n"
                   '    return pf.test_page_flag(p, "dirty") or pf.PageSwapCache(p)\n')
    out, _, status = api.run(["--strict", "--no-incremental", "--follow-imports=silent",
                              str(src)])
    assert status == 1, out
    assert 'Module has no attribute "SetPageDirtyy"' in out, out
    assert '"test_page_flag" has incompatible type "Literal[\'dirtyy\']"' in out, out
    lines = {int(e.split(":")[1]) for e in out.splitlines() if e.startswith(str(src))}
    assert lines == {6, 7}, out  # the right names pass


def test_a_misspelt_flag_fails_at_run_time_too() -> None:
    page = Folio(1).pages[0]
    typo = "dirtyy"
    with pytest.raises(KeyError, match="no page flag named 'dirtyy'"):
        pf.test_page_flag(page, typo)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        pf.set_page_flag(page, typo)  # type: ignore[arg-type]
    assert not pf.test_page_flag(page, "slab")  # a flag of older layouts only: clear
