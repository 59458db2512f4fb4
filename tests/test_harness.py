"""The model backend, its oracle and invariants (anonex.harness): the invariant
checker, the model at a stable release and with rules overridden."""

from __future__ import annotations

import pytest

from anonex.harness import invariants
from anonex.harness.model import ModelBackend
from anonex.kernel.pgtable import Pte
from anonex.kernel.versions import Rules
from anonex.runner import run
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

from .conftest import model_run
from .modelkit import ROOT, model_state


def test_invariant_checker_catches_corruption() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\nP0: fork P1\n')
    e = be.k.mms["P0"].ptes[be.k.regions["A"]]
    assert isinstance(e, Pte)
    e.write = True  # writable but not exclusive: what a buggy kernel would do
    found = invariants.check(be.k)
    assert [f.property for f in found] == ["writable-exclusive"]
    assert "writable ⇒ exclusive" in found[0].message and found[0].page == e.page.name
    e.page.folio.refcount += 5
    assert "accounting" in {f.property for f in invariants.check(be.k)}


def test_model_at_a_stable_release() -> None:
    """``--kernel 5.10.9`` runs the model with 5.10.9's backports."""
    text = """
P0: mmap A anon 1
P0: write A "data"
P0: pin A[0] -> h
P0: madvise A pageout
expect P0 A[0] present
"""
    assert model_run(text, "5.10.9").verdict == "pass"
    assert model_run(text, "5.10.8").verdict == "fail"


def test_rule_overrides() -> None:
    """A rule can be set against its version (a kernel's own answer, or one rule flipped),
    and the model runs with it."""
    v = KernelVersion.parse("6.12")
    r = Rules(v, {"collapse_readonly_ptes": True})
    assert r.collapse_readonly_ptes and not Rules(v).collapse_readonly_ptes
    assert r.mthp_swapin and "collapse_readonly_ptes=True" in repr(r)
    with pytest.raises(ValueError, match="no kernel rule"):
        Rules(v, {"no_such_rule": True})
    scen = parse((ROOT / "src/anonex/library/fingerprint/collapse-shared-needs-writable-pte.cow")
                 .read_text(), "t.cow")
    assert run(scen, ModelBackend(v)).verdict == "xfail"
    assert run(scen, ModelBackend(v, rules=r)).verdict == "xpass"
