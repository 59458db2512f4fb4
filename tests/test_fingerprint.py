"""anonex fingerprint: the catalogue covers the version table, each scenario tells its rules
apart on the model, the judge reads the model back as itself and a "vendor kernel" as one,
and a fingerprint document drives the model in anonex check."""

from __future__ import annotations

import dataclasses
import json
from itertools import pairwise
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anonex.cli import app
from anonex.fingerprint import Catalog, fingerprint
from anonex.fingerprint.catalog import UNOBSERVABLE
from anonex.fingerprint.document import DocumentError, KernelRules, document, load
from anonex.fingerprint.judge import Fingerprint, ModelRuns, agrees
from anonex.harness.model import ModelBackend
from anonex.kernel.versions import BOUNDARIES, Rules, boundary_versions
from anonex.runner import run
from anonex.scenario import ast
from anonex.scenario.ast import Scenario
from anonex.scenario.errors import ScenarioError
from anonex.scenario.parser import parse, parse_file
from anonex.versions import KernelVersion

CATALOG = Catalog.load()
BY_NAME = {b.name: b for b in BOUNDARIES}
REAL = ["5.10.223", "6.1.187", "6.12.117", "6.18.44", "7.2.13"]
runner = CliRunner()


def test_every_row_is_asked_or_said_unobservable() -> None:
    assert CATALOG.uncovered() == []
    assert set(UNOBSERVABLE) <= set(BY_NAME)
    for name in UNOBSERVABLE:
        assert not CATALOG.asking(name), f"{name} is asked and said unobservable"
    # every rule no model code reads is one of the unobservable ones
    for b in BOUNDARIES:
        if not b.modelled:
            assert b.name in UNOBSERVABLE


VERSIONS = boundary_versions()


def _edge(rule: str) -> tuple[KernelVersion, KernelVersion]:
    """The first modelled versions either side of which *rule* changes."""
    for a, b in pairwise(VERSIONS):
        if getattr(Rules(a), rule) != getattr(Rules(b), rule):
            return a, b
    raise AssertionError(f"{rule} never changes between modelled versions")


def _tells(scen: Scenario, rule: str, v: KernelVersion) -> bool:
    """Whether flipping *rule* alone at *v* changes what the model shows for *scen*."""
    m = ModelRuns(v)
    on = m.trace(scen, Rules(v, {rule: True}))
    off = m.trace(scen, Rules(v, {rule: False}))
    return not agrees(on, off)[0]


def _ungated(scen: Scenario) -> Scenario:
    """*scen* with every expectation checked on every version."""
    stmts = [ast.Expect(st.cond, st.pos) if isinstance(st, ast.Expect) else st
             for st in scen.stmts]
    return dataclasses.replace(scen, stmts=stmts, xfails=[])


PAIRS = [(s, name) for s in CATALOG.scenarios for name, _ in s.rules]


@pytest.mark.parametrize("scen,rule", PAIRS, ids=[f"{s.name}-{r}" for s, r in PAIRS])
def test_scenario_tells_its_rule_apart_at_the_boundary(scen: Scenario, rule: str) -> None:
    """At the boundary of the rule, or of the newest rule the scenario also names (one it
    needs to show at all), the model on either side differs, and the rule alone makes the
    difference."""
    before, edge = max(_edge(n) for n, _ in scen.rules)
    both = _ungated(scen)  # every expectation judged on both sides
    a = run(both, ModelBackend(before))
    b = run(both, ModelBackend(edge))
    sides_differ = not agrees(a, b)[0]
    assert sides_differ, f"{scen.name}: the model at {before} and {edge} look the same"
    assert _tells(scen, rule, edge) or _tells(scen, rule, before), \
        f"{scen.name}: {rule} alone changes nothing at {before} or {edge}"


