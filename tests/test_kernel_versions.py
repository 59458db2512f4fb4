"""The version table (kernel/versions.py): boundaries, stable backports, and the
scenarios whose run a rule decides."""

from __future__ import annotations

import importlib.util
import itertools
import sys

import pytest

from anonex.kernel.versions import BOUNDARIES, Rules, boundary_versions
from anonex.versions import KernelVersion

from .modelkit import ROOT


def test_version_table() -> None:
    names = {b.name for b in BOUNDARIES}
    assert {"reuse_by_page_count", "anon_exclusive", "gup_forces_cow_break",
            "writable_swapin_on_read", "mm_id_large_reuse"} <= names
    r = Rules(KernelVersion(5, 8))
    assert r.gup_forces_cow_break and not r.reuse_by_page_count and not r.anon_exclusive
    r = Rules(KernelVersion(6, 18, 44))
    assert r.anon_exclusive and r.mm_id_large_reuse and not r.gup_forces_cow_break
    with pytest.raises(AttributeError):
        _ = r.no_such_rule
    vs = boundary_versions()
    assert vs == sorted(vs) and KernelVersion(5, 19) in vs and KernelVersion(5, 4) in vs
    for b in BOUNDARIES:
        assert b.commit and b.summary


def test_stable_backports_in_version_table() -> None:
    """A stable release that got a change has it, its series' earlier releases do not, and
    a fix backported to a series ends a bug there."""
    def rules(v: str) -> Rules:
        return Rules(KernelVersion.parse(v))

    assert not rules("5.10").pinned_not_swapcached
    assert not rules("5.10.8").pinned_not_swapcached
    assert rules("5.10.9").pinned_not_swapcached and rules("5.10.223").pinned_not_swapcached
    assert not rules("5.9.16").pinned_not_swapcached and rules("5.11").pinned_not_swapcached
    assert rules("5.10.4").gup_fast_fork_seqcount and not rules("5.10.3").gup_fast_fork_seqcount
    assert rules("6.12.117").kpageflags_ksm_every_anon
    assert rules("6.18.43").kpageflags_ksm_every_anon
    assert not rules("6.18.44").kpageflags_ksm_every_anon
    assert not rules("7.2").kpageflags_ksm_every_anon and not rules("6.9").kpageflags_ksm_every_anon
    vs = boundary_versions()
    # backports are versions where the rules change; rules the model never reads are not
    assert KernelVersion.parse("5.10.9") in vs and KernelVersion.parse("6.18.44") in vs
    assert KernelVersion.parse("5.10.4") not in vs
    assert all(rules(str(v))._on != rules(str(w))._on for v, w in itertools.pairwise(vs))


def test_boundary_evidence_finds_what_decides_a_rule() -> None:
    """tools/boundary_evidence.py: the scenarios whose run a rule changes on a kernel."""
    spec = importlib.util.spec_from_file_location(
        "boundary_evidence", ROOT / "tools" / "boundary_evidence.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    names = mod.discriminating("collapse_readonly_ptes", "6.12.117")
    assert "collapse-shared-needs-writable-pte" in names
    assert "basic-cow-after-fork" not in names
