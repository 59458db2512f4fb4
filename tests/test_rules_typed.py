"""The version table's rules are names the type checker knows: a misspelt rule fails mypy,
and the declarations stay in step with the table (tools/gen_rules.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from anonex.kernel.versions import BOUNDARIES, Rules
from anonex.versions import KernelVersion

ROOT = Path(__file__).resolve().parents[1]


def test_the_generated_declarations_match_the_table() -> None:
    spec = importlib.util.spec_from_file_location("gen_rules", ROOT / "tools" / "gen_rules.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    m = gen.BLOCK.search(gen.FILE.read_text())
    assert m is not None and m.group(2) == gen.generated()
    assert list(Rules.__annotations__) == [b.name for b in BOUNDARIES]


def test_a_misspelt_rule_fails_the_type_check(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    src = tmp_path / "typo.py"
    src.write_text("from anonex.kernel.versions import Rules\n\n\n"
                   "def exclusive(r: Rules) -> bool:\n    return r.anon_exclusiv\n\n\n"
                   "def right(r: Rules) -> bool:\n    return r.anon_exclusive\n")
    out, _, status = api.run(["--strict", "--no-incremental", "--follow-imports=silent",
                              str(src)])
    assert status == 1, out
    assert '"Rules" has no attribute "anon_exclusiv"' in out
    assert "typo.py:9" not in out, out  # the right name passes


def test_a_misspelt_rule_fails_at_run_time_too() -> None:
    r = Rules(KernelVersion(6, 18))
    typo = "anon_exclusiv"
    with pytest.raises(AttributeError, match="no kernel rule named 'anon_exclusiv'"):
        getattr(r, typo)


def test_a_cve_leads_to_the_rules_that_fix_it() -> None:
    """Each CVE a row names is well formed, and a search of the rules' declarations for it
    finds the rule (its generated line carries the CVE)."""
    source = (Path(__file__).resolve().parent.parent / "src" / "anonex" / "kernel"
              / "versions.py").read_text()
    named = {c for b in BOUNDARIES for c in b.cves}
    assert "CVE-2020-29374" in named
    for b in BOUNDARIES:
        for cve in b.cves:
            assert re.fullmatch(r"CVE-\d{4}-\d{4,}", cve), cve
        if b.cves:
            assert f"\n    {b.name}: bool  # fixes {', '.join(b.cves)}\n" in source
    fixers = [b.name for b in BOUNDARIES if "CVE-2020-29374" in b.cves]
    assert "gup_forces_cow_break" in fixers