@pytest.mark.parametrize("version", REAL)
def test_the_model_reads_back_as_its_own_table(version: str) -> None:
    v = KernelVersion.parse(version)
    fp = fingerprint("model", ModelBackend(v), CATALOG)
    assert [r.rule for r in fp.differing] == []
    assert fp.overrides == {}
    assert fp.closest_misses == 0
    assert Rules(fp.closest)._on == Rules(v)._on or fp.closest == v or \
        all(getattr(Rules(fp.closest), n) == val for n, val in fp.observed.items())
    # what the five measured kernels show, on the model of each
    obs = fp.observed
    if version == "5.10.223":
        assert obs["pinned_not_swapcached"] is True  # the 5.10.9 backport
        assert "odirect_foll_pin" not in obs  # FOLL_GET and FOLL_PIN look alike here
    if version in ("6.1.187",):
        assert obs["odirect_foll_pin"] is False
    if version in ("6.12.117", "7.2.13"):
        assert obs["odirect_foll_pin"] is True
    assert obs["kpageflags_ksm_every_anon"] is (version == "6.12.117")
    if v >= KernelVersion(6, 12):  # the scenario needs mTHP swap-in
        assert obs["swapin_through_cache"] is (version == "7.2.13")


def test_a_vendor_kernel_reads_as_backported_and_missing() -> None:
    """A 6.1 kernel with the 6.3 O_DIRECT change and without mTHP... of 6.12: marks."""
    v = KernelVersion.parse("6.12.117")
    vendor = Rules(v, {"kpageflags_ksm_every_anon": False, "odirect_foll_pin": False,
                       "thp_zero_wp_alloc": True})
    fp = fingerprint("vendor", ModelBackend(v, rules=vendor), CATALOG)
    marks = {r.rule: r.mark for r in fp.differing}
    assert marks == {"kpageflags_ksm_every_anon": "backported", "odirect_foll_pin": "missing",
                     "thp_zero_wp_alloc": "backported"}
    assert fp.overrides == {"kpageflags_ksm_every_anon": False, "odirect_foll_pin": False,
                            "thp_zero_wp_alloc": True}
    # the model run with what it showed is that kernel again
    again = fingerprint("again", ModelBackend(v, rules=fp.rules()), CATALOG)
    assert again.observed == fp.observed


def test_unobservable_rows_say_why() -> None:
    fp = fingerprint("model", ModelBackend(KernelVersion.parse("6.18.44")), CATALOG)
    rows = {r.rule: r for r in fp.results}
    assert rows["ksm_reuse"].mark == "unobservable"
    assert "reuse_by_page_count" in rows["ksm_reuse"].reason
    assert rows["owner_2_rename"].reason == UNOBSERVABLE["owner_2_rename"]
    assert "swapin_through_cache held" in rows["swapcache_map_large"].reason


def test_kernel_bug_reproducers_as_expected_at_every_version() -> None:
    root = Path(__file__).resolve().parents[1] / "findings" / "kernel-bugs"
    for p in sorted(root.glob("*.cow")):
        scen = parse_file(p)
        for v in boundary_versions():
            t = run(scen, ModelBackend(v))
            assert t.as_expected, f"{p.name} at {v}: {t.verdict}: {t.reason}"


# -- documents ----------------------------------------------------------------------------


def _vendor_fp() -> Fingerprint:
    v = KernelVersion.parse("6.12.117")
    rules = Rules(v, {"kpageflags_ksm_every_anon": False})
    return fingerprint("vendor", ModelBackend(v, rules=rules), CATALOG)


def test_document_round_trip(tmp_path: Path) -> None:
    fp = _vendor_fp()
    doc = document([fp], {"debian:6.1": "no such image"})
    f = tmp_path / "fp.json"
    f.write_text(json.dumps(doc))
    (k,) = load(f)
    assert k.version == fp.version and k.kernel == "vendor"
    rules = k.rules()
    assert rules is not None and rules._on == fp.rules()._on
    assert k.differs() == ["kpageflags_ksm_every_anon"]
    row = next(r for r in doc["fingerprints"][0]["results"] if r["rule"] == "mthp")
    assert row["observed"] is True and row["readings"][0]["scenario"] == "mthp-folio"


@pytest.mark.parametrize("text,what", [
    ("{", "not JSON"),
    ("[]", "expected an anonex fingerprint document"),
    ('{"fingerprints": [{"version": "6.1"}]}', "missing or bad field"),
    ('{"fingerprints": [{"version": "6.1", "observed": {"no_such": true}}]}',
     "rules this anonex does not know: no_such"),
    ('{"fingerprints": [{"version": "6.1", "observed": {"mthp": 1}}]}', "true or false"),
])
def test_bad_documents_say_what_is_wrong(tmp_path: Path, text: str, what: str) -> None:
    f = tmp_path / "fp.json"
    f.write_text(text)
    with pytest.raises(DocumentError, match=what):
        load(f)


def test_check_models_a_fingerprint_document(tmp_path: Path) -> None:
    f = tmp_path / "fp.json"
    f.write_text(json.dumps(document([_vendor_fp()])))
    scen = str(CATALOG.asking("kpageflags_ksm_every_anon")[0].path)
    r = runner.invoke(app, ["check", "--no-live", "--kernel", "6.12.117", "--kernel", str(f),
                            scen])
    # the fixed kernel fails the expectation of the bug the table gives 6.12.117
    assert r.exit_code == 1, r.output
    assert "fp:vendor" in r.output and "1 unexpected" in r.output
    bad = runner.invoke(app, ["check", "--no-live", "--kernel", str(tmp_path / "x.json"),
                              scen])
    assert bad.exit_code == 2 and "cannot read" in bad.output
    assert "Traceback" not in bad.output


def test_kernel_rules_of_a_version_are_the_table() -> None:
    k = KernelRules.of_version(KernelVersion.parse("6.1"))
    assert k.rules() is None and k.label == "6.1" and k.differs() == []


# -- the language ---------------------------------------------------------------------------


def test_rule_names_are_checked() -> None:
    with pytest.raises(ScenarioError) as e:
        parse("title \"x\"\nrule mthp_swapn\nP0: mmap A anon 1\n", "t.cow")
    assert (e.value.line, e.value.column) == (2, 6)
    assert "expected one of: mthp_swapin" in str(e.value)
    with pytest.raises(ScenarioError, match="named twice"):
        parse("rule mthp\nrule mthp\nP0: mmap A anon 1\n", "t.cow")
    ok = parse("rule mthp\nrule anon_exclusive\nP0: mmap A anon 1\n", "t.cow")
    assert [n for n, _ in ok.rules] == ["mthp", "anon_exclusive"]


# -- the command ----------------------------------------------------------------------------


def test_fingerprint_without_kernels_is_a_usage_error() -> None:
    r = runner.invoke(app, ["fingerprint", "--no-live"])
    assert r.exit_code == 2 and "nothing to fingerprint" in r.output


def test_fingerprint_of_the_running_kernel(live: None, tmp_path: Path) -> None:
    """The running kernel, fingerprinted: a JSON document whose every observable rule is
    the table's for its version (the host here is 6.18.44, which has the KPF_KSM fix)."""
    save = tmp_path / "fp.json"
    r = runner.invoke(app, ["fingerprint", "--json", "--save", str(save)])
    doc = json.loads(r.stdout)
    (fp,) = doc["fingerprints"]
    assert json.loads(save.read_text()) == doc
    rows = {x["rule"]: x for x in fp["results"]}
    observed = [x for x in rows.values() if x["observed"] is not None]
    assert len(observed) >= 15
    differ = [x["rule"] for x in observed if x["observed"] != x["expected"]]
    assert r.exit_code == (1 if differ else 0), r.output
    assert fp["differs"] == differ
    # the kernel showed what its kpageflags say, whatever the table
    assert rows["kpageflags_from_head"]["observed"] is not None
    (k,) = load(save)
    assert k.release == fp["release"]
